//! `Attach`: validate the request and return a single-use URL on the streaming server
//! that joins the container's stdio through its monitor.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;
use crate::streaming::StreamOpts;

/// Handle `Attach`.
pub async fn handle(ctx: &Context, req: cri::AttachRequest) -> Result<cri::AttachResponse, Status> {
    if req.container_id.is_empty() {
        return Err(missing_field("Attach", "container_id"));
    }
    tracing::Span::current().record("container", req.container_id.as_str());
    let opts = StreamOpts {
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        tty: req.tty,
    };
    let url = ctx
        .streaming
        .attach(&req.container_id, opts)
        .map_err(Status::from)?;
    Ok(cri::AttachResponse { url })
}
