//! `PullImage` (CRI ImageService).
//!
//! SKELETON: filled by the image-service helper.

use crust_proto::cri;
use tonic::Status;

use super::Context;

/// Handle `PullImage`.
pub async fn handle(_ctx: &Context, _req: cri::PullImageRequest) -> Result<cri::PullImageResponse, Status> {
    Err(super::unimplemented::rpc("PullImage", "image service"))
}
