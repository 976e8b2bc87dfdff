//! `ReopenContainerLog`: the monitor closes and reopens the log file (after rotation).

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;

/// Handle `ReopenContainerLog`.
pub async fn handle(
    ctx: &Context,
    req: cri::ReopenContainerLogRequest,
) -> Result<cri::ReopenContainerLogResponse, Status> {
    if req.container_id.is_empty() {
        return Err(missing_field("ReopenContainerLog", "container_id"));
    }
    ctx.lifecycle
        .reopen_container_log(&req.container_id)
        .await?;
    Ok(cri::ReopenContainerLogResponse {})
}
