//! `crust status [info|config|container <id>]`: what the *running* daemon says about
//! itself, over its CRI socket (CRI-O's `crio status info|config|containers --id`, which
//! asks the daemon's HTTP socket; crust has only the CRI socket, so it uses verbose CRI):
//! - `info`: `Status(verbose)`: conditions, runtime handlers and the effective config;
//! - `config`: the effective configuration as commented TOML (`info["configToml"]`, or the
//!   JSON `info["config"]` rendered locally when the daemon predates that key);
//! - `container <id>`: `ContainerStatus(verbose)`: status plus pid, monitor pid, bundle,
//!   rootfs, runtime handler, cgroups path (an id prefix is accepted).

use std::time::Duration;

use crust_proto::cri;

use crate::config::Config;
use crate::ctl::{CtlError, call, connect, info_json};

/// Errors of `crust status`.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Talking to the daemon failed.
    #[error("cannot get the status from the daemon at {endpoint}")]
    Daemon {
        /// The endpoint.
        endpoint: String,
        #[source]
        source: Box<CtlError>,
    },
    /// The daemon's answer lacks what was asked.
    #[error("the daemon's Status answer has no usable {key:?}: {reason}")]
    Missing {
        /// The info key.
        key: &'static str,
        /// Why it is unusable.
        reason: String,
    },
}

/// What to show.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum StatusCommand {
    /// Runtime conditions, handlers and effective config (Status verbose) as JSON
    Info,
    /// The daemon's effective configuration as commented TOML
    Config,
    /// A container's status and runtime details (ContainerStatus verbose) as JSON
    Container {
        /// Container id or unique id prefix
        id: String,
    },
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// Turn a `configToml`/`config` info pair into the TOML text.
pub fn config_text(
    info: &std::collections::HashMap<String, String>,
) -> Result<String, StatusError> {
    if let Some(t) = info.get("configToml") {
        return serde_json::from_str::<String>(t).map_err(|e| StatusError::Missing {
            key: "configToml",
            reason: e.to_string(),
        });
    }
    let json = info.get("config").ok_or(StatusError::Missing {
        key: "config",
        reason: "absent".into(),
    })?;
    let bad = |reason: String| StatusError::Missing {
        key: "config",
        reason,
    };
    let config: Config = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    crate::config::print::to_commented_toml(&config).map_err(|e| bad(e.to_string()))
}

/// Ask the daemon at `endpoint`; returns the text to print.
pub async fn run(endpoint: &str, what: &StatusCommand) -> Result<String, StatusError> {
    let daemon = |source: CtlError| StatusError::Daemon {
        endpoint: endpoint.to_owned(),
        source: Box::new(source),
    };
    let (mut rt, _) = connect(endpoint).await.map_err(daemon)?;
    let json = |v: serde_json::Value| {
        serde_json::to_string_pretty(&v)
            .map(|s| s + "\n")
            .map_err(|e| daemon(CtlError::Json(e)))
    };
    match what {
        StatusCommand::Info | StatusCommand::Config => {
            let req = cri::StatusRequest { verbose: true };
            let s = call("Status", TIMEOUT, rt.status(req))
                .await
                .map_err(daemon)?;
            if *what == StatusCommand::Config {
                return config_text(&s.info);
            }
            let mut out = serde_json::Map::new();
            let status = serde_json::to_value(&s.status).map_err(|e| daemon(CtlError::Json(e)))?;
            out.insert("status".into(), status);
            let mut info = serde_json::Map::new();
            info_json(&s.info, &mut info);
            info.remove("configToml");
            out.insert("info".into(), serde_json::Value::Object(info));
            json(serde_json::Value::Object(out))
        }
        StatusCommand::Container { id } => {
            let list = call(
                "ListContainers",
                TIMEOUT,
                rt.list_containers(cri::ListContainersRequest::default()),
            )
            .await
            .map_err(daemon)?;
            let full = crate::ctl::resolve_prefix(
                "container",
                id,
                list.containers.iter().map(|c| c.id.as_str()),
            )
            .map_err(daemon)?
            .to_owned();
            let req = cri::ContainerStatusRequest {
                container_id: full,
                verbose: true,
            };
            let r = call("ContainerStatus", TIMEOUT, rt.container_status(req))
                .await
                .map_err(daemon)?;
            let mut out = serde_json::Map::new();
            let status = serde_json::to_value(&r.status).map_err(|e| daemon(CtlError::Json(e)))?;
            out.insert("status".into(), status);
            let mut info = serde_json::Map::new();
            info_json(&r.info, &mut info);
            out.insert("info".into(), serde_json::Value::Object(info));
            json(serde_json::Value::Object(out))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn config_from_toml_key_or_json_fallback() {
        let toml = "# hi\n[crust]\n";
        let info = HashMap::from([(
            "configToml".to_string(),
            serde_json::to_string(toml).unwrap(),
        )]);
        assert_eq!(config_text(&info).unwrap(), toml);
        let info = HashMap::from([("config".to_string(), Config::default().to_json())]);
        let text = config_text(&info).unwrap();
        assert!(text.contains("[crust.metrics]"), "{text}");
        assert!(matches!(
            config_text(&HashMap::new()),
            Err(StatusError::Missing { key: "config", .. })
        ));
    }
}
