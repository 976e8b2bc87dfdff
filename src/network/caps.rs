//! Runtime capabilities (CNI CONVENTIONS.md "Dynamic plugin specific fields"): values the
//! runtime knows per pod and hands to plugins that declare them in `capabilities`, under
//! `runtimeConfig` (libcni's `injectRuntimeConfig`). crust provides what CRI-O and
//! containerd provide:
//! - `portMappings` from the CRI `PortMapping`s with a host port (portmap plugin),
//! - `bandwidth` from the `kubernetes.io/ingress-bandwidth` / `egress-bandwidth`
//!   annotations, in bits per second with the burst containerd uses (`math.MaxUint32`),
//!   validated like the kubelet does (1 kbit to 1 Pbit),
//! - `dns` from the pod's `DNSConfig`,
//! - `ipRanges` when the kubelet gave the node's pod CIDRs (`UpdateRuntimeConfig`).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::error::NetworkError;

/// Ingress bandwidth annotation (Kubernetes `bandwidth.ExtractPodBandwidthResources`).
pub const INGRESS_ANNOTATION: &str = "kubernetes.io/ingress-bandwidth";
/// Egress bandwidth annotation.
pub const EGRESS_ANNOTATION: &str = "kubernetes.io/egress-bandwidth";
/// Burst given with a rate (containerd `toCNIBandWidth`).
const BURST: u64 = u32::MAX as u64;
/// Bounds the kubelet enforces (`validateBandwidthIsReasonable`).
const MIN_BANDWIDTH: u128 = 1_000;
const MAX_BANDWIDTH: u128 = 1_000_000_000_000_000;

/// One host port mapping (CRI `PortMapping` with `host_port > 0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: &'static str,
    /// Port in the pod.
    pub container_port: i32,
    /// Port on the node.
    pub host_port: i32,
    /// Node address to bind; empty = all.
    pub host_ip: String,
}

/// Shaping limits in bits per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bandwidth {
    /// Into the pod.
    pub ingress: Option<u64>,
    /// Out of the pod.
    pub egress: Option<u64>,
}

/// The pod DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsCapability {
    /// Name servers.
    pub servers: Vec<String>,
    /// Search domains.
    pub searches: Vec<String>,
    /// Resolver options.
    pub options: Vec<String>,
}

/// Everything crust can offer plugins for one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `portMappings`.
    pub port_mappings: Vec<PortMapping>,
    /// `bandwidth`.
    pub bandwidth: Option<Bandwidth>,
    /// `dns`.
    pub dns: Option<DnsCapability>,
    /// `ipRanges`: one range set (list of subnets) per family.
    pub ip_ranges: Vec<Vec<String>>,
}

fn rate(annotations: &HashMap<String, String>, key: &str) -> Result<Option<u64>, NetworkError> {
    let Some(v) = annotations.get(key) else {
        return Ok(None);
    };
    let invalid = |reason: String| NetworkError::InvalidArgument {
        field: format!("annotation {key}"),
        value: v.clone(),
        reason,
    };
    let bits = super::quantity::parse(v).map_err(|r| invalid(format!("not a quantity: {r}")))?;
    if bits < MIN_BANDWIDTH {
        return Err(invalid("is unreasonably small (< 1kbit)".to_owned()));
    }
    if bits > MAX_BANDWIDTH {
        return Err(invalid("is unreasonably large (> 1Pbit)".to_owned()));
    }
    Ok(Some(u64::try_from(bits).map_err(|_| {
        invalid("is unreasonably large (> 1Pbit)".to_owned())
    })?))
}

/// The bandwidth limits the pod's annotations ask for (`None` without annotations).
pub fn bandwidth(annotations: &HashMap<String, String>) -> Result<Option<Bandwidth>, NetworkError> {
    let b = Bandwidth {
        ingress: rate(annotations, INGRESS_ANNOTATION)?,
        egress: rate(annotations, EGRESS_ANNOTATION)?,
    };
    Ok((b.ingress.is_some() || b.egress.is_some()).then_some(b))
}

impl Capabilities {
    /// The `runtimeConfig` values by capability name (only those that have a value).
    pub fn runtime_config(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if !self.port_mappings.is_empty() {
            let pm: Vec<Value> = self
                .port_mappings
                .iter()
                .map(|p| {
                    let mut o = json!({
                        "hostPort": p.host_port,
                        "containerPort": p.container_port,
                        "protocol": p.protocol,
                    });
                    if !p.host_ip.is_empty() {
                        o["hostIP"] = json!(p.host_ip);
                    }
                    o
                })
                .collect();
            m.insert("portMappings".into(), Value::Array(pm));
        }
        if let Some(b) = self.bandwidth {
            let mut o = Map::new();
            if let Some(r) = b.ingress {
                o.insert("ingressRate".into(), json!(r));
                o.insert("ingressBurst".into(), json!(BURST));
            }
            if let Some(r) = b.egress {
                o.insert("egressRate".into(), json!(r));
                o.insert("egressBurst".into(), json!(BURST));
            }
            m.insert("bandwidth".into(), Value::Object(o));
        }
        if let Some(d) = &self.dns {
            m.insert(
                "dns".into(),
                json!({"servers": d.servers, "searches": d.searches, "options": d.options}),
            );
        }
        if !self.ip_ranges.is_empty() {
            let r: Vec<Value> = self
                .ip_ranges
                .iter()
                .map(|set| Value::Array(set.iter().map(|s| json!({ "subnet": s })).collect()))
                .collect();
            m.insert("ipRanges".into(), Value::Array(r));
        }
        m
    }
}

/// Add `runtimeConfig` to one plugin config with the values of the capabilities it
/// declares (`"capabilities": {"portMappings": true}`); others get nothing.
pub fn inject(plugin: &mut Map<String, Value>, runtime_config: &Map<String, Value>) {
    let Some(Value::Object(declared)) = plugin.get("capabilities") else {
        return;
    };
    let rc: Map<String, Value> = declared
        .iter()
        .filter(|(_, on)| on.as_bool() == Some(true))
        .filter_map(|(k, _)| runtime_config.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    if rc.is_empty() {
        return;
    }
    match plugin.get_mut("runtimeConfig") {
        Some(Value::Object(existing)) => existing.extend(rc),
        _ => {
            plugin.insert("runtimeConfig".into(), Value::Object(rc));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_from_annotations() {
        let mut a = HashMap::new();
        assert_eq!(bandwidth(&a).unwrap(), None);
        a.insert(INGRESS_ANNOTATION.to_string(), "10M".to_string());
        assert_eq!(
            bandwidth(&a).unwrap(),
            Some(Bandwidth {
                ingress: Some(10_000_000),
                egress: None
            })
        );
        a.insert(EGRESS_ANNOTATION.to_string(), "1Mi".to_string());
        assert_eq!(bandwidth(&a).unwrap().unwrap().egress, Some(1 << 20));
        a.insert(EGRESS_ANNOTATION.to_string(), "10".to_string());
        let e = bandwidth(&a).unwrap_err();
        assert!(e.to_string().contains("unreasonably small"), "{e}");
        assert_eq!(e.kind(), crate::image::ErrorKind::InvalidArgument);
        a.insert(EGRESS_ANNOTATION.to_string(), "lots".to_string());
        assert!(
            bandwidth(&a)
                .unwrap_err()
                .to_string()
                .contains("egress-bandwidth")
        );
        a.insert(EGRESS_ANNOTATION.to_string(), "2P".to_string());
        assert!(bandwidth(&a).unwrap_err().to_string().contains("large"));
    }

    #[test]
    fn runtime_config_and_injection_by_declared_capability() {
        let caps = Capabilities {
            port_mappings: vec![
                PortMapping {
                    protocol: "tcp",
                    container_port: 80,
                    host_port: 8080,
                    host_ip: String::new(),
                },
                PortMapping {
                    protocol: "udp",
                    container_port: 53,
                    host_port: 5353,
                    host_ip: "127.0.0.1".into(),
                },
            ],
            bandwidth: Some(Bandwidth {
                ingress: Some(1000),
                egress: None,
            }),
            dns: Some(DnsCapability {
                servers: vec!["10.0.0.10".into()],
                searches: vec!["svc".into()],
                options: vec!["ndots:5".into()],
            }),
            ip_ranges: vec![vec!["10.9.0.0/24".into()]],
        };
        let rc = caps.runtime_config();
        assert_eq!(
            Value::Object(rc.clone()),
            json!({
                "portMappings": [
                    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                    {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}
                ],
                "bandwidth": {"ingressRate": 1000, "ingressBurst": 4294967295u64},
                "dns": {"servers": ["10.0.0.10"], "searches": ["svc"], "options": ["ndots:5"]},
                "ipRanges": [[{"subnet": "10.9.0.0/24"}]]
            })
        );
        let mut portmap =
            json!({"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}})
                .as_object()
                .unwrap()
                .clone();
        inject(&mut portmap, &rc);
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings": rc["portMappings"]})
        );
        let mut bridge = json!({"type": "bridge"}).as_object().unwrap().clone();
        inject(&mut bridge, &rc);
        assert!(!bridge.contains_key("runtimeConfig"));
        let mut none = json!({"type": "portmap", "capabilities": {"portMappings": true}})
            .as_object()
            .unwrap()
            .clone();
        inject(&mut none, &Map::new());
        assert!(!none.contains_key("runtimeConfig"));
    }
}
