//! `[crust.metrics]`: the Prometheus endpoint (off by default).
//!
//! Like CRI-O's `[crio.metrics]` (`enable_metrics`, `metrics_host`/`metrics_port`), the
//! endpoint is opt-in and, when on, listens on loopback by default: the metrics name pods,
//! images and error rates, which is node-internal information.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// Port CRI-O uses for its metrics endpoint; crust keeps the same so scrape configs carry over.
pub const DEFAULT_METRICS_PORT: u16 = 9090;

/// `[crust.metrics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics`.
    pub enable: bool,
    /// TCP address (`host:port`) of the endpoint.
    pub address: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enable: false,
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_METRICS_PORT)),
        }
    }
}

/// The `crust config` comment of a `crust.metrics` key (see `print.rs`).
pub fn doc(key: &str) -> Option<&'static str> {
    Some(match key {
        "crust.metrics" => "Prometheus metrics (GET /metrics, OpenMetrics text format).",
        "crust.metrics.enable" => "Serve the metrics endpoint. Needs a restart.",
        "crust.metrics.address" => {
            "Address (host:port) of the metrics endpoint; keep it on loopback unless the\n\
             # network is trusted. Needs a restart."
        }
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_off_on_loopback_and_parse() {
        let d = MetricsConfig::default();
        assert!(!d.enable);
        assert_eq!(d.address.to_string(), "127.0.0.1:9090");
        let c: MetricsConfig = toml::from_str("enable = true\naddress = \"0.0.0.0:9100\"").unwrap();
        assert!(c.enable);
        assert_eq!(c.address.port(), 9100);
        assert!(toml::from_str::<MetricsConfig>("address = \"nope\"").is_err());
        assert!(doc("crust.metrics.address").is_some());
    }
}
