//! `ListPodSandbox` with the CRI filter (id or id prefix, state, label selector).

use crust_proto::cri;
use tonic::Status;

use super::Context;
use crate::lifecycle::status::{labels_match, pod_entry};

/// Handle `ListPodSandbox`.
pub async fn handle(
    ctx: &Context,
    req: cri::ListPodSandboxRequest,
) -> Result<cri::ListPodSandboxResponse, Status> {
    let f = req.filter.unwrap_or_default();
    let mut items: Vec<cri::PodSandbox> = ctx
        .lifecycle
        .state
        .pods()
        .iter()
        .filter(|p| f.id.is_empty() || p.id.starts_with(&f.id))
        .map(|p| pod_entry(p))
        .filter(|p| f.state.as_ref().is_none_or(|s| s.state == p.state))
        .filter(|p| labels_match(&p.labels, &f.label_selector))
        .collect();
    items.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    Ok(cri::ListPodSandboxResponse { items })
}
