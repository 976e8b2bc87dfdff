//! The one place where domain errors become gRPC statuses.
//!
//! Image errors are classified by the image service ([`ImageError::kind`]) and mapped here:
//!
//! | error                                          | code               |
//! |------------------------------------------------|--------------------|
//! | malformed reference, bad credentials fields    | InvalidArgument    |
//! | manifest/repository/blob unknown, no platform  | NotFound           |
//! | registry 401 / token request refused           | Unauthenticated    |
//! | registry DENIED / 403, blocked registry        | PermissionDenied   |
//! | unreachable, 5xx, no progress (stalled)        | Unavailable        |
//! | 429 / TOOMANYREQUESTS                          | ResourceExhausted  |
//! | image in use, unusable manifest or media type  | FailedPrecondition |
//! | digest or size mismatch                        | DataLoss           |
//! | anything else (I/O, storage)                   | Internal           |
//!
//! The message is the error with all its sources, so it names the registry, the reference
//! and what the registry answered.

use tonic::{Code, Status};

use crate::image::{ErrorKind, ImageError, store_kind};
use crate::lifecycle::LifecycleError;

/// The gRPC code for an error kind.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::DataLoss => Code::DataLoss,
        ErrorKind::Internal => Code::Internal,
    }
}

impl From<ImageError> for Status {
    fn from(e: ImageError) -> Status {
        Status::new(code(e.kind()), e.full_message())
    }
}

impl From<crate::streaming::StreamError> for Status {
    fn from(e: crate::streaming::StreamError) -> Status {
        Status::new(code(e.kind()), e.full_message())
    }
}

impl From<LifecycleError> for Status {
    fn from(e: LifecycleError) -> Status {
        Status::new(code(e.kind()), e.full_message())
    }
}

/// A storage error as a status; `context` says what was being done ("remove image x").
pub fn storage(context: &str, e: &crust_storage::StoreError) -> Status {
    let mut msg = format!("{context}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    Status::new(code(store_kind(e)), msg)
}

/// A required field of a request is missing or empty.
pub fn missing_field(rpc: &str, field: &str) -> Status {
    Status::invalid_argument(format!("{rpc}: {field} is required"))
}

/// `InvalidArgument` naming the field, the value and what is wrong with it.
pub fn invalid(field: &str, value: &str, reason: &str) -> Status {
    Status::invalid_argument(format!("{field} {value:?}: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_is_failed_precondition_naming_the_container() {
        let s: Status = ImageError::InUse {
            image: "sha256:aa".into(),
            container: "ctr-1".into(),
        }
        .into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(s.message().contains("ctr-1"));
    }

    #[test]
    fn storage_errors_keep_their_kind() {
        let s = storage(
            "remove image",
            &crust_storage::StoreError::NotFound {
                kind: "image",
                id: "x".into(),
            },
        );
        assert_eq!(s.code(), Code::NotFound);
        assert!(s.message().starts_with("remove image: image x not found"));
    }
}
