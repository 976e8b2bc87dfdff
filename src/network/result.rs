//! CNI results (SPEC.md "Success" and "Error" outputs) in crust's internal form.
//!
//! Plugins answer in the `cniVersion` of the config they were given, and chained plugins
//! get the previous result verbatim as `prevResult`, so crust never re-encodes results for
//! plugins; it only reads them, to learn the pod's addresses. Two layouts exist: 0.3.0 and
//! later (`interfaces`, `ips` with an `interface` index, `routes`, `dns`; 0.3.x adds a
//! `version` per IP), and the legacy 0.1/0.2 one (`ip4`/`ip6` objects), converted here to
//! the current form the way libcni's `convertFrom020` does.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A success result, current layout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    /// `cniVersion` of the result.
    #[serde(default)]
    pub cni_version: String,
    /// Interfaces created.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS information.
    #[serde(default)]
    pub dns: Dns,
}

/// `interfaces[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    /// Name (in the sandbox when `sandbox` is set).
    pub name: String,
    /// MAC address.
    #[serde(default)]
    pub mac: String,
    /// Netns path the interface lives in; empty for host interfaces.
    #[serde(default)]
    pub sandbox: String,
}

/// `ips[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// CIDR notation (`10.1.2.3/24`).
    pub address: String,
    /// Gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// `routes[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Destination CIDR.
    pub dst: String,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

/// `dns`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default)]
    pub domain: String,
    /// Search domains.
    #[serde(default)]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default)]
    pub options: Vec<String>,
}

/// A CNI error output (`code`, `msg`, `details`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CniErrorOutput {
    /// Error code (1-99 well-known, 100+ plugin-specific).
    #[serde(default)]
    pub code: u32,
    /// Short message.
    #[serde(default)]
    pub msg: String,
    /// Longer details.
    #[serde(default)]
    pub details: String,
}

/// Legacy (0.1.0/0.2.0) per-family block.
#[derive(Debug, Deserialize)]
struct LegacyIp {
    ip: String,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    routes: Vec<Route>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyResult {
    #[serde(default)]
    cni_version: String,
    #[serde(default)]
    ip4: Option<LegacyIp>,
    #[serde(default)]
    ip6: Option<LegacyIp>,
    #[serde(default)]
    dns: Dns,
}

/// Parse a result of any version into the current layout.
pub fn parse(v: &Value) -> Result<CniResult, String> {
    let Value::Object(o) = v else {
        return Err("not a JSON object".to_owned());
    };
    let legacy = o.contains_key("ip4")
        || o.contains_key("ip6")
        || matches!(
            o.get("cniVersion").and_then(Value::as_str),
            Some("0.1.0" | "0.2.0")
        );
    if legacy {
        let l: LegacyResult = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        let mut r = CniResult {
            cni_version: l.cni_version,
            dns: l.dns,
            ..Default::default()
        };
        for ip in [l.ip4, l.ip6].into_iter().flatten() {
            r.ips.push(IpConfig {
                interface: None,
                address: ip.ip,
                gateway: ip.gateway,
            });
            r.routes.extend(ip.routes);
        }
        return Ok(r);
    }
    serde_json::from_value(v.clone()).map_err(|e| e.to_string())
}

impl CniResult {
    /// The pod's addresses on `ifname`: IPs whose interface is `ifname` inside the sandbox,
    /// or that name no interface (legacy results, simple IPAM-only chains). IPv4 first,
    /// then IPv6, each in result order (containerd's default `ip_pref`).
    pub fn pod_ips(&self, ifname: &str) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .ips
            .iter()
            .filter(|ip| match ip.interface {
                None => true,
                Some(i) => self
                    .interfaces
                    .get(i)
                    .is_some_and(|itf| itf.name == ifname && !itf.sandbox.is_empty()),
            })
            .filter_map(|ip| {
                let addr = ip.address.split('/').next().unwrap_or_default();
                addr.parse().ok()
            })
            .collect();
        ips.sort_by_key(|ip| ip.is_ipv6());
        ips.dedup();
        ips
    }
}

/// Whether a plugin's stdout is an error output (`code` present, no result fields).
pub fn parse_error(stdout: &[u8]) -> Option<CniErrorOutput> {
    let v: Value = serde_json::from_slice(stdout).ok()?;
    let o = v.as_object()?;
    if !o.contains_key("code") && !o.contains_key("msg") {
        return None;
    }
    serde_json::from_value(v).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn current_result_pod_ips_v4_first() {
        let v: Value = serde_json::from_str(
            r#"{"cniVersion":"1.0.0",
            "interfaces":[{"name":"cni0","mac":"aa"},{"name":"veth1","mac":"bb"},{"name":"eth0","mac":"cc","sandbox":"/run/netns/x"}],
            "ips":[{"interface":2,"address":"fd00::5/64","gateway":"fd00::1"},
                   {"interface":2,"address":"10.1.0.5/24","gateway":"10.1.0.1"},
                   {"interface":0,"address":"10.1.0.1/24"}],
            "routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#,
        )
        .unwrap();
        let r = parse(&v).unwrap();
        assert_eq!(r.interfaces.len(), 3);
        assert_eq!(
            r.pod_ips("eth0"),
            vec![
                "10.1.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        assert!(r.pod_ips("eth1").is_empty());
    }

    #[test]
    fn v0_3_result_with_version_field() {
        let v: Value = serde_json::from_str(
            r#"{"cniVersion":"0.3.1","interfaces":[{"name":"eth0","sandbox":"/x"}],
            "ips":[{"version":"4","interface":0,"address":"10.2.0.9/16","gateway":"10.2.0.1"}]}"#,
        )
        .unwrap();
        let r = parse(&v).unwrap();
        assert_eq!(
            r.pod_ips("eth0"),
            vec!["10.2.0.9".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn legacy_result_is_converted() {
        let v: Value = serde_json::from_str(
            r#"{"cniVersion":"0.2.0","ip4":{"ip":"10.3.0.4/24","gateway":"10.3.0.1","routes":[{"dst":"0.0.0.0/0"}]},
            "ip6":{"ip":"fd01::4/64"},"dns":{"nameservers":["1.1.1.1"]}}"#,
        )
        .unwrap();
        let r = parse(&v).unwrap();
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.routes.len(), 1);
        assert_eq!(r.dns.nameservers, ["1.1.1.1"]);
        assert_eq!(
            r.pod_ips("eth0"),
            vec![
                "10.3.0.4".parse::<IpAddr>().unwrap(),
                "fd01::4".parse().unwrap()
            ]
        );
        assert!(parse(&Value::Null).is_err());
    }

    #[test]
    fn error_output() {
        let e =
            parse_error(br#"{"cniVersion":"1.0.0","code":7,"msg":"bad","details":"why"}"#).unwrap();
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (7, "bad", "why")
        );
        assert!(parse_error(b"garbage").is_none());
        assert!(parse_error(br#"{"ips":[]}"#).is_none());
    }
}
