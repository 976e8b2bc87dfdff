//! `Status` (CRI RuntimeService).
//!
//! SKELETON: filled by the daemon helper.

use crust_proto::cri;
use tonic::Status;

use super::Context;

/// Handle `Status`.
pub async fn handle(_ctx: &Context, _req: cri::StatusRequest) -> Result<cri::StatusResponse, Status> {
    Err(super::unimplemented::rpc("Status", "version"))
}
