//! cgroup resources (CRI `LinuxContainerResources` -> OCI `linux.resources`) and the
//! process `oom_score_adj`.
//!
//! Zero means "not set" for every numeric CRI field (proto3 defaults), as containerd reads
//! them. The memory swap limit follows containerd: CRI `memory_swap_limit_in_bytes` when
//! given, else equal to the memory limit (no swap, which is what kubelet expects) — and only
//! when the host's memory cgroup accounts swap, since runc fails to write a missing
//! `memory.memsw.limit_in_bytes`.
//!
//! `oom_score_adj` is clamped to at least the daemon's own value: lowering it needs
//! CAP_SYS_RESOURCE, which this kind of host does not give the daemon, and runc would fail
//! the container (DEVELOPERS.md).

use oci_spec::runtime::{LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxResources};

use crust_proto::cri;

use super::SpecOptions;
use super::host::{Host, RealHost};

/// The OCI resources for CRI resources (for `CreateContainer` and for
/// `UpdateContainerResources` -> `runc update --resources -`).
pub fn linux_resources(r: &cri::LinuxContainerResources, _opts: &SpecOptions) -> LinuxResources {
    linux_resources_with(r, RealHost.swap_available())
}

/// [`linux_resources`] with the host's swap accounting given.
pub fn linux_resources_with(r: &cri::LinuxContainerResources, swap: bool) -> LinuxResources {
    let mut out = LinuxResources::default();

    let mut cpu = LinuxCpu::default();
    let mut cpu_set = false;
    if r.cpu_shares > 0 {
        cpu.set_shares(u64::try_from(r.cpu_shares).ok());
        cpu_set = true;
    }
    if r.cpu_quota != 0 {
        cpu.set_quota(Some(r.cpu_quota));
        cpu_set = true;
    }
    if r.cpu_period > 0 {
        cpu.set_period(u64::try_from(r.cpu_period).ok());
        cpu_set = true;
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.set_cpus(Some(r.cpuset_cpus.clone()));
        cpu_set = true;
    }
    if !r.cpuset_mems.is_empty() {
        cpu.set_mems(Some(r.cpuset_mems.clone()));
        cpu_set = true;
    }
    if cpu_set {
        out.set_cpu(Some(cpu));
    }

    if r.memory_limit_in_bytes > 0 {
        let mut mem = LinuxMemory::default();
        mem.set_limit(Some(r.memory_limit_in_bytes));
        if swap {
            let s = if r.memory_swap_limit_in_bytes != 0 {
                r.memory_swap_limit_in_bytes
            } else {
                r.memory_limit_in_bytes
            };
            mem.set_swap(Some(s));
        }
        out.set_memory(Some(mem));
    }

    if !r.hugepage_limits.is_empty() {
        let limits = r
            .hugepage_limits
            .iter()
            .map(|h| {
                let mut l = LinuxHugepageLimit::default();
                l.set_page_size(h.page_size.clone())
                    .set_limit(i64::try_from(h.limit).unwrap_or(i64::MAX));
                l
            })
            .collect();
        out.set_hugepage_limits(Some(limits));
    }

    if !r.unified.is_empty() {
        out.set_unified(Some(r.unified.clone().into_iter().collect()));
    }
    out
}

/// The `oom_score_adj` for a container: the requested value clamped into
/// `[min, 1000]` where `min` is the daemon's own score (see the module docs).
pub fn clamp_oom_score_adj(requested: i64, min: i32) -> i32 {
    let min = i64::from(min.clamp(-1000, 1000));
    i32::try_from(requested.clamp(min, 1000)).unwrap_or(1000)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn clamp_table() {
        // (requested, daemon min, expected)
        let cases = [
            (0, 0, 0),
            (-998, 0, 0),
            (-998, -999, -998),
            (-1000, -500, -500),
            (500, -500, 500),
            (1000, 0, 1000),
            (5000, 0, 1000),
            (i64::MIN, 0, 0),
            (100, 300, 300),
        ];
        for (req, min, want) in cases {
            assert_eq!(clamp_oom_score_adj(req, min), want, "{req} {min}");
        }
    }

    #[test]
    fn resources_mapping() {
        let r = cri::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            hugepage_limits: vec![cri::HugepageLimit {
                page_size: "2MB".into(),
                limit: 4 << 20,
            }],
            unified: [("memory.high".to_string(), "50000000".to_string())].into(),
            ..Default::default()
        };
        let o = linux_resources_with(&r, true);
        let cpu = o.cpu().clone().unwrap();
        assert_eq!(
            (cpu.shares(), cpu.quota(), cpu.period()),
            (Some(512), Some(50_000), Some(100_000))
        );
        assert_eq!(cpu.cpus().as_deref(), Some("0-1"));
        assert_eq!(cpu.mems().as_deref(), Some("0"));
        let mem = o.memory().unwrap();
        assert_eq!((mem.limit(), mem.swap()), (Some(64 << 20), Some(64 << 20)));
        assert_eq!(o.hugepage_limits().as_ref().unwrap()[0].limit(), 4 << 20);
        assert_eq!(o.unified().as_ref().unwrap()["memory.high"], "50000000");
        // explicit swap; no swap accounting
        let r2 = cri::LinuxContainerResources {
            memory_swap_limit_in_bytes: 128 << 20,
            ..r.clone()
        };
        assert_eq!(
            linux_resources_with(&r2, true).memory().unwrap().swap(),
            Some(128 << 20)
        );
        assert_eq!(
            linux_resources_with(&r2, false).memory().unwrap().swap(),
            None
        );
        // nothing set -> nothing emitted
        let e = linux_resources_with(&cri::LinuxContainerResources::default(), true);
        assert!(e.cpu().is_none() && e.memory().is_none() && e.unified().is_none());
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j, serde_json::json!({}));
    }
}
