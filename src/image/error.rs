//! Errors of the image service, with enough context (image, registry, reference, and the
//! registry's own answer) that the gRPC message alone explains a failed pull.
//!
//! [`ImageError::kind`] classifies an error into a CRI-free [`ErrorKind`]; `server/error.rs`
//! maps kinds onto gRPC codes.

use std::sync::Arc;

use oci_client::errors::{OciDistributionError, OciErrorCode};

use crate::registries::{ReferenceError, RegistriesError};

/// Errors of [`super::ImageService`].
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image string is not a valid reference.
    // The reference error already names the input and the rule broken.
    #[error("{source}")]
    InvalidReference {
        /// The rejected input.
        image: String,
        /// The parser's reason.
        #[source]
        source: Box<ReferenceError>,
    },
    /// registries.conf refused or could not resolve the image (blocked registry, ambiguous
    /// short name, ...).
    #[error("cannot resolve image `{image}` with registries.conf")]
    Resolve {
        /// The requested image.
        image: String,
        /// Why.
        #[source]
        source: Box<RegistriesError>,
    },
    /// The credentials in the request are malformed.
    #[error("invalid credentials for image `{image}`")]
    Credentials {
        /// The requested image.
        image: String,
        /// Why.
        #[source]
        source: Box<RegistriesError>,
    },
    /// Loading registries.conf or auth.json failed.
    #[error("cannot load registry configuration")]
    Config {
        /// Why.
        #[source]
        source: Box<RegistriesError>,
    },
    /// The registry answered with an error or could not be reached.
    #[error("{at}: {what} failed")]
    Registry {
        /// Where.
        at: Box<At>,
        /// "manifest", "config sha256:..", "layer sha256:..".
        what: String,
        /// oci-client's error, which carries the registry's answer (boxed: it is large).
        #[source]
        source: Box<OciDistributionError>,
    },
    /// No bytes arrived from the registry for too long.
    #[error("{at}: {what} made no progress for {secs}s (pull_progress_timeout), pull cancelled")]
    Stalled {
        /// Where.
        at: Box<At>,
        /// What was being fetched.
        what: String,
        /// The timeout in seconds.
        secs: u64,
    },
    /// Content did not match its digest.
    #[error("{at}: {what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Where.
        at: Box<At>,
        /// What was verified.
        what: String,
        /// Expected digest.
        expected: String,
        /// Computed digest.
        actual: String,
    },
    /// The registry served a document crust cannot use.
    #[error("{at}: {what} is invalid: {reason}")]
    InvalidContent {
        /// Where.
        at: Box<At>,
        /// Which document.
        what: String,
        /// Why.
        reason: String,
    },
    /// A layer's media type is not one of the supported (uncompressed, gzip, zstd) ones.
    #[error("{at}: layer {digest} has unsupported media type `{media_type}`")]
    UnsupportedMediaType {
        /// Where.
        at: Box<At>,
        /// The layer digest.
        digest: String,
        /// The media type.
        media_type: String,
    },
    /// The index has no manifest for this host.
    #[error("{at}: no image for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        /// Where.
        at: Box<At>,
        /// The host platform.
        platform: String,
        /// What the index offers.
        available: String,
    },
    /// Every candidate/endpoint failed; `source` is the most telling failure.
    #[error("pulling image `{image}` failed (tried {})", attempts.join(", "))]
    PullFailed {
        /// The requested image.
        image: String,
        /// "reference via registry: short reason" per attempt.
        attempts: Vec<String>,
        /// The error deciding the status code.
        #[source]
        source: Box<ImageError>,
    },
    /// registries.conf gave nothing to try for the image.
    #[error("no registry to pull `{image}` from")]
    NoCandidates {
        /// The requested image.
        image: String,
    },
    /// The image is used by a container.
    #[error("image {image} is in use by container {container}")]
    InUse {
        /// The image id.
        image: String,
        /// A container using it.
        container: String,
    },
    /// A storage operation failed.
    #[error("storage: {op} failed")]
    Store {
        /// The operation ("put_image", "apply_layer sha256:..").
        op: String,
        /// The store's error.
        #[source]
        source: Box<crust_storage::StoreError>,
    },
    /// A blocking storage task did not complete.
    #[error(transparent)]
    Blocking(#[from] crate::blocking::JoinError),
    /// The result of a pull shared with a concurrent identical request.
    #[error(transparent)]
    Shared(Arc<ImageError>),
    /// The background task of a shared pull panicked.
    #[error("pull of `{image}` was aborted")]
    Aborted {
        /// The requested image.
        image: String,
    },
}

/// Where a registry operation went: the registry contacted and the reference asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    /// host[:port] contacted (a mirror or the primary location).
    pub registry: String,
    /// The reference fetched from it.
    pub reference: String,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "registry {}, image `{}`", self.registry, self.reference)
    }
}

/// CRI-free error classes, mapped to gRPC codes by `server/error.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input.
    InvalidArgument,
    /// No such image/manifest/repository.
    NotFound,
    /// Credentials missing or rejected.
    Unauthenticated,
    /// Access denied or registry blocked.
    PermissionDenied,
    /// Registry unreachable, 5xx, or stalled.
    Unavailable,
    /// Rate limited.
    ResourceExhausted,
    /// Image in use; object in the wrong state.
    FailedPrecondition,
    /// A name is already taken (pods and containers).
    AlreadyExists,
    /// Content corrupted (digest mismatch).
    DataLoss,
    /// Anything else.
    Internal,
}

impl ImageError {
    /// Classify the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImageError::InvalidReference { .. } | ImageError::Credentials { .. } => {
                ErrorKind::InvalidArgument
            }
            ImageError::Resolve { source, .. } => resolve_kind(source),
            ImageError::Config { .. } => ErrorKind::Internal,
            ImageError::Registry { source, .. } => oci_kind(source),
            ImageError::Stalled { .. } => ErrorKind::Unavailable,
            ImageError::DigestMismatch { .. } => ErrorKind::DataLoss,
            ImageError::InvalidContent { .. } | ImageError::UnsupportedMediaType { .. } => {
                ErrorKind::FailedPrecondition
            }
            ImageError::NoMatchingPlatform { .. } | ImageError::NoCandidates { .. } => {
                ErrorKind::NotFound
            }
            ImageError::PullFailed { source, .. } => source.kind(),
            ImageError::InUse { .. } => ErrorKind::FailedPrecondition,
            ImageError::Store { source, .. } => store_kind(source),
            ImageError::Blocking(_) | ImageError::Aborted { .. } => ErrorKind::Internal,
            ImageError::Shared(inner) => inner.kind(),
        }
    }

    /// Wrap a store error with the operation that failed, lifting "image in use" out.
    pub fn store(op: impl Into<String>, source: crust_storage::StoreError) -> ImageError {
        match source {
            crust_storage::StoreError::ImageInUse { image, container } => {
                ImageError::InUse { image, container }
            }
            source => ImageError::Store {
                op: op.into(),
                source: Box::new(source),
            },
        }
    }

    /// The full message: this error and its sources, joined with ": ", so the gRPC status
    /// carries the registry's own answer.
    pub fn full_message(&self) -> String {
        crate::errfmt::full_message(self)
    }
}

fn resolve_kind(e: &RegistriesError) -> ErrorKind {
    match e {
        RegistriesError::Blocked { .. } => ErrorKind::PermissionDenied,
        RegistriesError::Reference(_) | RegistriesError::ShortName { .. } => {
            ErrorKind::InvalidArgument
        }
        _ => ErrorKind::FailedPrecondition,
    }
}

/// Classify a storage error.
pub fn store_kind(e: &crust_storage::StoreError) -> ErrorKind {
    use crust_storage::StoreError as S;
    match e {
        S::NotFound { .. } => ErrorKind::NotFound,
        S::ImageInUse { .. } => ErrorKind::FailedPrecondition,
        S::DigestMismatch { .. } | S::SizeMismatch { .. } => ErrorKind::DataLoss,
        S::InvalidDigest { .. } | S::InvalidArgument { .. } => ErrorKind::InvalidArgument,
        _ => ErrorKind::Internal,
    }
}

/// Classify an oci-client error by what the registry answered.
pub fn oci_kind(e: &OciDistributionError) -> ErrorKind {
    use OciDistributionError as E;
    match e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => ErrorKind::Unauthenticated,
        E::ImageManifestNotFoundError(_) => ErrorKind::NotFound,
        E::DigestError(_) => ErrorKind::DataLoss,
        E::RequestError(_) | E::IoError(_) => ErrorKind::Unavailable,
        E::RegistryError { envelope, .. } => match envelope.errors.first().map(|e| &e.code) {
            Some(
                OciErrorCode::ManifestUnknown
                | OciErrorCode::NameUnknown
                | OciErrorCode::NotFound
                | OciErrorCode::BlobUnknown
                | OciErrorCode::ManifestBlobUnknown,
            ) => ErrorKind::NotFound,
            Some(OciErrorCode::Unauthorized) => ErrorKind::Unauthenticated,
            Some(OciErrorCode::Denied) => ErrorKind::PermissionDenied,
            Some(OciErrorCode::NameInvalid) => ErrorKind::InvalidArgument,
            Some(OciErrorCode::Toomanyrequests) => ErrorKind::ResourceExhausted,
            _ => ErrorKind::Internal,
        },
        E::ServerError { code, .. } => match code {
            404 => ErrorKind::NotFound,
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::PermissionDenied,
            429 => ErrorKind::ResourceExhausted,
            c if *c >= 500 => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn registry_error(code: OciErrorCode) -> ImageError {
        ImageError::Registry {
            at: Box::new(At {
                registry: "127.0.0.1:5000".into(),
                reference: "127.0.0.1:5000/test/img:v1".into(),
            }),
            what: "manifest".into(),
            source: Box::new(OciDistributionError::RegistryError {
                envelope: OciEnvelope {
                    errors: vec![OciError {
                        code,
                        message: "manifest unknown".into(),
                        detail: serde_json::Value::Null,
                    }],
                },
                url: "http://127.0.0.1:5000/v2/test/img/manifests/v1".into(),
            }),
        }
    }

    #[test]
    fn registry_answers_are_classified() {
        assert_eq!(
            registry_error(OciErrorCode::ManifestUnknown).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            registry_error(OciErrorCode::NameUnknown).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            registry_error(OciErrorCode::Denied).kind(),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            registry_error(OciErrorCode::Unauthorized).kind(),
            ErrorKind::Unauthenticated
        );
        let e = ImageError::Registry {
            at: Box::new(At {
                registry: "r".into(),
                reference: "r/x:1".into(),
            }),
            what: "manifest".into(),
            source: Box::new(OciDistributionError::ServerError {
                code: 503,
                url: "u".into(),
                message: "down".into(),
            }),
        };
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn message_names_registry_reference_and_answer() {
        let msg = registry_error(OciErrorCode::ManifestUnknown).full_message();
        assert!(msg.contains("registry 127.0.0.1:5000"), "{msg}");
        assert!(msg.contains("127.0.0.1:5000/test/img:v1"), "{msg}");
        assert!(msg.contains("manifest unknown"), "{msg}");
    }

    #[test]
    fn error_stays_small() {
        // Callers embed ImageError in their own errors; keep it under clippy's large-error bar.
        assert!(
            std::mem::size_of::<ImageError>() <= 96,
            "{}",
            std::mem::size_of::<ImageError>()
        );
    }

    #[test]
    fn shared_and_pull_failed_keep_the_kind() {
        let inner = registry_error(OciErrorCode::ManifestUnknown);
        let shared = ImageError::Shared(Arc::new(inner));
        assert_eq!(shared.kind(), ErrorKind::NotFound);
        let failed = ImageError::PullFailed {
            image: "img".into(),
            attempts: vec!["a".into()],
            source: Box::new(shared),
        };
        assert_eq!(failed.kind(), ErrorKind::NotFound);
        assert!(failed.full_message().contains("manifest unknown"));
    }

    #[test]
    fn in_use_is_lifted_from_store_errors() {
        let e = ImageError::store(
            "remove_image",
            crust_storage::StoreError::ImageInUse {
                image: "sha256:aa".into(),
                container: "c1".into(),
            },
        );
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
        assert!(e.to_string().contains("c1"));
    }
}
