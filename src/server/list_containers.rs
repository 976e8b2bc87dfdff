//! `ListContainers` with the CRI filter (id or prefix, pod id or prefix, state, labels).

use crust_proto::cri;
use tonic::Status;

use super::Context;
use crate::lifecycle::status::{container_entry, labels_match};

/// Handle `ListContainers`.
pub async fn handle(
    ctx: &Context,
    req: cri::ListContainersRequest,
) -> Result<cri::ListContainersResponse, Status> {
    let f = req.filter.unwrap_or_default();
    let mut containers: Vec<cri::Container> = ctx
        .lifecycle
        .state
        .containers()
        .iter()
        .filter(|c| f.id.is_empty() || c.id.starts_with(&f.id))
        .filter(|c| f.pod_sandbox_id.is_empty() || c.pod_id.starts_with(&f.pod_sandbox_id))
        .map(|c| container_entry(c))
        .filter(|c| f.state.as_ref().is_none_or(|s| s.state == c.state))
        .filter(|c| labels_match(&c.labels, &f.label_selector))
        .collect();
    containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    Ok(cri::ListContainersResponse { containers })
}
