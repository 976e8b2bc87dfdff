//! `ListContainerStats` (filter: id, pod id, labels), only for running and created
//! containers as containerd and CRI-O report them.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::container_stats::stats;
use crate::lifecycle::status::labels_match;
use crate::state::ContainerState;

/// Handle `ListContainerStats`.
pub async fn handle(
    ctx: &Context,
    req: cri::ListContainerStatsRequest,
) -> Result<cri::ListContainerStatsResponse, Status> {
    let f = req.filter.unwrap_or_default();
    let mut out = Vec::new();
    for c in ctx.lifecycle.state.containers() {
        if (!f.id.is_empty() && !c.id.starts_with(&f.id))
            || (!f.pod_sandbox_id.is_empty() && !c.pod_id.starts_with(&f.pod_sandbox_id))
            || !labels_match(&c.config.labels, &f.label_selector)
            || c.record().state == ContainerState::Exited
        {
            continue;
        }
        let u = ctx.lifecycle.container_usage(&c).await;
        out.push(stats(&c, &u));
    }
    Ok(cri::ListContainerStatsResponse { stats: out })
}
