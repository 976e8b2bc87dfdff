//! `ContainerStats`, and the CRI conversion of usage numbers shared with the list and pod
//! stats RPCs. CPU and memory come from the container's cgroup (v1 or v2), the writable
//! layer from the storage crate. `usage_nano_cores` is left unset: it needs two samples
//! and the kubelet computes rates from `usage_core_nano_seconds` itself.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;
use crate::container::update::ContainerUsage;
use crate::state::Container;

fn val(value: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value })
}

/// CPU usage in CRI form.
pub fn cpu(u: &ContainerUsage) -> Option<cri::CpuUsage> {
    u.cgroup.as_ref().map(|s| cri::CpuUsage {
        timestamp: u.timestamp,
        usage_core_nano_seconds: val(s.cpu_usage_ns),
        usage_nano_cores: None,
    })
}

/// Memory usage in CRI form.
pub fn memory(u: &ContainerUsage) -> Option<cri::MemoryUsage> {
    u.cgroup.as_ref().map(|s| cri::MemoryUsage {
        timestamp: u.timestamp,
        working_set_bytes: val(s.memory_working_set),
        available_bytes: None,
        usage_bytes: val(s.memory_usage),
        rss_bytes: val(s.memory_rss),
        page_faults: val(s.page_faults),
        major_page_faults: val(s.major_page_faults),
    })
}

/// One container's stats.
pub fn stats(c: &Container, u: &ContainerUsage) -> cri::ContainerStats {
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: c.id.clone(),
            metadata: c.config.metadata.clone(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
        }),
        cpu: cpu(u),
        memory: memory(u),
        writable_layer: u.writable.as_ref().map(|w| cri::FilesystemUsage {
            timestamp: u.timestamp,
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: w.mountpoint.to_string_lossy().into_owned(),
            }),
            used_bytes: val(w.bytes),
            inodes_used: val(w.inodes),
        }),
        swap: None,
    }
}

/// Handle `ContainerStats`.
pub async fn handle(
    ctx: &Context,
    req: cri::ContainerStatsRequest,
) -> Result<cri::ContainerStatsResponse, Status> {
    if req.container_id.is_empty() {
        return Err(missing_field("ContainerStats", "container_id"));
    }
    let c = ctx.lifecycle.container(&req.container_id)?;
    let u = ctx.lifecycle.container_usage(&c).await;
    Ok(cri::ContainerStatsResponse {
        stats: Some(stats(&c, &u)),
    })
}
