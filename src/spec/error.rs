//! The one error type of the CRI -> OCI spec conversion.
//!
//! Everything a CRI request controls that is wrong ends up as [`SpecError::InvalidArgument`]
//! naming the CRI field (`mounts[2].host_path`, `linux.security_context.run_as_username`)
//! and the offending value, so the server can answer gRPC `InvalidArgument` with a message
//! a kubelet user can act on. Host-side failures (reading the rootfs, writing the bundle)
//! are [`SpecError::Io`].

use std::path::PathBuf;

/// Why a container spec could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A request field (or the image config it relies on) has a value crust cannot use.
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidArgument {
        /// The CRI field path, e.g. `mounts[0].host_path`.
        field: String,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file operation on the host failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done ("read", "write", "rename", ...).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON document (seccomp profile, config.json) could not be (de)serialized.
    #[error("{op} {}", path.display())]
    Json {
        /// "parse seccomp profile", "serialize config.json", ...
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

impl SpecError {
    /// Shorthand for [`SpecError::InvalidArgument`].
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        SpecError::InvalidArgument {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`SpecError::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SpecError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the request (not the host) is at fault: the server answers InvalidArgument.
    pub fn is_invalid_argument(&self) -> bool {
        matches!(self, SpecError::InvalidArgument { .. })
    }

    /// The error with all its sources, `: `-joined, for gRPC status messages and logs.
    pub fn full_message(&self) -> String {
        crate::errfmt::full_message(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_field_and_value() {
        let e = SpecError::invalid("mounts[1].host_path", "/nope", "does not exist");
        assert!(e.is_invalid_argument());
        assert_eq!(
            e.to_string(),
            "invalid mounts[1].host_path `/nope`: does not exist"
        );
        let e = SpecError::io(
            "read",
            "/x/etc/passwd",
            std::io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(!e.is_invalid_argument());
        assert!(e.full_message().starts_with("read /x/etc/passwd: "));
    }
}
