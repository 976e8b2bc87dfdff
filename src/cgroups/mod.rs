//! Container cgroups: the `cgroupsPath` given to the runtime and statistics read back from the cgroup filesystem.
//!
//! crust never creates container cgroups itself: the OCI runtime does, from
//! `linux.cgroupsPath` (runtime-spec config-linux.md). crust chooses that path
//! ([`container_path`]), reads statistics back for `ContainerStats`/`PodSandboxStats`
//! ([`stats`]) and removes cgroup directories a runtime left behind ([`remove`]).
//!
//! Which hierarchy is read is decided by what is mounted, as runc does: cgroup v2 when the
//! root is a unified mount (`cgroup.controllers` present), otherwise the v1 controller
//! hierarchies (`memory`, `cpuacct`, `pids`); in hybrid mode the v2 mount at `unified/`
//! carries no controllers and is only cleaned up. All file access goes through
//! [`CgroupFs`], which holds the mount root, so tests run against a temporary directory.

pub mod path;
pub mod stats;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use path::{container_path, expand_slice, relative_dir};

/// Where the cgroup filesystems are mounted on a normal host.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup manager the runtime is told to use (runc `--systemd-cgroup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Driver {
    #[default]
    Cgroupfs,
    Systemd,
}

impl Driver {
    /// Parse the config value (`cgroup_manager = "cgroupfs" | "systemd"`).
    pub fn from_name(name: &str) -> Option<Driver> {
        match name {
            "cgroupfs" => Some(Driver::Cgroupfs),
            "systemd" => Some(Driver::Systemd),
            _ => None,
        }
    }

    /// The config spelling, also what runc's `--systemd-cgroup` choice is logged as.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Cgroupfs => "cgroupfs",
            Driver::Systemd => "systemd",
        }
    }
}

/// Statistics of one cgroup, in CRI units (bytes, nanoseconds, counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory usage including page cache.
    pub memory_usage: u64,
    /// Usage minus inactive file pages (what the kubelet evicts on).
    pub memory_working_set: u64,
    /// Anonymous memory.
    pub memory_rss: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    /// Number of tasks.
    pub pids: u64,
}

/// Errors reading or removing cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("invalid cgroups path `{path}`: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("cgroup {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("cgroup file {path}: unexpected value `{value}`")]
    Parse { path: PathBuf, value: String },
    #[error("cgroup {path}: {op}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl CgroupError {
    /// Whether the cgroup is simply gone (the container exited and was cleaned up).
    pub fn is_not_found(&self) -> bool {
        matches!(self, CgroupError::NotFound { .. })
    }
}

/// Which cgroup version the host exposes at the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Pure v2: one unified hierarchy at the root.
    Unified,
    /// v1 (legacy or hybrid): one directory per controller hierarchy.
    V1 {
        memory: PathBuf,
        cpuacct: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
}

/// The cgroup filesystem seam: everything under `root`.
#[derive(Debug, Clone)]
pub struct CgroupFs {
    pub root: PathBuf,
}

impl Default for CgroupFs {
    fn default() -> Self {
        CgroupFs {
            root: PathBuf::from(DEFAULT_ROOT),
        }
    }
}

impl CgroupFs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CgroupFs { root: root.into() }
    }

    /// Detect the layout from what is mounted under the root.
    pub fn layout(&self) -> Result<Layout, CgroupError> {
        if self.root.join("cgroup.controllers").exists() {
            return Ok(Layout::Unified);
        }
        let memory = self.root.join("memory");
        if !memory.is_dir() {
            return Err(CgroupError::NotFound { path: memory });
        }
        let first_dir =
            |names: &[&str]| names.iter().map(|n| self.root.join(n)).find(|p| p.is_dir());
        Ok(Layout::V1 {
            memory,
            cpuacct: first_dir(&["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]),
            pids: first_dir(&["pids"]),
        })
    }

    /// Statistics of the cgroup `cgroups_path` (a [`container_path`] value, or a pod's
    /// cgroup parent).
    pub fn stats(&self, driver: Driver, cgroups_path: &str) -> Result<CgroupStats, CgroupError> {
        let rel = relative_dir(driver, cgroups_path)?;
        match self.layout()? {
            Layout::Unified => stats::read_v2(&self.root.join(&rel)),
            Layout::V1 {
                memory,
                cpuacct,
                pids,
            } => stats::read_v1(
                &memory.join(&rel),
                cpuacct.map(|d| d.join(&rel)).as_deref(),
                pids.map(|d| d.join(&rel)).as_deref(),
            ),
        }
    }

    /// Every hierarchy root: the root itself for v2, else each directory under it
    /// (v1 controllers, `unified`, named hierarchies), co-mount symlinks deduplicated.
    fn hierarchies(&self) -> Result<Vec<PathBuf>, CgroupError> {
        if self.root.join("cgroup.controllers").exists() {
            return Ok(vec![self.root.clone()]);
        }
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CgroupError::Io {
                    op: "list hierarchies",
                    path: self.root.clone(),
                    source,
                });
            }
        };
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let p = entry.path();
            if !p.is_dir() {
                continue;
            }
            let canon = fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            if !seen.contains(&canon) {
                seen.push(canon);
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove the cgroup `cgroups_path` (and any child cgroups) from every hierarchy.
    /// Idempotent; a cgroup that still has tasks fails with `EBUSY` naming it.
    pub fn remove(&self, driver: Driver, cgroups_path: &str) -> Result<(), CgroupError> {
        let rel = relative_dir(driver, cgroups_path)?;
        for h in self.hierarchies()? {
            rmdir_tree(&h.join(&rel))?;
        }
        Ok(())
    }
}

/// rmdir a cgroup and its child cgroups, deepest first (cgroup directories only contain
/// control files, which go away with the directory).
fn rmdir_tree(dir: &Path) -> Result<(), CgroupError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Io {
                op: "list",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    for entry in rd.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            rmdir_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CgroupError::Io {
            op: "remove",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// [`CgroupFs::stats`] on the host's `/sys/fs/cgroup`.
pub fn stats(driver: Driver, cgroups_path: &str) -> Result<CgroupStats, CgroupError> {
    CgroupFs::default().stats(driver, cgroups_path)
}

/// [`CgroupFs::remove`] on the host's `/sys/fs/cgroup`.
pub fn remove(driver: Driver, cgroups_path: &str) -> Result<(), CgroupError> {
    CgroupFs::default().remove(driver, cgroups_path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v1_tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let rel = "crust/crust-abc";
        for h in ["memory", "cpu,cpuacct", "pids", "unified", "systemd"] {
            fs::create_dir_all(t.path().join(h).join(rel)).unwrap();
        }
        std::os::unix::fs::symlink("cpu,cpuacct", t.path().join("cpuacct")).unwrap();
        let m = t.path().join("memory").join(rel);
        fs::write(m.join("memory.usage_in_bytes"), "100\n").unwrap();
        fs::write(
            m.join("memory.stat"),
            "total_inactive_file 10\ntotal_rss 50\n",
        )
        .unwrap();
        fs::write(
            t.path().join("cpuacct").join(rel).join("cpuacct.usage"),
            "99\n",
        )
        .unwrap();
        fs::write(t.path().join("pids").join(rel).join("pids.current"), "2\n").unwrap();
        t
    }

    #[test]
    fn v1_layout_and_stats() {
        let t = v1_tree();
        let fs_ = CgroupFs::new(t.path());
        match fs_.layout().unwrap() {
            Layout::V1 { cpuacct, pids, .. } => {
                assert_eq!(cpuacct.unwrap(), t.path().join("cpuacct"));
                assert!(pids.is_some());
            }
            l => panic!("{l:?}"),
        }
        let s = fs_.stats(Driver::Cgroupfs, "/crust/crust-abc").unwrap();
        assert_eq!(
            (
                s.memory_usage,
                s.memory_working_set,
                s.memory_rss,
                s.cpu_usage_ns,
                s.pids
            ),
            (100, 90, 50, 99, 2)
        );
        let e = fs_
            .stats(Driver::Cgroupfs, "/crust/crust-gone")
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(matches!(
            fs_.stats(Driver::Cgroupfs, "/"),
            Err(CgroupError::InvalidPath { .. })
        ));
    }

    #[test]
    fn v1_remove_every_hierarchy() {
        let t = v1_tree();
        let fs_ = CgroupFs::new(t.path());
        // Real cgroupfs dirs hold only control files; a temp dir needs them gone first.
        for f in [
            "memory/crust/crust-abc/memory.usage_in_bytes",
            "memory/crust/crust-abc/memory.stat",
            "cpu,cpuacct/crust/crust-abc/cpuacct.usage",
            "pids/crust/crust-abc/pids.current",
        ] {
            fs::remove_file(t.path().join(f)).unwrap();
        }
        fs::create_dir(t.path().join("memory/crust/crust-abc/child")).unwrap();
        fs_.remove(Driver::Cgroupfs, "/crust/crust-abc").unwrap();
        for h in ["memory", "cpu,cpuacct", "pids", "unified", "systemd"] {
            assert!(!t.path().join(h).join("crust/crust-abc").exists(), "{h}");
            assert!(t.path().join(h).join("crust").exists(), "{h} parent kept");
        }
        fs_.remove(Driver::Cgroupfs, "/crust/crust-abc").unwrap();
    }

    #[test]
    fn v2_systemd_stats_and_remove() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let dir = t
            .path()
            .join("kubepods.slice/kubepods-pod1.slice/crust-abc.scope");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("memory.current"), "4096\n").unwrap();
        fs::write(dir.join("cpu.stat"), "usage_usec 2\n").unwrap();
        let fs_ = CgroupFs::new(t.path());
        assert_eq!(fs_.layout().unwrap(), Layout::Unified);
        let s = fs_
            .stats(Driver::Systemd, "kubepods-pod1.slice:crust:abc")
            .unwrap();
        assert_eq!((s.memory_usage, s.cpu_usage_ns), (4096, 2000));
        // Pod stats by slice name.
        let pod = t.path().join("kubepods.slice/kubepods-pod1.slice");
        fs::write(pod.join("memory.current"), "8192\n").unwrap();
        assert_eq!(
            fs_.stats(Driver::Systemd, "kubepods-pod1.slice")
                .unwrap()
                .memory_usage,
            8192
        );
        fs::remove_file(dir.join("memory.current")).unwrap();
        fs::remove_file(dir.join("cpu.stat")).unwrap();
        fs_.remove(Driver::Systemd, "kubepods-pod1.slice:crust:abc")
            .unwrap();
        assert!(!dir.exists());
        fs_.remove(Driver::Systemd, "kubepods-pod1.slice:crust:abc")
            .unwrap();
    }

    #[test]
    fn driver_names() {
        for d in [Driver::Cgroupfs, Driver::Systemd] {
            assert_eq!(Driver::from_name(d.name()), Some(d));
        }
        assert_eq!(Driver::from_name("cgroupv2"), None);
    }

    #[test]
    fn no_cgroupfs() {
        let t = tempfile::tempdir().unwrap();
        let fs_ = CgroupFs::new(t.path().join("missing"));
        assert!(fs_.layout().unwrap_err().is_not_found());
        fs_.remove(Driver::Cgroupfs, "/crust/x").unwrap();
    }

    #[test]
    fn host_cgroup_of_this_process() {
        // Read our own memory cgroup on the real host (v1 hybrid here, v2 elsewhere).
        let Ok(cg) = fs::read_to_string("/proc/self/cgroup") else {
            return;
        };
        let host = CgroupFs::default();
        let Ok(layout) = host.layout() else {
            return;
        };
        let path = cg.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, p) = (it.next()?, it.next()?, it.next()?);
            let wanted = match layout {
                Layout::Unified => ctrls.is_empty(),
                Layout::V1 { .. } => ctrls.split(',').any(|c| c == "memory"),
            };
            wanted.then(|| p.to_string())
        });
        let Some(path) = path else { return };
        if path == "/" {
            return;
        }
        let s = host.stats(Driver::Cgroupfs, &path).unwrap();
        assert!(s.memory_usage > 0, "{s:?}");
    }

    /// Real cgroupfs: stats of an empty cgroup, then remove it from every hierarchy.
    #[test]
    fn host_create_stats_remove_root() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let host = CgroupFs::default();
        let Ok(layout) = host.layout() else {
            return;
        };
        let parent = format!("/crust-test-{}", std::process::id());
        let path = container_path(Driver::Cgroupfs, &parent, "abc");
        let rel = relative_dir(Driver::Cgroupfs, &path).unwrap();
        let dirs: Vec<PathBuf> = match &layout {
            Layout::Unified => vec![host.root.join(&rel)],
            Layout::V1 { .. } => ["memory", "cpuacct", "pids", "unified"]
                .iter()
                .map(|h| host.root.join(h))
                .filter(|h| h.is_dir())
                .map(|h| h.join(&rel))
                .collect(),
        };
        struct Cleanup(Vec<PathBuf>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                for d in &self.0 {
                    let _ = fs::remove_dir(d);
                    if let Some(p) = d.parent() {
                        let _ = fs::remove_dir(p);
                    }
                }
            }
        }
        let _c = Cleanup(dirs.clone());
        for d in &dirs {
            fs::create_dir_all(d).unwrap();
        }
        let s = host.stats(Driver::Cgroupfs, &path).unwrap();
        assert_eq!(s.pids, 0, "{s:?}");
        host.remove(Driver::Cgroupfs, &path).unwrap();
        for d in &dirs {
            assert!(!d.exists(), "{d:?} left behind");
        }
        assert!(
            host.stats(Driver::Cgroupfs, &path)
                .unwrap_err()
                .is_not_found()
        );
        host.remove(Driver::Cgroupfs, &path).unwrap();
    }
}
