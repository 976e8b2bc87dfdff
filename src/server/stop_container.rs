//! `StopContainer`: stop signal, `timeout` seconds of grace, then SIGKILL. Idempotent.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;

/// Handle `StopContainer`.
pub async fn handle(
    ctx: &Context,
    req: cri::StopContainerRequest,
) -> Result<cri::StopContainerResponse, Status> {
    if req.container_id.is_empty() {
        return Err(missing_field("StopContainer", "container_id"));
    }
    ctx.lifecycle
        .stop_container(&req.container_id, req.timeout)
        .await?;
    Ok(cri::StopContainerResponse {})
}
