//! `RemoveContainer`: force-removes a running container; unknown ids succeed (CRI).

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;

/// Handle `RemoveContainer`.
pub async fn handle(
    ctx: &Context,
    req: cri::RemoveContainerRequest,
) -> Result<cri::RemoveContainerResponse, Status> {
    if req.container_id.is_empty() {
        return Err(missing_field("RemoveContainer", "container_id"));
    }
    ctx.lifecycle.remove_container(&req.container_id).await?;
    Ok(cri::RemoveContainerResponse {})
}
