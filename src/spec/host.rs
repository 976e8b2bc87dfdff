//! The host facts the spec depends on, behind a seam so the conversion is unit-testable:
//! the device nodes under `/dev` (privileged containers get them all, like containerd's
//! `WithHostDevices`), one device node by path (CRI `devices`), the daemon's capability
//! bounding set (what "all capabilities" can mean) and whether the memory cgroup has swap
//! accounting (containerd only sets `memory.swap` when it does; runc fails otherwise).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capabilities, LinuxDevice, LinuxDeviceType};

use super::SpecError;
use super::caps::capabilities_from_mask;

/// What the spec builder asks about the host.
pub trait Host {
    /// Every device node below `/dev` (skipping `pts`, `shm`, `mqueue`, `fd` and `console`).
    fn host_devices(&self) -> Result<Vec<LinuxDevice>, SpecError>;
    /// The device nodes at `path`: the node itself, or every node below it when `path` is a
    /// directory. `Ok(None)` when `path` does not exist.
    fn devices_at(&self, path: &Path) -> Result<Option<Vec<LinuxDevice>>, SpecError>;
    /// The daemon's capability bounding set.
    fn bounding_capabilities(&self) -> Capabilities;
    /// Whether the memory cgroup accounts swap (`memory.memsw.*` on v1, `memory.swap.max`
    /// on v2).
    fn swap_available(&self) -> bool;
}

/// The real host.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealHost;

/// Directories of `/dev` that are not devices to hand out (containerd's list).
const SKIP_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// The device node at `path` (lstat, so symlinks are not followed); `None` if not a device.
fn device_node(path: &Path) -> Result<Option<LinuxDevice>, SpecError> {
    let st = match rustix::fs::lstat(path) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(SpecError::io("stat", path, e.into())),
    };
    let typ = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::CharacterDevice => LinuxDeviceType::C,
        rustix::fs::FileType::BlockDevice => LinuxDeviceType::B,
        rustix::fs::FileType::Fifo => LinuxDeviceType::P,
        _ => return Ok(None),
    };
    let rdev = st.st_rdev;
    let mut d = LinuxDevice::default();
    d.set_path(path.to_path_buf())
        .set_typ(typ)
        .set_major(i64::from(rustix::fs::major(rdev)))
        .set_minor(i64::from(rustix::fs::minor(rdev)))
        .set_file_mode(Some(st.st_mode & 0o7777))
        .set_uid(Some(st.st_uid))
        .set_gid(Some(st.st_gid));
    Ok(Some(d))
}

/// Every device node below `dir`, recursively, skipping [`SKIP_DIRS`] and `console`.
fn walk(dir: &Path, top: bool, out: &mut Vec<LinuxDevice>) -> Result<(), SpecError> {
    let entries = std::fs::read_dir(dir).map_err(|e| SpecError::io("read dir", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SpecError::io("read dir", dir, e))?;
        let name = entry.file_name();
        let path: PathBuf = entry.path();
        let ft = entry
            .file_type()
            .map_err(|e| SpecError::io("stat", &path, e))?;
        if ft.is_dir() {
            if top && SKIP_DIRS.iter().any(|s| name == *s) {
                continue;
            }
            walk(&path, false, out)?;
            continue;
        }
        if top && name == "console" {
            continue;
        }
        if let Some(d) = device_node(&path)? {
            out.push(d);
        }
    }
    Ok(())
}

impl Host for RealHost {
    fn host_devices(&self) -> Result<Vec<LinuxDevice>, SpecError> {
        let mut out = Vec::new();
        walk(Path::new("/dev"), true, &mut out)?;
        out.sort_by(|a, b| a.path().cmp(b.path()));
        Ok(out)
    }

    fn devices_at(&self, path: &Path) -> Result<Option<Vec<LinuxDevice>>, SpecError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SpecError::io("stat", path, e)),
        };
        if meta.is_dir() {
            let mut out = Vec::new();
            walk(path, false, &mut out)?;
            return Ok(Some(out));
        }
        // Follow a symlink given as the host path itself (e.g. /dev/disk/by-id/...).
        let real = std::fs::canonicalize(path).map_err(|e| SpecError::io("resolve", path, e))?;
        Ok(Some(device_node(&real)?.into_iter().collect()))
    }

    fn bounding_capabilities(&self) -> Capabilities {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .unwrap_or(0);
        capabilities_from_mask(mask)
    }

    fn swap_available(&self) -> bool {
        Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
            || Path::new("/sys/fs/cgroup/memory.swap.max").exists()
            || std::fs::read_dir("/sys/fs/cgroup")
                .map(|d| {
                    d.flatten()
                        .any(|e| e.path().join("memory.swap.max").exists())
                })
                .unwrap_or(false)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn real_host_devices() {
        let h = RealHost;
        let devs = h.host_devices().unwrap();
        assert!(devs.iter().any(|d| d.path() == Path::new("/dev/null")));
        assert!(
            !devs
                .iter()
                .any(|d| d.path().starts_with("/dev/pts") || d.path() == Path::new("/dev/console"))
        );
        let null = h.devices_at(Path::new("/dev/null")).unwrap().unwrap();
        assert_eq!(null.len(), 1);
        assert_eq!((null[0].major(), null[0].minor()), (1, 3));
        assert_eq!(null[0].typ(), LinuxDeviceType::C);
        assert!(h.devices_at(Path::new("/dev/nope-xyz")).unwrap().is_none());
        // A regular file is no device.
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(h.devices_at(f.path()).unwrap().unwrap().is_empty());
        assert!(!h.bounding_capabilities().is_empty());
    }
}
