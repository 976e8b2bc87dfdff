//! `Exec`: validate the request and return a single-use URL on the streaming server
//! (`crate::streaming`), where the client then runs the command over SPDY or WebSocket.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;
use crate::streaming::StreamOpts;

/// Handle `Exec`.
pub async fn handle(ctx: &Context, req: cri::ExecRequest) -> Result<cri::ExecResponse, Status> {
    if req.container_id.is_empty() {
        return Err(missing_field("Exec", "container_id"));
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
        .exec(&req.container_id, req.cmd, opts)
        .map_err(Status::from)?;
    Ok(cri::ExecResponse { url })
}
