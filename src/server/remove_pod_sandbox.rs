//! `RemovePodSandbox`: force-remove the pod and its containers; unknown pods succeed (CRI).

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;

/// Handle `RemovePodSandbox`.
pub async fn handle(
    ctx: &Context,
    req: cri::RemovePodSandboxRequest,
) -> Result<cri::RemovePodSandboxResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(missing_field("RemovePodSandbox", "pod_sandbox_id"));
    }
    ctx.lifecycle.remove_pod(&req.pod_sandbox_id).await?;
    Ok(cri::RemovePodSandboxResponse {})
}
