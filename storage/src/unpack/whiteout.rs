//! OCI whiteouts to overlayfs whiteouts.
//!
//! OCI image spec `layer.md` ("Whiteouts"): `.wh.<name>` records that `<name>` was deleted;
//! `.wh..wh..opq` records that the directory's lower-layer children are hidden. overlayfs
//! (Documentation/filesystems/overlayfs.rst) represents the first as a character device 0/0
//! named `<name>` and the second as the xattr `trusted.overlay.opaque=y` on the directory,
//! which is how containerd's and CRI-O's overlay snapshotters store them. The `.wh.` files
//! themselves are never created.

use std::os::fd::BorrowedFd;

use rustix::fs::{FileType, Mode, XattrFlags};
use rustix::io::Errno;

use super::fsops;

/// overlayfs opaque-directory xattr.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Replace whatever is at `dir/name` in this layer by an overlay whiteout (char device
/// 0/0, mode 0). Returns whether something was removed first.
pub(crate) fn whiteout(dir: BorrowedFd<'_>, name: &[u8]) -> Result<bool, Errno> {
    let removed = fsops::remove_any(dir, name)?;
    rustix::fs::mknodat(
        dir,
        name,
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )?;
    Ok(removed)
}

/// Mark the directory `dir` (an `O_PATH` fd is fine) opaque.
pub(crate) fn make_opaque(dir: BorrowedFd<'_>) -> Result<(), Errno> {
    let fd = fsops::open_dir_rd(dir, b".")?;
    rustix::fs::fsetxattr(&fd, OPAQUE_XATTR, b"y", XattrFlags::empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    #[test]
    fn whiteout_replaces_a_tree_with_a_char_device() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("d/e")).unwrap();
        let root = rustix::fs::open(
            tmp.path(),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        assert!(whiteout(root.as_fd(), b"d").unwrap());
        let md = std::fs::symlink_metadata(tmp.path().join("d")).unwrap();
        assert!(md.file_type().is_char_device());
        assert_eq!(md.rdev(), 0);
        make_opaque(root.as_fd()).unwrap();
        let mut buf = [0u8; 4];
        let n = rustix::fs::getxattr(tmp.path(), OPAQUE_XATTR, &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"y");
    }
}
