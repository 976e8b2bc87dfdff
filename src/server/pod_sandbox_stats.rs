//! `PodSandboxStats`: the pod's CPU and memory are the sums over its running containers
//! (crust runs no infra container, so the containers are all there is), plus each
//! container's own stats.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::container_stats::stats;
use super::error::missing_field;
use crate::state::{ContainerState, Pod};

/// Stats of one pod.
pub async fn pod_stats(ctx: &Context, pod: &Pod) -> cri::PodSandboxStats {
    let mut containers = Vec::new();
    let (mut cpu, mut ws, mut usage, mut rss, mut pf, mut mpf) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut any = false;
    let now = crate::state::now_nanos();
    for c in ctx.lifecycle.state.pod_containers(&pod.id) {
        if c.record().state != ContainerState::Running {
            continue;
        }
        let u = ctx.lifecycle.container_usage(&c).await;
        if let Some(s) = &u.cgroup {
            any = true;
            cpu += s.cpu_usage_ns;
            ws += s.memory_working_set;
            usage += s.memory_usage;
            rss += s.memory_rss;
            pf += s.page_faults;
            mpf += s.major_page_faults;
        }
        containers.push(stats(&c, &u));
    }
    let v = |value| Some(cri::UInt64Value { value });
    cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: pod.id.clone(),
            metadata: pod.config.metadata.clone(),
            labels: pod.config.labels.clone(),
            annotations: pod.config.annotations.clone(),
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu: any.then(|| cri::CpuUsage {
                timestamp: now,
                usage_core_nano_seconds: v(cpu),
                usage_nano_cores: None,
            }),
            memory: any.then(|| cri::MemoryUsage {
                timestamp: now,
                working_set_bytes: v(ws),
                available_bytes: None,
                usage_bytes: v(usage),
                rss_bytes: v(rss),
                page_faults: v(pf),
                major_page_faults: v(mpf),
            }),
            network: None,
            process: None,
            containers,
        }),
        windows: None,
    }
}

/// Handle `PodSandboxStats`.
pub async fn handle(
    ctx: &Context,
    req: cri::PodSandboxStatsRequest,
) -> Result<cri::PodSandboxStatsResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(missing_field("PodSandboxStats", "pod_sandbox_id"));
    }
    let pod = ctx.lifecycle.pod(&req.pod_sandbox_id)?;
    Ok(cri::PodSandboxStatsResponse {
        stats: Some(pod_stats(ctx, &pod).await),
    })
}
