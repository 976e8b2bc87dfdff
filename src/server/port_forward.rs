//! `PortForward`: validate the pod (it must be ready) and the ports, and return a
//! single-use URL on the streaming server that forwards connections into the pod's
//! network namespace.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;

/// Handle `PortForward`.
pub async fn handle(
    ctx: &Context,
    req: cri::PortForwardRequest,
) -> Result<cri::PortForwardResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(missing_field("PortForward", "pod_sandbox_id"));
    }
    tracing::Span::current().record("pod", req.pod_sandbox_id.as_str());
    let url = ctx
        .streaming
        .port_forward(&req.pod_sandbox_id, &req.port)
        .map_err(Status::from)?;
    Ok(cri::PortForwardResponse { url })
}
