//! `RunPodSandbox`: validate, pick the RuntimeClass handler, create the sandbox.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;

/// Handle `RunPodSandbox`.
pub async fn handle(
    ctx: &Context,
    req: cri::RunPodSandboxRequest,
) -> Result<cri::RunPodSandboxResponse, Status> {
    let config = req
        .config
        .ok_or_else(|| missing_field("RunPodSandbox", "config"))?;
    let pod_sandbox_id = ctx.lifecycle.run_pod(config, &req.runtime_handler).await?;
    Ok(cri::RunPodSandboxResponse { pod_sandbox_id })
}
