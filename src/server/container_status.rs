//! `ContainerStatus` (with `verbose`, `info["info"]` has pid, monitor pid, bundle,
//! runtime handler and cgroups path as JSON, like CRI-O's verbose info).

use std::collections::HashMap;

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;
use crate::lifecycle::status::container_status;

/// Handle `ContainerStatus`.
pub async fn handle(
    ctx: &Context,
    req: cri::ContainerStatusRequest,
) -> Result<cri::ContainerStatusResponse, Status> {
    if req.container_id.is_empty() {
        return Err(missing_field("ContainerStatus", "container_id"));
    }
    let c = ctx.lifecycle.container(&req.container_id)?;
    let mut info = HashMap::new();
    if req.verbose {
        let r = c.record();
        let v = serde_json::json!({
            "pid": r.pid,
            "monitorPid": r.monitor_pid,
            "sandboxID": r.pod_id,
            "bundle": r.bundle,
            "rootfs": r.rootfs,
            "runtimeHandler": r.runtime_handler,
            "cgroupsPath": r.cgroups_path,
            "stopSignal": r.stop_signal,
        });
        info.insert("info".to_string(), v.to_string());
    }
    Ok(cri::ContainerStatusResponse {
        status: Some(container_status(&c)),
        info,
    })
}
