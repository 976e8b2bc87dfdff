//! `LifecycleError`: everything that can go wrong running pods and containers, with the
//! object it concerns, classified into the CRI error kinds in [`LifecycleError::kind`]
//! (mapped to gRPC codes only in `server/error.rs`).

use crate::image::{ErrorKind, ImageError};

/// A pod or container operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// No pod/container with that id (or id prefix).
    #[error("{kind} {id} not found")]
    NotFound {
        /// "pod sandbox" or "container".
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// An id prefix matches several objects.
    #[error("{kind} id prefix {id} is ambiguous: it matches {}", matches.join(", "))]
    Ambiguous {
        /// "pod sandbox" or "container".
        kind: &'static str,
        /// The prefix.
        id: String,
        /// Ids it matches.
        matches: Vec<String>,
    },
    /// The name (metadata) is reserved by another object.
    #[error("{kind} name {name} is already reserved by {kind} {holder}")]
    NameInUse {
        /// "pod sandbox" or "container".
        kind: &'static str,
        /// The name key.
        name: String,
        /// The holder's id.
        holder: String,
    },
    /// A request field is missing or invalid.
    #[error("{field} {value:?}: {reason}")]
    InvalidArgument {
        /// Dotted field name (`config.metadata.name`).
        field: String,
        /// Its value.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The object is not in a state that allows the operation.
    #[error("{what}: {reason}")]
    FailedPrecondition {
        /// The object ("container abc").
        what: String,
        /// Why.
        reason: String,
    },
    /// The image a container asks for is not in the store.
    #[error("image {image:?} not found: pull it first")]
    ImageNotFound {
        /// The image as named in the request.
        image: String,
    },
    /// The runtime handler is unknown or unusable.
    #[error(transparent)]
    Handler(Box<crate::runtime::RuntimeError>),
    /// The OCI runtime failed.
    #[error("{op} {kind} {id}")]
    Runtime {
        /// What was being done.
        op: &'static str,
        /// "pod sandbox" or "container".
        kind: &'static str,
        /// The object.
        id: String,
        #[source]
        source: Box<crate::runtime::RuntimeError>,
    },
    /// The container monitor failed.
    #[error("{op} container {id}")]
    Monitor {
        /// What was being done.
        op: &'static str,
        /// The container.
        id: String,
        #[source]
        source: Box<crate::monitor::MonitorError>,
    },
    /// The OCI spec could not be generated.
    #[error("generate the OCI spec of container {name}")]
    Spec {
        /// The container name.
        name: String,
        #[source]
        source: Box<crate::spec::SpecError>,
    },
    /// Sandbox setup/teardown failed (namespaces, files, shm, pause).
    #[error("{op} of pod sandbox {id}: {message}")]
    Sandbox {
        /// What was being done.
        op: &'static str,
        /// The pod.
        id: String,
        /// The underlying error, rendered (several sandbox helpers feed this).
        message: String,
        /// Whether the cause was bad input.
        invalid: bool,
    },
    /// Cgroup statistics could not be read.
    #[error("read cgroup statistics of container {id}")]
    Cgroups {
        /// The container.
        id: String,
        #[source]
        source: crate::cgroups::CgroupError,
    },
    /// The storage layer failed.
    #[error("{op} container {id}")]
    Store {
        /// What was being done.
        op: &'static str,
        /// The container.
        id: String,
        #[source]
        source: Box<crust_storage::StoreError>,
    },
    /// Looking up the image failed.
    #[error(transparent)]
    Image(Box<ImageError>),
    /// A record could not be persisted.
    #[error("persist the state of {id}")]
    Persist {
        /// The object.
        id: String,
        #[source]
        source: crate::state::PersistError,
    },
    /// File system work outside the store failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A blocking task failed to complete.
    #[error(transparent)]
    Blocking(#[from] crate::blocking::JoinError),
}

impl From<ImageError> for LifecycleError {
    fn from(e: ImageError) -> Self {
        Self::Image(Box::new(e))
    }
}

impl LifecycleError {
    /// Shorthand for [`LifecycleError::InvalidArgument`].
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`LifecycleError::FailedPrecondition`].
    pub fn precondition(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// The CRI error kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } | Self::ImageNotFound { .. } => ErrorKind::NotFound,
            Self::Ambiguous { .. } | Self::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Self::NameInUse { .. } => ErrorKind::AlreadyExists,
            Self::FailedPrecondition { .. } => ErrorKind::FailedPrecondition,
            Self::Handler(e) => e.kind(),
            Self::Spec { source, .. } if source.is_invalid_argument() => ErrorKind::InvalidArgument,
            Self::Sandbox { invalid: true, .. } => ErrorKind::InvalidArgument,
            Self::Store { source, .. } => crate::image::store_kind(source),
            Self::Image(e) => e.kind(),
            _ => ErrorKind::Internal,
        }
    }

    /// The error and all its sources, for the gRPC message and logs.
    pub fn full_message(&self) -> String {
        crate::errfmt::full_message(self)
    }
}
