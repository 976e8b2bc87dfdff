//! `CreateContainer`.

use crust_proto::cri;
use tonic::Status;

use super::Context;

/// Handle `CreateContainer`.
pub async fn handle(
    ctx: &Context,
    req: cri::CreateContainerRequest,
) -> Result<cri::CreateContainerResponse, Status> {
    let container_id = ctx.lifecycle.create_container(req).await?;
    Ok(cri::CreateContainerResponse { container_id })
}
