//! Errors of the OCI runtime driver. Each names the container, the runtime binary and the
//! operation; a failed runtime command carries the runtime's own stderr (trimmed), since
//! that is the only place runc/crun/runsc say what went wrong.

use std::path::PathBuf;

pub use crate::image::ErrorKind;

/// Errors driving an OCI runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The pod named a RuntimeClass handler that is not configured.
    #[error("unknown runtime handler {name:?} (known handlers: {})", known.join(", "))]
    UnknownHandler {
        /// The requested handler.
        name: String,
        /// Configured handlers.
        known: Vec<String>,
    },
    /// The handler is configured but cannot run containers on this host.
    #[error("runtime handler {name:?} is unavailable: {reason}")]
    Unavailable {
        /// The handler.
        name: String,
        /// Why (binary missing, unsupported cgroup hierarchy).
        reason: String,
    },
    /// A helper or runtime binary was not found.
    #[error("binary `{name}` not found (looked in {})", searched_list(searched))]
    BinaryNotFound {
        /// The binary name or configured path.
        name: String,
        /// Every candidate tried.
        searched: Vec<PathBuf>,
    },
    /// The runtime said the container does not exist.
    #[error("{} container {}: no such container in {}: {stderr}", at.op, at.id, at.runtime.display())]
    ContainerNotFound {
        /// The command.
        at: Box<Invocation>,
        /// Runtime stderr.
        stderr: String,
    },
    /// The runtime ran and failed.
    #[error("{} container {}: {} {status}: {stderr}", at.op, at.id, at.runtime.display())]
    Command {
        /// The command.
        at: Box<Invocation>,
        /// Exit status as text (`exited with status 1`, `killed by signal 9`).
        status: String,
        /// Runtime stderr, trimmed.
        stderr: String,
    },
    /// The runtime could not be started or waited for.
    #[error("{} container {}: cannot run {}", at.op, at.id, at.runtime.display())]
    Spawn {
        /// The command.
        at: Box<Invocation>,
        #[source]
        source: std::io::Error,
    },
    /// The runtime printed something we could not parse (`state`).
    #[error("{} container {}: unexpected output from {}: {reason}", at.op, at.id, at.runtime.display())]
    BadOutput {
        /// The command.
        at: Box<Invocation>,
        /// Parser message.
        reason: String,
    },
    /// Request data could not be encoded for the runtime (`update --resources -`).
    #[error("{op} container {id}: cannot encode request")]
    Encode {
        /// Subcommand.
        op: &'static str,
        /// Container id.
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Which runtime command an error is about (boxed: keeps [`RuntimeError`] small, it
/// is nested in the lifecycle errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Runtime binary.
    pub runtime: PathBuf,
    /// Subcommand.
    pub op: &'static str,
    /// Container id.
    pub id: String,
}

impl Invocation {
    /// Boxed, for the error variants.
    pub fn boxed(runtime: &std::path::Path, op: &'static str, id: &str) -> Box<Self> {
        Box::new(Self {
            runtime: runtime.to_path_buf(),
            op,
            id: id.to_owned(),
        })
    }
}

fn searched_list(v: &[PathBuf]) -> String {
    if v.is_empty() {
        return "nowhere".to_owned();
    }
    v.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl RuntimeError {
    /// Classify for the gRPC layer (`server::error::code`).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownHandler { .. } => ErrorKind::InvalidArgument,
            Self::Unavailable { .. } | Self::BinaryNotFound { .. } => ErrorKind::FailedPrecondition,
            Self::ContainerNotFound { .. } => ErrorKind::NotFound,
            Self::Command { stderr, .. } if is_wrong_state(stderr) => ErrorKind::FailedPrecondition,
            Self::Command { .. }
            | Self::Spawn { .. }
            | Self::BadOutput { .. }
            | Self::Encode { .. } => ErrorKind::Internal,
        }
    }

    /// The error with all its sources, `: `-joined (for gRPC messages and logs).
    pub fn full_message(&self) -> String {
        crate::errfmt::full_message(self)
    }
}

/// runc/crun/youki/runsc messages for "no such container" (runc: `container does not
/// exist`, crun: `container `x` does not exist` / `No such file or directory`, runsc:
/// `loading container "x": file does not exist`).
pub(crate) fn is_not_found(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("does not exist") || s.contains("not found") || s.contains("no such file")
}

/// Messages for "the container is not running" (kill after exit). runc: `container not
/// running`, older runc: `process already finished`, crun: `the container is not running`.
pub(crate) fn is_not_running(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("not running")
        || s.contains("process already finished")
        || s.contains("no such process")
}

/// Messages for an operation refused in the container's current state
/// (runc: `cannot start a container that has stopped`, `container is not paused`).
fn is_wrong_state(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("cannot start")
        || s.contains("not paused")
        || s.contains("not running")
        || s.contains("is already")
        || s.contains("has stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_classifiers() {
        assert!(is_not_found("container does not exist"));
        assert!(is_not_found(
            "time=\"..\" level=error msg=\"container does not exist\""
        ));
        assert!(is_not_found("loading container \"x\": file does not exist"));
        assert!(!is_not_found("container not running"));
        assert!(is_not_running("container not running"));
        assert!(is_not_running("the container is not running"));
        assert!(is_not_running("process already finished"));
        assert!(!is_not_running("permission denied"));
    }

    #[test]
    fn kinds() {
        let cmd = |stderr: &str| RuntimeError::Command {
            at: Invocation::boxed(std::path::Path::new("/usr/sbin/runc"), "start", "c1"),
            status: "exit status: 1".into(),
            stderr: stderr.into(),
        };
        assert_eq!(
            cmd("cannot start a container that has stopped").kind(),
            ErrorKind::FailedPrecondition
        );
        assert_eq!(cmd("permission denied").kind(), ErrorKind::Internal);
        let e = RuntimeError::UnknownHandler {
            name: "kata".into(),
            known: vec!["runc".into(), "runsc".into()],
        };
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "unknown runtime handler \"kata\" (known handlers: runc, runsc)"
        );
        let e = RuntimeError::BinaryNotFound {
            name: "crust-monitor".into(),
            searched: vec!["/a/crust-monitor".into(), "/b/crust-monitor".into()],
        };
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
        assert!(e.to_string().contains("/a/crust-monitor, /b/crust-monitor"));
        assert!(
            cmd("x")
                .to_string()
                .starts_with("start container c1: /usr/sbin/runc exit status: 1: x")
        );
        // Nested inside lifecycle errors: keep it small (clippy::result_large_err).
        assert!(std::mem::size_of::<RuntimeError>() <= 64);
    }
}
