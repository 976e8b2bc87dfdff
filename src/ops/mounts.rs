//! Mount points below a directory, from `/proc/self/mountinfo` (proc(5)), and their lazy
//! removal. The parsing is a pure function so it is unit-tested on sample text.

use std::path::{Path, PathBuf};

/// Undo mountinfo's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or below `base` in `mountinfo` text, deepest first (the order to
/// unmount them in).
pub fn below(mountinfo: &str, base: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|f| PathBuf::from(unescape(f)))
        .filter(|p| p.starts_with(base))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// Mount points at or below `base` now (none when mountinfo is unreadable).
pub fn current_below(base: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| below(&t, base))
        .unwrap_or_default()
}

/// Lazily unmount `p` (`MNT_DETACH`: succeeds even while something still uses it).
pub fn detach(p: &Path) -> std::io::Result<()> {
    rustix::mount::unmount(p, rustix::mount::UnmountFlags::DETACH).map_err(Into::into)
}

/// Detach every mount at or below `base`, deepest first; returns what was unmounted.
pub fn detach_below(base: &Path) -> Vec<PathBuf> {
    let mut done = Vec::new();
    for p in current_below(base) {
        match detach(&p) {
            Ok(()) => done.push(p),
            Err(e) => tracing::warn!(path = %p.display(), error = %e, "cannot unmount"),
        }
    }
    done
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_mounts_below() {
        let info = "\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
30 22 0:5 / /run/crust/pods/p1/ns/net rw - nsfs nsfs rw
31 22 0:6 / /run/crust/pods/p1/shm rw - tmpfs shm rw
32 22 0:7 / /run/crust/pods/a\\040b rw - tmpfs x rw
33 22 0:8 / /run/crustier rw - tmpfs y rw
";
        let got = below(info, Path::new("/run/crust"));
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], PathBuf::from("/run/crust/pods/p1/ns/net"));
        assert!(got.contains(&PathBuf::from("/run/crust/pods/a b")));
        assert!(!got.contains(&PathBuf::from("/run/crustier")));
    }
}
