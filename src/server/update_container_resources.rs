//! `UpdateContainerResources` (Linux resources through `<runtime> update`).

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;

/// Handle `UpdateContainerResources`.
pub async fn handle(
    ctx: &Context,
    req: cri::UpdateContainerResourcesRequest,
) -> Result<cri::UpdateContainerResourcesResponse, Status> {
    if req.container_id.is_empty() {
        return Err(missing_field("UpdateContainerResources", "container_id"));
    }
    let linux = req
        .linux
        .ok_or_else(|| missing_field("UpdateContainerResources", "linux"))?;
    ctx.lifecycle
        .update_container_resources(&req.container_id, linux)
        .await?;
    Ok(cri::UpdateContainerResourcesResponse {})
}
