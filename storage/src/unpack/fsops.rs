//! Filesystem primitives of the unpacker, all relative to directory fds.
//!
//! Safety model: the layer directory is opened once; every parent directory is resolved
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` relative to it, so the kernel
//! refuses (EXDEV / ELOOP) any resolution that would leave it, whatever symlinks earlier
//! entries planted. The final component is then created with `*at` calls that never follow
//! it (`O_CREAT|O_EXCL|O_NOFOLLOW`, `mkdirat`, `symlinkat`, `mknodat`, `linkat` without
//! `AT_SYMLINK_FOLLOW`). Only the unpacker writes into the (fresh, private) layer
//! directory while it runs, so a name it has just created is still that object for the
//! following metadata calls.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{
    AtFlags, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use super::entry::Meta;

/// Retries for `openat2` EAGAIN (the kernel could not rule out a concurrent rename racing a
/// `..` lookup; the man page says to retry).
const EAGAIN_RETRIES: usize = 32;

/// Open `path` (non-empty, normalised) beneath `root`; the kernel refuses escapes.
pub(crate) fn open_beneath(
    root: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(root, path, flags | OFlags::CLOEXEC, Mode::empty(), how) {
            Err(Errno::AGAIN | Errno::INTR) if tries < EAGAIN_RETRIES => tries += 1,
            r => return r,
        }
    }
}

/// Open a directory (`O_PATH`) we may use as a `*at` base.
pub(crate) fn open_dir_path(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Open an existing directory for reading (needed for fchown/fchmod/fsetxattr/getdents,
/// which refuse `O_PATH` fds). Never follows a symlink in `name`.
pub(crate) fn open_dir_rd(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Why a parent directory could not be resolved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResolveError {
    /// The kernel refused: resolution would leave the layer directory (EXDEV).
    Escapes,
    /// Symlink loop (ELOOP).
    Loop,
    /// A component exists but is not a directory, or is a dangling symlink.
    NotDir,
    Other(Errno),
}

impl ResolveError {
    fn from_errno(e: Errno) -> Self {
        match e {
            Errno::XDEV => Self::Escapes,
            Errno::LOOP => Self::Loop,
            Errno::NOTDIR => Self::NotDir,
            e => Self::Other(e),
        }
    }
}

/// Resolve the directory `parent` (normalised, non-empty) beneath `root`, creating missing
/// components with mode 0755 (tar streams need not list every parent directory; containerd
/// and Docker create them the same way) when `create` is set.
pub(crate) fn resolve_dir(
    root: BorrowedFd<'_>,
    parent: &[u8],
    create: bool,
) -> Result<OwnedFd, ResolveError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY;
    match open_beneath(root, parent, flags) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) if create => {}
        Err(e) => return Err(ResolveError::from_errno(e)),
    }
    // Walk from the top: resolve each existing prefix (beneath root, so symlinks inside the
    // layer still work), then create the rest one level at a time without following.
    let mut cur: Option<OwnedFd> = None;
    let mut creating = false;
    let mut start = 0;
    while start <= parent.len() {
        let end = parent[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(parent.len(), |i| start + i);
        let comp = &parent[start..end];
        let base = cur.as_ref().map_or(root, |fd| fd.as_fd());
        let next = if creating {
            None
        } else {
            match open_beneath(root, &parent[..end], flags) {
                Ok(fd) => Some(fd),
                Err(Errno::NOENT) => None,
                Err(e) => return Err(ResolveError::from_errno(e)),
            }
        };
        let fd = match next {
            Some(fd) => fd,
            None => {
                creating = true;
                match rustix::fs::mkdirat(base, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    // Exists yet did not resolve: a dangling symlink.
                    Err(Errno::EXIST) => return Err(ResolveError::NotDir),
                    Err(e) => return Err(ResolveError::from_errno(e)),
                }
                // Make the mode independent of the process umask.
                rustix::fs::chmodat(base, comp, Mode::from_raw_mode(0o755), AtFlags::empty())
                    .map_err(ResolveError::Other)?;
                open_dir_path(base, comp).map_err(ResolveError::from_errno)?
            }
        };
        cur = Some(fd);
        start = end + 1;
    }
    cur.ok_or(ResolveError::Other(Errno::NOENT))
}

/// Remove whatever is at `dir/name` (a directory recursively). Missing is fine.
/// Returns whether something was removed.
pub(crate) fn remove_any(dir: BorrowedFd<'_>, name: &[u8]) -> Result<bool, Errno> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(Errno::ISDIR) => remove_tree(dir, name).map(|()| true),
        Err(e) => Err(e),
    }
}

/// Recursively remove the directory `dir/name` without following symlinks.
fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let fd = open_dir_rd(dir, name)?;
    // Read all names first, then delete: unlinking while iterating getdents may skip names.
    let mut children: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut stream = Dir::new(fd)?;
    for ent in stream.by_ref() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        children.push((n.to_vec(), ent.file_type() == FileType::Directory));
    }
    let sub = stream.fd()?;
    for (child, is_dir) in &children {
        if *is_dir {
            remove_tree(sub, child)?;
        } else {
            remove_any(sub, child)?;
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// Run `create`; if the name exists, remove what is there (a directory recursively: a later
/// non-directory entry replaces it, as with Docker/containerd) and retry once.
/// Returns (value, replaced).
pub(crate) fn create_replacing<T>(
    dir: BorrowedFd<'_>,
    name: &[u8],
    mut create: impl FnMut() -> Result<T, Errno>,
) -> Result<(T, bool), Errno> {
    match create() {
        Err(Errno::EXIST) => {
            remove_any(dir, name)?;
            create().map(|v| (v, true))
        }
        r => r.map(|v| (v, false)),
    }
}

/// Start writing `fd`'s dirty pages back to disk without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, the way dpkg and git spread writeback).
/// Not a durability guarantee on its own (no metadata, no cache flush): it only lets the
/// disk work while the unpack goes on, so the store's single `syncfs` before an image is
/// recorded finds little left to write. Failures are ignored: the `syncfs` still writes
/// everything and reports errors.
pub(crate) fn start_writeback(fd: BorrowedFd<'_>) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a valid, borrowed fd; no memory is passed.
    let _ = unsafe { libc::sync_file_range(fd.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Create a new regular file for writing.
pub(crate) fn create_file(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
}

/// Create (or keep, if a directory already is there) the directory `dir/name` and return a
/// readable fd on it. A non-directory in the way is removed first. Returns (fd, replaced).
pub(crate) fn make_dir(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(OwnedFd, bool), Errno> {
    let mut replaced = false;
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => {}
        Err(Errno::EXIST) => match open_dir_rd(dir, name) {
            Ok(fd) => return Ok((fd, false)),
            Err(Errno::NOTDIR | Errno::LOOP) => {
                remove_any(dir, name)?;
                rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
                replaced = true;
            }
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e),
    }
    Ok((open_dir_rd(dir, name)?, replaced))
}

pub(crate) fn times(mtime: Timespec) -> Timestamps {
    // atime = mtime: deterministic, and what containerd does when the tar has no atime.
    Timestamps {
        last_access: mtime,
        last_modification: mtime,
    }
}

/// chown (optional), then chmod (chown clears setuid/setgid), on an open fd.
pub(crate) fn fd_owner_mode(
    fd: BorrowedFd<'_>,
    meta: &Meta,
    chown: bool,
) -> Result<(), (&'static str, Errno)> {
    if chown {
        rustix::fs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
            .map_err(|e| ("chown", e))?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(|e| ("chmod", e))
}

/// chown (optional, never following), then chmod, by name. For device nodes and fifos,
/// which must not be opened. `chmodat` follows a symlink in `name`, but `name` is the node
/// we just created and nothing else writes into the layer directory.
pub(crate) fn at_owner_mode(
    dir: BorrowedFd<'_>,
    name: &[u8],
    meta: &Meta,
    chown: bool,
    chmod: bool,
) -> Result<(), (&'static str, Errno)> {
    if chown {
        rustix::fs::chownat(
            dir,
            name,
            Some(uid(meta.uid)),
            Some(gid(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| ("chown", e))?;
    }
    if chmod {
        rustix::fs::chmodat(dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
            .map_err(|e| ("chmod", e))?;
    }
    Ok(())
}

/// Set mtime (and atime) of `dir/name` without following a symlink.
pub(crate) fn at_times(dir: BorrowedFd<'_>, name: &[u8], mtime: Timespec) -> Result<(), Errno> {
    rustix::fs::utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
}

/// Where an xattr goes.
pub(crate) enum XattrTarget<'a> {
    /// An open (non-`O_PATH`) fd of a file or directory: `fsetxattr`.
    Fd(BorrowedFd<'a>),
    /// A symlink, device or fifo `name` in the directory `dir`, which must not be opened.
    /// Set with `lsetxattr("/proc/self/fd/<dir>/<name>")`: the magic link resolves to
    /// exactly the directory we hold (no path walk an entry could influence), and
    /// `lsetxattr` does not follow the final component, so a symlink's own xattrs are set.
    At(BorrowedFd<'a>, &'a [u8]),
}

/// Set one xattr. The outer `Err` is a hard failure; `Ok(false)` means the filesystem or
/// the object type does not support it (EOPNOTSUPP, or EPERM for `user.*` on symlinks and
/// devices): callers warn and continue, as Docker and containerd do.
pub(crate) fn set_xattr(
    target: &XattrTarget<'_>,
    name: &[u8],
    value: &[u8],
) -> Result<bool, Errno> {
    let r = match target {
        XattrTarget::Fd(fd) => rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()),
        XattrTarget::At(dir, child) => {
            use std::os::fd::AsRawFd;
            let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
            p.extend_from_slice(child);
            rustix::fs::lsetxattr(OsStr::from_bytes(&p), name, value, XattrFlags::empty())
        }
    };
    match r {
        Ok(()) => Ok(true),
        Err(Errno::NOTSUP | Errno::PERM) => Ok(false),
        Err(e) => Err(e),
    }
}

fn uid(id: u32) -> Uid {
    // `read_meta` refuses u32::MAX (-1), the only value `from_raw` rejects.
    Uid::from_raw(id)
}

fn gid(id: u32) -> Gid {
    Gid::from_raw(id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn root(dir: &std::path::Path) -> OwnedFd {
        rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn resolve_creates_missing_parents_with_0755() {
        let tmp = tempfile::tempdir().unwrap();
        let r = root(tmp.path());
        resolve_dir(r.as_fd(), b"a/b/c", true).unwrap();
        let md = std::fs::metadata(tmp.path().join("a/b/c")).unwrap();
        assert!(md.is_dir());
        assert_eq!(md.mode() & 0o7777, 0o755);
        assert_eq!(
            resolve_dir(r.as_fd(), b"x/y", false).unwrap_err(),
            ResolveError::Other(Errno::NOENT)
        );
    }

    #[test]
    fn resolve_refuses_escaping_symlinks_and_loops() {
        let tmp = tempfile::tempdir().unwrap();
        let r = root(tmp.path());
        std::os::unix::fs::symlink("/", tmp.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("..", tmp.path().join("up")).unwrap();
        std::os::unix::fs::symlink("l2", tmp.path().join("l1")).unwrap();
        std::os::unix::fs::symlink("l1", tmp.path().join("l2")).unwrap();
        std::os::unix::fs::symlink("missing", tmp.path().join("dangling")).unwrap();
        assert_eq!(
            resolve_dir(r.as_fd(), b"abs/etc", true).unwrap_err(),
            ResolveError::Escapes
        );
        assert_eq!(
            resolve_dir(r.as_fd(), b"up", true).unwrap_err(),
            ResolveError::Escapes
        );
        assert_eq!(
            resolve_dir(r.as_fd(), b"l1/x", true).unwrap_err(),
            ResolveError::Loop
        );
        assert_eq!(
            resolve_dir(r.as_fd(), b"dangling", true).unwrap_err(),
            ResolveError::NotDir
        );
        assert!(!tmp.path().join("missing").exists());
    }

    #[test]
    fn remove_any_removes_trees_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"x").unwrap();
        let d = tmp.path().join("d");
        std::fs::create_dir_all(d.join("e/f")).unwrap();
        std::fs::write(d.join("e/f/g"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), d.join("link")).unwrap();
        let r = root(tmp.path());
        assert!(remove_any(r.as_fd(), b"d").unwrap());
        assert!(!d.exists());
        assert!(outside.path().join("keep").exists());
        assert!(!remove_any(r.as_fd(), b"d").unwrap());
    }
}
