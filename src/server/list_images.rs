//! `ListImages` (CRI ImageService).
//!
//! SKELETON: filled by the image-service helper.

use crust_proto::cri;
use tonic::Status;

use super::Context;

/// Handle `ListImages`.
pub async fn handle(_ctx: &Context, _req: cri::ListImagesRequest) -> Result<cri::ListImagesResponse, Status> {
    Err(super::unimplemented::rpc("ListImages", "image service"))
}
