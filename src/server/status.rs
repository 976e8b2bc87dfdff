//! `Status` (CRI RuntimeService).
//!
//! The kubelet needs both `RuntimeReady` and `NetworkReady` conditions (CRI api.proto,
//! "Required conditions"). The runtime side is ready once the daemon serves;
//! `NetworkReady` follows the CNI config directory (`crate::network`): true once a usable
//! default network exists (and, for CNI 1.1 configs, its plugins answer STATUS), else
//! false with the reason CRI-O and containerd use, `NetworkPluginNotReady`, and a message
//! saying what is missing. The directory is re-read when it changes, so a CNI DaemonSet
//! installing its config makes the node ready without a restart.
//! With `verbose`, `info["config"]` holds the effective config as JSON (like CRI-O) and
//! `info["network"]` the network state.

use std::collections::HashMap;

use crust_proto::cri;
use tonic::Status;

use super::Context;
use crate::config::{self, Config};
use crate::network::Readiness;

/// CRI condition type: the runtime is up.
pub const RUNTIME_READY: &str = "RuntimeReady";
/// CRI condition type: pod networking is ready.
pub const NETWORK_READY: &str = "NetworkReady";
/// Reason of a false `NetworkReady` (CRI-O's and containerd's).
pub const NETWORK_NOT_READY_REASON: &str = "NetworkPluginNotReady";

/// Handle `Status`.
pub async fn handle(ctx: &Context, req: cri::StatusRequest) -> Result<cri::StatusResponse, Status> {
    let readiness = ctx.lifecycle.network.status().await;
    let mut resp = response(&config::current(&ctx.config), req.verbose, &readiness);
    resp.runtime_handlers = runtime_handlers(&ctx.lifecycle.handlers);
    if req.verbose {
        let net = ctx.lifecycle.network.config();
        let v = serde_json::json!({
            "networkDir": net.network_dir,
            "pluginDirs": net.plugin_dirs,
            "defaultNetwork": match &readiness {
                Readiness::Ready { network } => network.as_str(),
                Readiness::NotReady { .. } => "",
            },
        });
        resp.info.insert("network".to_owned(), v.to_string());
        let handlers: serde_json::Map<String, serde_json::Value> = ctx
            .lifecycle
            .handlers
            .all()
            .map(|h| {
                (
                    h.name.clone(),
                    serde_json::json!({
                        "runtimePath": h.runtime.path,
                        "runtimeRoot": h.runtime.root,
                        "runtimeArgs": h.runtime.args,
                        "monitorPath": h.monitor_path,
                        "unavailable": h.unavailable,
                    }),
                )
            })
            .collect();
        resp.info.insert(
            "runtimeHandlers".to_owned(),
            serde_json::Value::Object(handlers).to_string(),
        );
    }
    Ok(resp)
}

/// Usable handlers as CRI reports them (the default one also under the empty name, as
/// containerd does, so the kubelet sees what a pod without RuntimeClass gets). Neither
/// recursive read-only mounts nor user namespaces are offered yet.
pub fn runtime_handlers(handlers: &crate::runtime::Handlers) -> Vec<cri::RuntimeHandler> {
    let features = Some(cri::RuntimeHandlerFeatures {
        recursive_read_only_mounts: false,
        user_namespaces: false,
    });
    let mut out = vec![cri::RuntimeHandler {
        name: String::new(),
        features,
    }];
    out.extend(
        handlers
            .all()
            .filter(|h| h.unavailable.is_none())
            .map(|h| cri::RuntimeHandler {
                name: h.name.clone(),
                features,
            }),
    );
    out
}

/// The answer for a given config and network state.
pub fn response(config: &Config, verbose: bool, network: &Readiness) -> cri::StatusResponse {
    let net = match network {
        Readiness::Ready { .. } => cri::RuntimeCondition {
            r#type: NETWORK_READY.to_owned(),
            status: true,
            reason: String::new(),
            message: String::new(),
        },
        Readiness::NotReady { message } => cri::RuntimeCondition {
            r#type: NETWORK_READY.to_owned(),
            status: false,
            reason: NETWORK_NOT_READY_REASON.to_owned(),
            message: format!("Network plugin returns error: {message}"),
        },
    };
    let conditions = vec![
        cri::RuntimeCondition {
            r#type: RUNTIME_READY.to_owned(),
            status: true,
            reason: String::new(),
            message: String::new(),
        },
        net,
    ];
    let mut info = HashMap::new();
    if verbose {
        info.insert("config".to_owned(), config.to_json());
        // `crust status config`: the commented TOML, as a JSON string like every info value.
        let toml = config::print::to_commented_toml(config).unwrap_or_else(|e| format!("# {e}\n"));
        info.insert(
            "configToml".to_owned(),
            serde_json::Value::String(toml).to_string(),
        );
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
        let not_ready = Readiness::NotReady {
            message: "no CNI configuration file in /etc/cni/net.d".into(),
        };
        let r = response(&Config::default(), false, &not_ready);
        let conds = r.status.unwrap().conditions;
        assert!(conds.iter().any(|c| c.r#type == RUNTIME_READY && c.status));
        let net = conds.iter().find(|c| c.r#type == NETWORK_READY).unwrap();
        assert!(!net.status);
        assert_eq!(net.reason, "NetworkPluginNotReady");
        assert!(net.message.contains("no CNI configuration file"), "{net:?}");
        assert!(r.info.is_empty());
        let ready = Readiness::Ready {
            network: "crust".into(),
        };
        let conds = response(&Config::default(), false, &ready)
            .status
            .unwrap()
            .conditions;
        let net = conds.iter().find(|c| c.r#type == NETWORK_READY).unwrap();
        assert!(net.status && net.reason.is_empty());
        let r = response(&Config::default(), true, &not_ready);
        let v: serde_json::Value = serde_json::from_str(&r.info["config"]).unwrap();
        assert_eq!(v["crust"]["root"], "/var/lib/crust");
    }
}
