//! Safe, streaming unpacking of one OCI layer tar into an overlay-ready directory.
//!
//! SKELETON: filled by the unpacker helper. Contract:
//! `unpack_layer(reader, dest, &UnpackOptions) -> Result<UnpackStats, UnpackError>`.

use std::io::Read;
use std::path::Path;

/// How to unpack.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Apply the uid/gid recorded in the tar (root) rather than the caller's.
    pub preserve_ownership: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        Self { preserve_ownership: true }
    }
}

/// What an unpack produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries applied (including whiteouts).
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
}

/// Errors of the unpacker.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Placeholder.
    #[error("unpacker not implemented")]
    NotImplemented,
}

/// Unpack the tar stream `reader` into the existing, empty directory `dest`.
pub fn unpack_layer<R: Read>(
    reader: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let _ = (reader, dest, opts);
    Err(UnpackError::NotImplemented)
}
