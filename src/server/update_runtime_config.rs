//! `UpdateRuntimeConfig`: the kubelet passes the node's pod CIDR (`spec.podCIDRs`,
//! comma-separated when dual-stack). crust hands it to CNI plugins as the `ipRanges`
//! capability (host-local uses it when a conflist asks for it), as CRI-O and containerd do.
//! An empty CIDR leaves the current value alone: the kubelet sends one only once it knows.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::invalid;

/// Parse `a.b.c.d/n` or `v6::/n`, checking the prefix length against the family.
fn valid_cidr(s: &str) -> bool {
    let Some((ip, len)) = s.split_once('/') else {
        return false;
    };
    let Ok(len) = len.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => len <= 32,
        Ok(std::net::IpAddr::V6(_)) => len <= 128,
        Err(_) => false,
    }
}

/// The CIDRs of a `pod_cidr` value (`None` when empty).
pub fn parse_pod_cidr(value: &str) -> Result<Option<Vec<String>>, Status> {
    let cidrs: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    if cidrs.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = cidrs.iter().find(|c| !valid_cidr(c)) {
        return Err(invalid(
            "runtime_config.network_config.pod_cidr",
            bad,
            "not a CIDR (address/prefix length)",
        ));
    }
    Ok(Some(cidrs))
}

/// Handle `UpdateRuntimeConfig`.
pub async fn handle(
    ctx: &Context,
    req: cri::UpdateRuntimeConfigRequest,
) -> Result<cri::UpdateRuntimeConfigResponse, Status> {
    let cidr = req
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    if let Some(cidrs) = parse_pod_cidr(&cidr)? {
        tracing::info!(pod_cidrs = ?cidrs, "pod CIDRs set by the kubelet");
        ctx.lifecycle.network.set_pod_cidrs(cidrs);
    }
    Ok(cri::UpdateRuntimeConfigResponse {})
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_dual_stack_cidrs() {
        assert_eq!(parse_pod_cidr("").unwrap(), None);
        assert_eq!(
            parse_pod_cidr("10.244.1.0/24").unwrap(),
            Some(vec!["10.244.1.0/24".to_string()])
        );
        assert_eq!(
            parse_pod_cidr("10.244.1.0/24, fd00:1::/64").unwrap(),
            Some(vec!["10.244.1.0/24".to_string(), "fd00:1::/64".to_string()])
        );
    }

    #[test]
    fn rejects_bad_cidrs_naming_field_and_value() {
        for bad in ["10.0.0.0", "10.0.0.0/33", "nope/8", "fd00::/129"] {
            let e = parse_pod_cidr(bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}");
            assert!(e.message().contains("pod_cidr"), "{}", e.message());
            assert!(e.message().contains(bad), "{}", e.message());
        }
    }
}
