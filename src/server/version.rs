//! `Version` (CRI RuntimeService).
//!
//! SKELETON: filled by the daemon helper.

use crust_proto::cri;
use tonic::Status;

use super::Context;

/// Handle `Version`.
pub async fn handle(_ctx: &Context, _req: cri::VersionRequest) -> Result<cri::VersionResponse, Status> {
    Err(super::unimplemented::rpc("Version", "version"))
}
