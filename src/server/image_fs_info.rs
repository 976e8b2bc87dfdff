//! `ImageFsInfo` (CRI ImageService).
//!
//! SKELETON: filled by the image-service helper.

use crust_proto::cri;
use tonic::Status;

use super::Context;

/// Handle `ImageFsInfo`.
pub async fn handle(_ctx: &Context, _req: cri::ImageFsInfoRequest) -> Result<cri::ImageFsInfoResponse, Status> {
    Err(super::unimplemented::rpc("ImageFsInfo", "image service"))
}
