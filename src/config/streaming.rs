//! `[crust.stream]`: the CRI streaming server behind `Exec`, `Attach` and `PortForward`.
//!
//! Modelled on CRI-O's `stream_address`, `stream_port`, `stream_enable_tls`,
//! `stream_tls_cert`, `stream_tls_key` and `stream_idle_timeout`, and on the kubelet's
//! streaming server defaults (`k8s.io/kubelet/pkg/cri/streaming`: tokens live one
//! minute, clients get 30 seconds to create their streams). Port 0 picks a free port at
//! start-up, which is what CRI-O's default does, so several daemons can share a host.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// `[crust.stream]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// IP address the streaming server binds (the URLs returned to the kubelet use it).
    pub address: String,
    /// TCP port; 0 picks a free port.
    pub port: u16,
    /// PEM certificate chain; with `tls_key`, the server speaks HTTPS.
    pub tls_cert: PathBuf,
    /// PEM private key of `tls_cert`.
    pub tls_key: PathBuf,
    /// Close an exec/attach/port-forward connection after this long without traffic;
    /// 0s disables (CRI-O's default).
    #[serde(with = "duration::serde_str")]
    pub stream_idle_timeout: Duration,
    /// How long a URL returned by Exec/Attach/PortForward stays valid (kubelet: 1m).
    #[serde(with = "duration::serde_str")]
    pub token_ttl: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1".to_owned(),
            port: 0,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            stream_idle_timeout: Duration::ZERO,
            token_ttl: Duration::from_secs(60),
        }
    }
}

impl StreamConfig {
    /// Whether TLS is configured (both certificate and key).
    pub fn tls(&self) -> bool {
        !self.tls_cert.as_os_str().is_empty() && !self.tls_key.as_os_str().is_empty()
    }

    /// Semantic checks: `(dotted key, reason)` per problem.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errs = Vec::new();
        if self.address.parse::<IpAddr>().is_err() {
            errs.push((
                "crust.stream.address",
                format!("must be an IP address, got {:?}", self.address),
            ));
        }
        let cert = self.tls_cert.as_os_str().is_empty();
        let key = self.tls_key.as_os_str().is_empty();
        if cert != key {
            errs.push((
                "crust.stream.tls_cert",
                "tls_cert and tls_key must be set together".to_owned(),
            ));
        }
        if self.token_ttl.is_zero() {
            errs.push((
                "crust.stream.token_ttl",
                "must be greater than 0s".to_owned(),
            ));
        }
        errs
    }
}

/// `crust config` comments for the `[crust.stream]` keys.
pub fn doc(key: &str) -> Option<&'static str> {
    Some(match key {
        "crust.stream" => "The streaming server for Exec, Attach and PortForward URLs.",
        "crust.stream.address" => "IP address the streaming server listens on.",
        "crust.stream.port" => "TCP port of the streaming server; 0 picks a free port.",
        "crust.stream.tls_cert" => "PEM certificate chain for HTTPS; \"\" = plain HTTP.",
        "crust.stream.tls_key" => "PEM private key of tls_cert; \"\" = plain HTTP.",
        "crust.stream.stream_idle_timeout" => {
            "Close a streaming connection idle for this long (e.g. \"4h\"); \"0s\" disables."
        }
        "crust.stream.token_ttl" => "How long an Exec/Attach/PortForward URL stays valid.",
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = StreamConfig::default();
        assert!(c.validate().is_empty());
        assert!(!c.tls());
        let v = toml::Value::try_from(&c).unwrap();
        for k in v.as_table().unwrap().keys() {
            assert!(doc(&format!("crust.stream.{k}")).is_some(), "{k}");
        }
    }

    #[test]
    fn rejects_bad_address_half_tls_and_zero_ttl() {
        let c = StreamConfig {
            address: "localhost".into(),
            tls_cert: "/etc/crust/cert.pem".into(),
            token_ttl: Duration::ZERO,
            ..Default::default()
        };
        let keys: Vec<_> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "crust.stream.address",
                "crust.stream.tls_cert",
                "crust.stream.token_ttl"
            ]
        );
    }

    #[test]
    fn parses_durations() {
        let c: StreamConfig =
            toml::from_str("port = 10010\nstream_idle_timeout = \"4h\"\ntoken_ttl = \"30s\"")
                .unwrap();
        assert_eq!(c.port, 10010);
        assert_eq!(c.stream_idle_timeout, Duration::from_secs(4 * 3600));
        assert_eq!(c.token_ttl, Duration::from_secs(30));
    }
}
