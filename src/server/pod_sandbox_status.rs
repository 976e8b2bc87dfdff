//! `PodSandboxStatus` (with `verbose`, `info["info"]` holds crust's record as JSON, the
//! way CRI-O and containerd expose their internal view, plus the containers' statuses
//! when `verbose` asks for them through the newer `containers_statuses` field).
//!
//! `network` carries the addresses CNI gave the pod: the first IPv4 (else IPv6) as `ip`,
//! the others as `additional_ips` (the kubelet reads dual-stack pod IPs this way).

use std::collections::HashMap;

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;
use crate::lifecycle::status::{container_status, pod_status};

/// Handle `PodSandboxStatus`.
pub async fn handle(
    ctx: &Context,
    req: cri::PodSandboxStatusRequest,
) -> Result<cri::PodSandboxStatusResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(missing_field("PodSandboxStatus", "pod_sandbox_id"));
    }
    let pod = ctx.lifecycle.pod(&req.pod_sandbox_id)?;
    let mut info = HashMap::new();
    if req.verbose {
        let rec = pod.record();
        let v = serde_json::json!({
            "id": rec.id,
            "runtimeHandler": rec.runtime_handler,
            "dir": rec.dir,
            "netNamespace": rec.net_ns,
            "ipcNamespace": rec.ipc_ns,
            "utsNamespace": rec.uts_ns,
            "pidMode": rec.pid_mode,
            "pausePid": rec.pause.map(|p| p.pid),
            "shm": rec.shm,
            "hostname": rec.hostname,
            "network": rec.network,
        });
        info.insert("info".to_string(), v.to_string());
    }
    let containers_statuses = ctx
        .lifecycle
        .state
        .pod_containers(&pod.id)
        .iter()
        .map(|c| container_status(c))
        .collect();
    let mut status = pod_status(&pod);
    status.network = Some(network_status(pod.record().network.as_ref()));
    Ok(cri::PodSandboxStatusResponse {
        status: Some(status),
        info,
        containers_statuses,
        timestamp: crate::state::now_nanos(),
    })
}

/// `PodSandboxNetworkStatus` from the pod's CNI addresses (empty without CNI).
pub fn network_status(
    net: Option<&crate::state::records::PodNetworkRecord>,
) -> cri::PodSandboxNetworkStatus {
    let ips = net.map(|n| n.ips.as_slice()).unwrap_or_default();
    cri::PodSandboxNetworkStatus {
        ip: ips.first().cloned().unwrap_or_default(),
        additional_ips: ips
            .iter()
            .skip(1)
            .map(|ip| cri::PodIp { ip: ip.clone() })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::records::PodNetworkRecord;

    #[test]
    fn network_status_primary_and_additional() {
        assert_eq!(
            network_status(None),
            cri::PodSandboxNetworkStatus::default()
        );
        let n = PodNetworkRecord {
            network: "crust".into(),
            interface: "eth0".into(),
            ips: vec!["10.87.0.5".into(), "fd87::5".into()],
        };
        let s = network_status(Some(&n));
        assert_eq!(s.ip, "10.87.0.5");
        assert_eq!(
            s.additional_ips,
            vec![cri::PodIp {
                ip: "fd87::5".into()
            }]
        );
    }
}
