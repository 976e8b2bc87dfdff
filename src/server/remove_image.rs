//! `RemoveImage` (CRI ImageService). Idempotent as CRI requires: removing an image that is
//! not there succeeds. By id or digest reference the whole image goes; by tag only that tag
//! (CRI-O behaviour), the image going with its last tag. An image a container uses is
//! refused with FailedPrecondition naming the container.

use crust_proto::cri;
use tonic::Status;
use tracing::Instrument;

use super::Context;
use super::error::missing_field;

/// Handle `RemoveImage`.
pub async fn handle(
    ctx: &Context,
    req: cri::RemoveImageRequest,
) -> Result<cri::RemoveImageResponse, Status> {
    let image = req.image.map(|s| s.image).unwrap_or_default();
    if image.is_empty() {
        return Err(missing_field("RemoveImage", "image.image"));
    }
    ctx.images
        .remove(&image)
        .instrument(tracing::info_span!("image", image = %image))
        .await?;
    Ok(cri::RemoveImageResponse {})
}
