//! The store's error type: one enum whose variants map onto CRI/gRPC error kinds
//! (not found, already exists, failed precondition, invalid argument, internal).

use std::path::PathBuf;

use crate::digest::{Digest, DigestError};

/// Errors of [`crate::Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (`kind` is "image", "layer", "blob" or "container").
    #[error("{kind} {id} not found")]
    NotFound {
        /// What kind of object.
        kind: &'static str,
        /// Its id or name.
        id: String,
    },
    /// The object already exists.
    #[error("{kind} {id} already exists")]
    AlreadyExists {
        /// What kind of object.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The image is used by a container and cannot be removed.
    #[error("image {image} is in use by container {container}")]
    ImageInUse {
        /// The image id.
        image: String,
        /// A container using it.
        container: String,
    },
    /// Content did not hash to the expected digest.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was verified ("layer sha256:..", "blob sha256:..").
        what: String,
        /// The expected digest.
        expected: Digest,
        /// The digest of what was read.
        actual: Digest,
    },
    /// Content had an unexpected length.
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was verified.
        what: String,
        /// The expected length.
        expected: u64,
        /// The length read (a stream longer than expected reports `expected + 1`).
        actual: u64,
    },
    /// A digest string did not parse.
    #[error("invalid digest `{value}`")]
    InvalidDigest {
        /// The rejected value.
        value: String,
        /// Why.
        #[source]
        source: DigestError,
    },
    /// An argument (container id, ...) is invalid.
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidArgument {
        /// The field.
        field: &'static str,
        /// The rejected value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Unpacking the layer tar failed.
    #[error("layer {layer}: unpack failed")]
    Unpack {
        /// The layer's diff id.
        layer: Digest,
        /// The unpacker's error.
        #[source]
        source: crate::unpack::UnpackError,
    },
    /// A filesystem operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// The operation ("create", "read", "rename", ...).
        op: &'static str,
        /// The path operated on.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Stored metadata is unreadable or inconsistent.
    #[error("{}: corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Mounting or unmounting an overlay failed.
    #[error("mount {}", target.display())]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Shorthand for [`StoreError::Io`].
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }
}
