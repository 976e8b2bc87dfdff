//! `Status` (CRI RuntimeService).
//!
//! The kubelet needs both `RuntimeReady` and `NetworkReady` conditions (CRI api.proto,
//! "Required conditions"). The runtime side is ready once the daemon serves; pod
//! networking (CNI) is not implemented yet, so `NetworkReady` is false with the reason
//! CRI-O and containerd use for a missing CNI config, `NetworkPluginNotReady`.
//! With `verbose`, `info["config"]` holds the effective config as JSON (like CRI-O).

use std::collections::HashMap;

use crust_proto::cri;
use tonic::Status;

use super::Context;
use crate::config::{self, Config};

/// CRI condition type: the runtime is up.
pub const RUNTIME_READY: &str = "RuntimeReady";
/// CRI condition type: pod networking is ready.
pub const NETWORK_READY: &str = "NetworkReady";

/// Handle `Status`.
pub async fn handle(ctx: &Context, req: cri::StatusRequest) -> Result<cri::StatusResponse, Status> {
    Ok(response(&config::current(&ctx.config), req.verbose))
}

/// The answer for a given config.
pub fn response(config: &Config, verbose: bool) -> cri::StatusResponse {
    let conditions = vec![
        cri::RuntimeCondition {
            r#type: RUNTIME_READY.to_owned(),
            status: true,
            reason: String::new(),
            message: String::new(),
        },
        cri::RuntimeCondition {
            r#type: NETWORK_READY.to_owned(),
            status: false,
            reason: "NetworkPluginNotReady".to_owned(),
            message: "crust: pod networking (CNI) is not implemented yet".to_owned(),
        },
    ];
    let mut info = HashMap::new();
    if verbose {
        info.insert("config".to_owned(), config.to_json());
    }
    cri::StatusResponse {
        status: Some(cri::RuntimeStatus { conditions }),
        info,
        runtime_handlers: Vec::new(),
        features: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn conditions_and_verbose_config() {
        let r = response(&Config::default(), false);
        let conds = r.status.unwrap().conditions;
        assert!(conds.iter().any(|c| c.r#type == RUNTIME_READY && c.status));
        let net = conds.iter().find(|c| c.r#type == NETWORK_READY).unwrap();
        assert!(!net.status);
        assert_eq!(net.reason, "NetworkPluginNotReady");
        assert!(r.info.is_empty());
        let r = response(&Config::default(), true);
        let v: serde_json::Value = serde_json::from_str(&r.info["config"]).unwrap();
        assert_eq!(v["crust"]["root"], "/var/lib/crust");
    }
}
