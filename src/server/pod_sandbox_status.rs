//! `PodSandboxStatus` (with `verbose`, `info["info"]` holds crust's record as JSON, the
//! way CRI-O and containerd expose their internal view, plus the containers' statuses
//! when `verbose` asks for them through the newer `containers_statuses` field).
//!
//! `network` carries the addresses CNI gave the pod (`lifecycle::status::network_status`).

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
    let status = pod_status(&pod);
    Ok(cri::PodSandboxStatusResponse {
        status: Some(status),
        info,
        containers_statuses,
        timestamp: crate::state::now_nanos(),
    })
}
