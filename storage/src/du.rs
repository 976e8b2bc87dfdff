//! Disk usage of a directory tree: bytes allocated (st_blocks * 512, like `du`) and inodes,
//! each inode counted once so hardlinked files are not double counted (CRI
//! `FilesystemUsage.inodes_used` counts inodes, not names).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Bytes and inodes used below (and including) `root`; symlinks are not followed.
pub(crate) fn disk_usage(root: &Path) -> io::Result<(u64, u64)> {
    let mut seen = HashSet::new();
    let mut bytes = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            // Removed while walking (a container writing): not ours to count.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        bytes += md.blocks() * 512;
        if md.is_dir() {
            for e in fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok((bytes, seen.len() as u64))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hardlinks_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::write(r.join("a"), vec![1u8; 100_000]).unwrap();
        fs::hard_link(r.join("a"), r.join("b")).unwrap();
        fs::create_dir(r.join("d")).unwrap();
        fs::hard_link(r.join("a"), r.join("d/c")).unwrap();
        std::os::unix::fs::symlink("a", r.join("s")).unwrap();
        let (bytes, inodes) = disk_usage(r).unwrap();
        // root dir, d, a (3 names), s
        assert_eq!(inodes, 4);
        assert!(bytes >= 100_000, "{bytes}");
        assert!(bytes < 200_000, "{bytes}");
    }
}
