//! `StartContainer`.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;

/// Handle `StartContainer`.
pub async fn handle(
    ctx: &Context,
    req: cri::StartContainerRequest,
) -> Result<cri::StartContainerResponse, Status> {
    if req.container_id.is_empty() {
        return Err(missing_field("StartContainer", "container_id"));
    }
    ctx.lifecycle.start_container(&req.container_id).await?;
    Ok(cri::StartContainerResponse {})
}
