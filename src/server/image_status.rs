//! `ImageStatus` (CRI ImageService).
//!
//! SKELETON: filled by the image-service helper.

use crust_proto::cri;
use tonic::Status;

use super::Context;

/// Handle `ImageStatus`.
pub async fn handle(_ctx: &Context, _req: cri::ImageStatusRequest) -> Result<cri::ImageStatusResponse, Status> {
    Err(super::unimplemented::rpc("ImageStatus", "image service"))
}
