//! `RemoveImage` (CRI ImageService).
//!
//! SKELETON: filled by the image-service helper.

use crust_proto::cri;
use tonic::Status;

use super::Context;

/// Handle `RemoveImage`.
pub async fn handle(_ctx: &Context, _req: cri::RemoveImageRequest) -> Result<cri::RemoveImageResponse, Status> {
    Err(super::unimplemented::rpc("RemoveImage", "image service"))
}
