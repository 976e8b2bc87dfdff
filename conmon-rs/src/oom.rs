//! OOM detection from the container's memory cgroup.
//!
//! At start (while the init lives) we resolve its memory cgroup from
//! `/proc/<pid>/cgroup`; at exit we read the kernel's `oom_kill` counter:
//! cgroup v1 `memory.oom_control`, cgroup v2 `memory.events` (both since 4.13).
//! A counter > 0 means the kernel OOM killer fired inside the container, which is
//! what CRI reports as reason `OOMKilled` (CRI-O/conmon do the same).

use std::path::{Path, PathBuf};

/// Where the container's OOM counter lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OomSource {
    /// cgroup v1 `memory.oom_control`.
    V1(PathBuf),
    /// cgroup v2 `memory.events`.
    V2(PathBuf),
}

/// Parses `/proc/<pid>/cgroup` content; prefers the v1 memory controller (hybrid
/// hosts keep memory on v1), else the unified hierarchy.
pub fn source_from_proc_cgroup(content: &str, cgroup_root: &Path) -> Option<OomSource> {
    let mut unified = None;
    for line in content.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if ctrls.split(',').any(|c| c == "memory") {
            return Some(OomSource::V1(
                cgroup_root
                    .join("memory")
                    .join(rel)
                    .join("memory.oom_control"),
            ));
        }
        if ctrls.is_empty() {
            unified = Some(rel.to_string());
        }
    }
    let rel = unified?;
    // Pure v2 mounts at the root; hybrid mounts it under `unified`.
    let base = if cgroup_root.join("cgroup.controllers").exists() {
        cgroup_root.to_path_buf()
    } else {
        cgroup_root.join("unified")
    };
    Some(OomSource::V2(base.join(rel).join("memory.events")))
}

/// The `oom_kill` counter out of `memory.oom_control` / `memory.events` content.
pub fn parse_oom_kill(content: &str) -> Option<u64> {
    content.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == "oom_kill").then(|| it.next()?.parse().ok())?
    })
}

/// Finds the source for a live pid (reads `/proc/<pid>/cgroup`).
pub fn source_for_pid(pid: i32) -> Option<OomSource> {
    let c = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    source_from_proc_cgroup(&c, Path::new("/sys/fs/cgroup"))
}

/// Did the OOM killer fire? Unreadable counters count as "no".
pub fn was_oom_killed(src: &OomSource) -> bool {
    let p = match src {
        OomSource::V1(p) | OomSource::V2(p) => p,
    };
    std::fs::read_to_string(p)
        .ok()
        .and_then(|c| parse_oom_kill(&c))
        .is_some_and(|n| n > 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn v1_oom_control() {
        let s = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(parse_oom_kill(s), Some(2));
        assert_eq!(parse_oom_kill("oom_kill_disable 0\nunder_oom 0\n"), None);
    }

    #[test]
    fn v2_memory_events() {
        let s = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(s), Some(1));
        assert_eq!(parse_oom_kill("oom 0\noom_kill 0\n"), Some(0));
    }

    #[test]
    fn hybrid_prefers_v1_memory() {
        let c = "9:name=systemd:/\n4:memory:/crust/abc\n0::/crust/abc\n";
        assert_eq!(
            source_from_proc_cgroup(c, Path::new("/sys/fs/cgroup")),
            Some(OomSource::V1(
                "/sys/fs/cgroup/memory/crust/abc/memory.oom_control".into()
            ))
        );
    }

    #[test]
    fn pure_v2() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cgroup.controllers"), "memory").unwrap();
        let c = "0::/kubepods/pod1/c1\n";
        assert_eq!(
            source_from_proc_cgroup(c, d.path()),
            Some(OomSource::V2(
                d.path().join("kubepods/pod1/c1/memory.events")
            ))
        );
    }

    #[test]
    fn counter_file_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("memory.events");
        std::fs::write(&p, "oom 1\noom_kill 1\n").unwrap();
        assert!(was_oom_killed(&OomSource::V2(p.clone())));
        std::fs::write(&p, "oom_kill 0\n").unwrap();
        assert!(!was_oom_killed(&OomSource::V2(p)));
        assert!(!was_oom_killed(&OomSource::V1(d.path().join("missing"))));
    }
}
