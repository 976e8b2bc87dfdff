//! Applying tar entries to the layer directory, one at a time.
//!
//! Hot-path choices: resolved parent directory fds are kept in a small most-recently-used
//! cache (tar writers emit directories depth-first, interleaving subdirectories); name
//! buffers and one 1 MiB copy buffer are reused for every entry; regular files are created
//! with `O_EXCL` first and only on EEXIST is the old object removed, so the common case
//! costs no stat; metadata goes through the open fd (fchown/fchmod/fsetxattr/futimens).
//! Directory mtimes are applied at the end, since creating children changes them.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec};
use rustix::io::Errno;

use super::entry::{Kind, Meta, for_each_xattr, kind_of, read_meta};
use super::error::{UnpackError, display_name, io_err, unsafe_path};
use super::fsops::{self, ResolveError, XattrTarget};
use super::path::{Whiteout, classify, normalize, split_parent};
use super::whiteout;
use super::{StreamState, UnpackOptions, UnpackStats};

/// Size of the reused copy buffer for file contents: large enough that write(2) calls
/// are few, small enough that the allocator recycles it between layers instead of
/// mapping (and faulting in) fresh pages for every one.
const COPY_BUF: usize = 256 << 10;

/// Directories kept open for the next entries.
const CACHE_SLOTS: usize = 8;

/// Recently used parent directories, most recent first. Tar writers emit a directory's
/// entries together but interleave subdirectories, so a few slots turn most `openat2`
/// walks into a lookup. Cleared whenever an entry removed something (a cached resolution
/// through it could be stale); directories created by the layer are added as they are made.
#[derive(Default)]
struct ParentCache {
    slots: Vec<(Vec<u8>, OwnedFd)>,
}

impl ParentCache {
    /// The fd of directory `parent` (created if missing); the root for an empty path.
    fn get<'a>(
        &'a mut self,
        root: BorrowedFd<'a>,
        parent: &[u8],
        entry: &[u8],
    ) -> Result<BorrowedFd<'a>, UnpackError> {
        if parent.is_empty() {
            return Ok(root);
        }
        match self.slots.iter().position(|(p, _)| p == parent) {
            Some(i) => self.slots[..=i].rotate_right(1),
            None => {
                let fd = fsops::resolve_dir(root, parent, true)
                    .map_err(|e| resolve_error(entry, parent, e, "parent directory"))?;
                self.insert(parent, fd);
            }
        }
        match self.slots.first() {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(io_err(entry, "resolve parent directory", Errno::NOENT)),
        }
    }

    /// Remember `fd` as the directory `path`, evicting the least recently used slot.
    fn insert(&mut self, path: &[u8], fd: OwnedFd) {
        if let Some(i) = self.slots.iter().position(|(p, _)| p == path) {
            self.slots.remove(i);
        }
        let mut key = if self.slots.len() >= CACHE_SLOTS {
            self.slots.pop().map(|(k, _)| k).unwrap_or_default()
        } else {
            Vec::new()
        };
        key.clear();
        key.extend_from_slice(path);
        self.slots.insert(0, (key, fd));
    }

    fn clear(&mut self) {
        self.slots.clear();
    }
}

fn resolve_error(entry: &[u8], dir: &[u8], e: ResolveError, what: &str) -> UnpackError {
    let dir = display_name(dir);
    match e {
        ResolveError::Escapes => unsafe_path(
            entry,
            format!("{what} `{dir}` resolves outside the layer directory (through a symlink)"),
        ),
        ResolveError::Loop => unsafe_path(
            entry,
            format!("too many levels of symbolic links resolving {what} `{dir}` (symlink loop)"),
        ),
        ResolveError::NotDir => unsafe_path(
            entry,
            format!("{what} `{dir}` is not a directory (or is a dangling symlink)"),
        ),
        ResolveError::Other(Errno::NAMETOOLONG) => UnpackError::NameTooLong {
            entry: display_name(entry),
            reason: "rejected by the kernel",
        },
        ResolveError::Other(e) => io_err(entry, "resolve parent directory", e),
    }
}

/// Unpacking state for one layer.
pub(crate) struct Unpacker<'o> {
    root: OwnedFd,
    opts: &'o UnpackOptions,
    cache: ParentCache,
    /// The current entry's name as in the tar; after an entry, the last name (for errors).
    raw: Vec<u8>,
    clean: Vec<u8>,
    link_raw: Vec<u8>,
    link_clean: Vec<u8>,
    buf: Vec<u8>,
    dir_times: Vec<(Vec<u8>, Timespec)>,
    stats: UnpackStats,
}

impl<'o> Unpacker<'o> {
    pub(crate) fn new(root: OwnedFd, opts: &'o UnpackOptions) -> Self {
        Self {
            root,
            opts,
            cache: ParentCache::default(),
            raw: Vec::with_capacity(256),
            clean: Vec::with_capacity(256),
            link_raw: Vec::new(),
            link_clean: Vec::new(),
            buf: vec![0; COPY_BUF],
            dir_times: Vec::new(),
            stats: UnpackStats::default(),
        }
    }

    /// Name of the entry being (or last) applied, for stream errors.
    pub(crate) fn last_entry(&self) -> &[u8] {
        &self.raw
    }

    /// Apply one entry.
    pub(crate) fn apply<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        stream: &StreamState,
    ) -> Result<(), UnpackError> {
        self.raw.clear();
        self.raw.extend_from_slice(&entry.path_bytes());
        let raw = self.raw.as_slice();
        let kind = kind_of(raw, entry.header().entry_type())?;
        if kind == Kind::Skip {
            return Ok(());
        }
        normalize(raw, &mut self.clean).map_err(|p| {
            if p.is_length() {
                UnpackError::NameTooLong {
                    entry: display_name(raw),
                    reason: p.reason(),
                }
            } else {
                unsafe_path(raw, p.reason())
            }
        })?;
        let header = entry.header().clone();
        let pax = entry.pax_extensions().map_err(|e| pax_error(raw, e))?;
        let meta = read_meta(raw, &header, pax)?;

        let Some((parent, name)) = split_parent(&self.clean) else {
            if kind != Kind::Dir {
                return Err(unsafe_path(raw, "the layer root entry must be a directory"));
            }
            let fd =
                fsops::open_dir_rd(self.root.as_fd(), b".").map_err(|e| io_err(raw, "open", e))?;
            self.dir_meta(entry, fd.as_fd(), &meta)?;
            self.dir_times.push((Vec::new(), meta.mtime));
            self.stats.entries += 1;
            return Ok(());
        };
        let root = self.root.as_fd();
        let raw = self.raw.as_slice();
        let dir = self.cache.get(root, parent, raw)?;
        // (replaced something, created an inode, new directory fd)
        let mut new_dir = None;
        let (replaced, created) = match classify(name) {
            Whiteout::Ignored => return Ok(()),
            Whiteout::Invalid => return Err(unsafe_path(raw, "invalid whiteout name")),
            Whiteout::Opaque => {
                whiteout::make_opaque(dir).map_err(|e| io_err(raw, "set opaque xattr", e))?;
                (false, false)
            }
            Whiteout::Delete(target) => {
                let removed = whiteout::whiteout(dir, target)
                    .map_err(|e| io_err(raw, "create whiteout", e))?;
                (removed, true)
            }
            Whiteout::None => {
                let ctx = Ctx {
                    root,
                    dir,
                    name,
                    raw,
                    meta: &meta,
                    chown: self.opts.preserve_ownership,
                    writeback: self.opts.start_writeback,
                };
                match kind {
                    Kind::File => {
                        let (written, replaced) = ctx.file(entry, &mut self.buf, stream)?;
                        self.stats.bytes += written;
                        (replaced, true)
                    }
                    Kind::Dir => {
                        let (fd, replaced) =
                            fsops::make_dir(dir, name).map_err(|e| io_err(raw, "mkdir", e))?;
                        ctx.fd_meta(entry, fd.as_fd())?;
                        self.dir_times.push((self.clean.clone(), meta.mtime));
                        new_dir = Some(fd);
                        (replaced, true)
                    }
                    Kind::Symlink => (ctx.symlink(entry, &mut self.link_raw)?, true),
                    Kind::Hardlink => {
                        let replaced = ctx.hardlink(
                            entry,
                            &mut self.link_raw,
                            &mut self.link_clean,
                            &self.clean,
                        )?;
                        (replaced, false)
                    }
                    Kind::Char | Kind::Block | Kind::Fifo => (ctx.node(entry, kind)?, true),
                    Kind::Skip => (false, false),
                }
            }
        };
        if replaced {
            // Something was removed: a cached resolution through it would be stale.
            self.cache.clear();
        }
        if let Some(fd) = new_dir {
            // Its children usually come next.
            self.cache.insert(&self.clean, fd);
        }
        self.stats.entries += 1;
        if created {
            self.stats.inodes += 1;
        }
        Ok(())
    }

    fn dir_meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        fd: BorrowedFd<'_>,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let ctx = Ctx {
            root: self.root.as_fd(),
            dir: self.root.as_fd(),
            name: b".",
            raw: &self.raw,
            meta,
            chown: self.opts.preserve_ownership,
            writeback: self.opts.start_writeback,
        };
        ctx.fd_meta(entry, fd)
    }

    /// Apply deferred directory mtimes and return the statistics.
    pub(crate) fn finish(self) -> Result<UnpackStats, UnpackError> {
        let root = self.root.as_fd();
        for (path, mtime) in &self.dir_times {
            let fd = if path.is_empty() {
                fsops::open_dir_rd(root, b".")
            } else {
                fsops::open_beneath(
                    root,
                    path,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                )
            };
            let fd = match fd {
                Ok(fd) => fd,
                // Replaced or whited out by a later entry.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => continue,
                Err(e) => return Err(io_err(path, "open directory", e)),
            };
            rustix::fs::futimens(&fd, &fsops::times(*mtime))
                .map_err(|e| io_err(path, "set mtime", e))?;
        }
        Ok(self.stats)
    }
}

fn pax_error(entry: &[u8], e: std::io::Error) -> UnpackError {
    UnpackError::InvalidHeader {
        entry: display_name(entry),
        field: "pax",
        reason: e.to_string(),
    }
}

/// What one non-whiteout entry operates on.
struct Ctx<'a> {
    root: BorrowedFd<'a>,
    dir: BorrowedFd<'a>,
    name: &'a [u8],
    raw: &'a [u8],
    meta: &'a Meta,
    chown: bool,
    /// [`UnpackOptions::start_writeback`].
    writeback: bool,
}

impl Ctx<'_> {
    fn io(&self, op: &'static str) -> impl FnOnce(Errno) -> UnpackError + '_ {
        move |e| io_err(self.raw, op, e)
    }

    /// Regular file: create, stream the body, then owner, mode, xattrs, mtime via the fd.
    fn file<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        buf: &mut [u8],
        stream: &StreamState,
    ) -> Result<(u64, bool), UnpackError> {
        let (fd, replaced) = fsops::create_replacing(self.dir, self.name, || {
            fsops::create_file(self.dir, self.name)
        })
        .map_err(self.io("create file"))?;
        let mut file = File::from(fd);
        let size = entry.size();
        let mut written = 0u64;
        loop {
            let n = match entry.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream.error(e, self.raw)),
            };
            file.write_all(&buf[..n])
                .map_err(|source| UnpackError::Io {
                    entry: display_name(self.raw),
                    op: "write file",
                    source,
                })?;
            written += n as u64;
        }
        if written != size {
            return Err(UnpackError::Truncated {
                after: display_name(self.raw),
            });
        }
        self.fd_meta(entry, file.as_fd())?;
        rustix::fs::futimens(&file, &fsops::times(self.meta.mtime))
            .map_err(self.io("set mtime"))?;
        if written > 0 && self.writeback {
            fsops::start_writeback(file.as_fd());
        }
        Ok((written, replaced))
    }

    /// Owner, mode and xattrs through an open file or directory fd (mtime is the caller's).
    fn fd_meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        fd: BorrowedFd<'_>,
    ) -> Result<(), UnpackError> {
        fsops::fd_owner_mode(fd, self.meta, self.chown)
            .map_err(|(op, e)| io_err(self.raw, op, e))?;
        self.xattrs(entry, &XattrTarget::Fd(fd))
    }

    fn xattrs<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        target: &XattrTarget<'_>,
    ) -> Result<(), UnpackError> {
        let pax = entry.pax_extensions().map_err(|e| pax_error(self.raw, e))?;
        for_each_xattr(self.raw, pax, |name, value| {
            let applied = fsops::set_xattr(target, name, value).map_err(self.io("set xattr"))?;
            if !applied {
                tracing::warn!(
                    entry = %display_name(self.raw),
                    xattr = %String::from_utf8_lossy(name),
                    "xattr not supported here; skipped"
                );
            }
            Ok::<(), UnpackError>(())
        })
    }

    fn link_name<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        out: &mut Vec<u8>,
    ) -> Result<(), UnpackError> {
        out.clear();
        if let Some(l) = entry.link_name_bytes() {
            out.extend_from_slice(&l);
        }
        if out.is_empty() {
            return Err(UnpackError::InvalidHeader {
                entry: display_name(self.raw),
                field: "linkname",
                reason: "empty link target".to_owned(),
            });
        }
        Ok(())
    }

    /// Symlink: the target is data, never resolved here. Owner, xattrs and mtime without
    /// following it; symlinks have no mode of their own.
    fn symlink<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        target: &mut Vec<u8>,
    ) -> Result<bool, UnpackError> {
        self.link_name(entry, target)?;
        let ((), replaced) = fsops::create_replacing(self.dir, self.name, || {
            rustix::fs::symlinkat(target.as_slice(), self.dir, self.name)
        })
        .map_err(self.io("create symlink"))?;
        fsops::at_owner_mode(self.dir, self.name, self.meta, self.chown, false)
            .map_err(|(op, e)| io_err(self.raw, op, e))?;
        self.xattrs(entry, &XattrTarget::At(self.dir, self.name))?;
        fsops::at_times(self.dir, self.name, self.meta.mtime).map_err(self.io("set mtime"))?;
        Ok(replaced)
    }

    /// Hardlink to an earlier entry of this layer. The target is checked like an entry name
    /// and its directory resolved beneath the layer root; `linkat` without
    /// `AT_SYMLINK_FOLLOW` links a symlink itself, never what it points to. The linked inode
    /// keeps its own metadata (the entry's header only repeats it).
    fn hardlink<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        target_raw: &mut Vec<u8>,
        target: &mut Vec<u8>,
        this: &[u8],
    ) -> Result<bool, UnpackError> {
        self.link_name(entry, target_raw)?;
        let why = |reason: &str| {
            unsafe_path(
                self.raw,
                format!("hardlink target `{}`: {reason}", display_name(target_raw)),
            )
        };
        normalize(target_raw, target).map_err(|p| why(p.reason()))?;
        let Some((tparent, tname)) = split_parent(target) else {
            return Err(why("is the layer root"));
        };
        if target.as_slice() == this {
            return Ok(false);
        }
        let owned;
        let tdir = if tparent.is_empty() {
            self.root
        } else {
            owned = fsops::resolve_dir(self.root, tparent, false).map_err(|e| match e {
                ResolveError::Other(Errno::NOENT) => why("not found in this layer"),
                e => resolve_error(self.raw, tparent, e, "hardlink target directory"),
            })?;
            owned.as_fd()
        };
        let ((), replaced) = fsops::create_replacing(self.dir, self.name, || {
            rustix::fs::linkat(tdir, tname, self.dir, self.name, AtFlags::empty())
        })
        .map_err(|e| match e {
            Errno::NOENT => why("not found in this layer"),
            e => io_err(self.raw, "create hardlink", e),
        })?;
        Ok(replaced)
    }

    /// Character/block device or fifo: never opened; metadata by name.
    fn node<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        kind: Kind,
    ) -> Result<bool, UnpackError> {
        let invalid = |field: &'static str, e: std::io::Error| UnpackError::InvalidHeader {
            entry: display_name(self.raw),
            field,
            reason: e.to_string(),
        };
        let (ftype, dev) = match kind {
            Kind::Fifo => (FileType::Fifo, 0),
            _ => {
                let h = entry.header();
                let major = h
                    .device_major()
                    .map_err(|e| invalid("devmajor", e))?
                    .unwrap_or(0);
                let minor = h
                    .device_minor()
                    .map_err(|e| invalid("devminor", e))?
                    .unwrap_or(0);
                let t = if kind == Kind::Block {
                    FileType::BlockDevice
                } else {
                    FileType::CharacterDevice
                };
                (t, rustix::fs::makedev(major, minor))
            }
        };
        let ((), replaced) = fsops::create_replacing(self.dir, self.name, || {
            rustix::fs::mknodat(self.dir, self.name, ftype, Mode::empty(), dev)
        })
        .map_err(self.io("mknod"))?;
        fsops::at_owner_mode(self.dir, self.name, self.meta, self.chown, true)
            .map_err(|(op, e)| io_err(self.raw, op, e))?;
        self.xattrs(entry, &XattrTarget::At(self.dir, self.name))?;
        fsops::at_times(self.dir, self.name, self.meta.mtime).map_err(self.io("set mtime"))?;
        Ok(replaced)
    }
}
