//! Overlay mount/unmount and the /proc/self/mountinfo seam.
//!
//! The lowerdir list uses the short `l/` link names relative to the storage root's `l/`
//! directory, so 150 layers fit the kernel's one-page limit on mount data (containers/storage
//! overlay driver does the same). Relative names need the cwd to be `R/l` during `mount(2)`;
//! the cwd is process-wide, so the mount runs on a dedicated thread that first unshares its
//! filesystem attributes (`unshare(CLONE_FS)`) and only then `chdir`s.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

/// Mount points listed in a mountinfo text (proc(5): field 5, with octal escapes).
pub(crate) fn parse_mountpoints(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|f| PathBuf::from(unescape(f)))
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = s.get(i + 1..i + 4).unwrap_or_default();
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The current mount points of this process's mount namespace.
pub(crate) fn mountpoints() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| parse_mountpoints(&s))
        .unwrap_or_default()
}

/// Whether `path` is a mount point.
pub(crate) fn is_mounted(path: &Path) -> bool {
    mountpoints().iter().any(|m| m == path)
}

/// The overlay mount data for lower link names (top first) relative to the `l/` dir.
pub(crate) fn overlay_data(lowers: &[String], upper: &str, work: &str) -> String {
    let lower = if lowers.is_empty() {
        "../empty".to_string()
    } else {
        lowers.join(":")
    };
    format!("lowerdir={lower},upperdir={upper},workdir={work}")
}

/// Mount an overlay at `target` with `data` whose paths are relative to `cwd`.
pub(crate) fn mount_overlay(cwd: &Path, data: &str, target: &Path) -> io::Result<()> {
    let page = rustix::param::page_size();
    if data.len() >= page {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "overlay mount data is {} bytes, over the {page}-byte page limit (too many layers)",
                data.len()
            ),
        ));
    }
    let data = CString::new(data).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let cwd = cwd.to_path_buf();
    let target = target.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("crust-overlay-mount".into())
        .spawn(move || -> io::Result<()> {
            // SAFETY: CLONE_FS only gives this thread its own cwd/root/umask; it shares no
            // file descriptors with other threads differently than before (no CLONE_FILES).
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }?;
            rustix::process::chdir(&cwd)?;
            rustix::mount::mount(
                "overlay",
                &target,
                "overlay",
                MountFlags::empty(),
                data.as_c_str(),
            )?;
            Ok(())
        })?;
    handle
        .join()
        .map_err(|_| io::Error::other("overlay mount thread panicked"))?
}

/// Unmount `target`; lazily (MNT_DETACH) if it is busy; not mounted is fine.
pub(crate) fn unmount(target: &Path) -> io::Result<()> {
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(rustix::io::Errno::BUSY) => {
            tracing::warn!(target = %target.display(), "mount busy; detaching lazily");
            rustix::mount::unmount(target, UnmountFlags::DETACH).map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_with_escapes() {
        let text = "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 0:5 / /proc rw - proc proc rw\n";
        assert_eq!(
            parse_mountpoints(text),
            vec![PathBuf::from("/mnt/a b"), PathBuf::from("/proc")]
        );
    }

    #[test]
    fn data_for_no_layers_uses_empty_dir() {
        assert_eq!(
            overlay_data(&[], "../c/u", "../c/w"),
            "lowerdir=../empty,upperdir=../c/u,workdir=../c/w"
        );
        assert_eq!(
            overlay_data(&["b".into(), "a".into()], "u", "w"),
            "lowerdir=b:a,upperdir=u,workdir=w"
        );
    }

    #[test]
    fn oversized_data_is_rejected_before_mount() {
        let data = "x".repeat(rustix::param::page_size());
        let err = mount_overlay(Path::new("/"), &data, Path::new("/nonexistent")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
