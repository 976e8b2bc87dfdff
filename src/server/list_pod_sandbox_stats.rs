//! `ListPodSandboxStats` (filter: id prefix, labels), ready pods only.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::pod_sandbox_stats::pod_stats;
use crate::lifecycle::status::labels_match;
use crate::state::PodState;

/// Handle `ListPodSandboxStats`.
pub async fn handle(
    ctx: &Context,
    req: cri::ListPodSandboxStatsRequest,
) -> Result<cri::ListPodSandboxStatsResponse, Status> {
    let f = req.filter.unwrap_or_default();
    let mut stats = Vec::new();
    for p in ctx.lifecycle.state.pods() {
        if (!f.id.is_empty() && !p.id.starts_with(&f.id))
            || !labels_match(&p.config.labels, &f.label_selector)
            || p.record().state != PodState::Ready
        {
            continue;
        }
        stats.push(pod_stats(ctx, &p).await);
    }
    Ok(cri::ListPodSandboxStatsResponse { stats })
}
