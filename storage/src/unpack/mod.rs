//! Safe, streaming unpacking of one OCI layer tar into an overlay-ready directory.
//!
//! [`unpack_layer`] reads an uncompressed layer tar (OCI image spec `layer.md`; the store
//! decompresses and verifies digests around it) and writes its changeset into an empty
//! directory that overlayfs can use as a lower layer:
//! - the `tar` crate parses (ustar, GNU long names, PAX records incl. `SCHILY.xattr.*`);
//! - every write is done here with `*at` syscalls relative to the layer directory, with
//!   parents resolved by `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so the kernel
//!   guarantees nothing outside it is touched, whatever the tar contains (`fsops.rs`);
//! - OCI whiteouts become overlay whiteouts (`whiteout.rs`);
//! - hostile or malformed entries (absolute paths, `..`, escaping symlinks and hardlinks,
//!   symlink loops, over-long names, truncated or corrupt streams) reject the whole layer
//!   with an error naming the entry.
//!
//! Nothing is fsynced here. When the caller is about to sync the layer anyway
//! ([`UnpackOptions::start_writeback`]) writeback of each regular file is started as it is
//! closed (`sync_file_range`, no waiting for completion); the store makes layers durable
//! with one `syncfs` (`layers.rs`), and removes the layer directory on any error.

mod apply;
mod entry;
mod error;
mod fsops;
mod path;
mod whiteout;

#[cfg(test)]
mod tests_features;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod testutil;

use std::cell::Cell;
use std::io::{self, Read};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

pub use error::UnpackError;

/// How to unpack.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Apply the uid/gid recorded in the tar (root) rather than the caller's.
    pub preserve_ownership: bool,
    /// Start writeback of each regular file as it is closed (`sync_file_range`). Worth it
    /// only when a `syncfs` follows right away: the syncfs then finds most data written.
    /// Otherwise it costs the unpacking thread block allocation and submission CPU, and it
    /// blocks whenever the device queue is full, while the kernel's flusher (or the store's
    /// background sync) would have done the same work off the critical path.
    pub start_writeback: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        Self {
            preserve_ownership: true,
            start_writeback: false,
        }
    }
}

/// What an unpack produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries applied (including whiteouts and the root entry; not PAX/GNU
    /// extension headers or ignored `.wh..wh.*` markers).
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Filesystem objects created (files, directories, symlinks, devices, fifos,
    /// whiteouts; hardlinks and the root entry add none). An upper bound of the inodes the
    /// layer uses: objects replaced by later entries are counted too.
    pub inodes: u64,
}

/// Unpack the tar stream `reader` into the existing, empty directory `dest`.
///
/// Fails with the first problem found; `dest` is then left partially filled and the
/// caller removes it. The stream is read up to the end-of-archive marker (or a clean end
/// of stream between entries); whatever follows (padding) is left in `reader`.
pub fn unpack_layer<R: Read>(
    reader: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let root = rustix::fs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Io {
        entry: ".".to_owned(),
        op: "open layer directory",
        source: io::Error::from(e).into_with_path(dest),
    })?;
    let state = StreamState::default();
    let mut archive = tar::Archive::new(Tracking {
        inner: reader,
        state: &state,
    });
    let mut unpacker = apply::Unpacker::new(root, opts);
    let entries = archive
        .entries()
        .map_err(|e| state.error(e, unpacker.last_entry()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| state.error(e, unpacker.last_entry()))?;
        unpacker.apply(&mut entry, &state)?;
    }
    if state.eof.get() {
        // A clean end of stream on a header boundary, without the end-of-archive marker.
        // Go's archive/tar (containerd, CRI-O), GNU tar and the tar crate all accept this;
        // a stream cut there still holds only whole entries, and the store's diff-id check
        // catches an actual truncation.
        tracing::debug!(dest = %dest.display(), "layer tar has no end-of-archive marker");
    }
    let stats = unpacker.finish()?;
    tracing::debug!(
        dest = %dest.display(),
        entries = stats.entries,
        bytes = stats.bytes,
        "unpacked layer"
    );
    Ok(stats)
}

/// Attach the path to an io::Error message (std has no such helper).
trait WithPath {
    fn into_with_path(self, p: &Path) -> io::Error;
}

impl WithPath for io::Error {
    fn into_with_path(self, p: &Path) -> io::Error {
        io::Error::new(self.kind(), format!("{}: {self}", p.display()))
    }
}

/// What the reader under the tar parser saw, to tell truncation and read failures from
/// corrupt content when the parser reports an error.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    /// The underlying reader returned end-of-stream.
    eof: Cell<bool>,
    /// The underlying reader returned an error.
    failed: Cell<bool>,
}

impl StreamState {
    /// Classify an error that came out of the tar parser or an entry body read.
    pub(crate) fn error(&self, e: io::Error, last_entry: &[u8]) -> UnpackError {
        let after = error::display_name(last_entry);
        if self.failed.get() {
            UnpackError::Read { after, source: e }
        } else if self.eof.get() {
            UnpackError::Truncated { after }
        } else {
            UnpackError::Tar { after, source: e }
        }
    }
}

/// The caller's reader, observed.
struct Tracking<'s, R> {
    inner: R,
    state: &'s StreamState,
}

impl<R: Read> Read for Tracking<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.inner.read(buf) {
                Ok(0) => {
                    self.state.eof.set(true);
                    return Ok(0);
                }
                Ok(n) => return Ok(n),
                // The tar parser propagates EINTR as a failure: retry here.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.state.failed.set(true);
                    return Err(e);
                }
            }
        }
    }
}
