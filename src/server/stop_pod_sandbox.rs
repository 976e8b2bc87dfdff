//! `StopPodSandbox`: stop every container of the pod and release its namespaces.
//! Idempotent; an unknown pod is NotFound as in CRI-O (the kubelet treats it as stopped).

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;

/// Handle `StopPodSandbox`.
pub async fn handle(
    ctx: &Context,
    req: cri::StopPodSandboxRequest,
) -> Result<cri::StopPodSandboxResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(missing_field("StopPodSandbox", "pod_sandbox_id"));
    }
    ctx.lifecycle.stop_pod(&req.pod_sandbox_id).await?;
    Ok(cri::StopPodSandboxResponse {})
}
