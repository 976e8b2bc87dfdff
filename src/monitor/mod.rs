//! Daemon side of the per-container monitor (`crust-monitor`, conmon-rs/): spawning it
//! (which runs `<runtime> create`), its control socket, and the exit files it writes.
//!
//! The protocol is `proto/monitor/monitor.proto` (`crust_proto::monitor`); the sequence
//! is described in conmon-rs/README.md. The monitor outlives the daemon, so everything
//! the daemon needs after a restart is on disk: the control socket (alive while the
//! container runs) and the exit file (written once it exited).
//!
//! - [`spawn()`]: start a monitor and wait for the runtime's create result.
//! - [`client`]: `status`, `reopen_log`, `resize`, `attach` over the control socket.
//! - [`exit`]: exit file parsing, [`process_alive`].

pub mod client;
pub mod exit;
pub mod spawn;

use std::path::PathBuf;
use std::time::Duration;

pub use client::{MonitorStatus, attach, reopen_log, resize, status};
pub use exit::{ExitRecord, process_alive, read_exit_file, wait_exit_file};
pub use spawn::{SpawnRequest, Spawned, spawn};

pub use crate::image::ErrorKind;

/// Errors talking to or about a monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// `<runtime> create` failed; `message` is the runtime's exit status and stderr as
    /// reported by the monitor.
    #[error("container {id}: {message}")]
    CreateFailed {
        /// Container id.
        id: String,
        /// The monitor's report (runtime status and stderr).
        message: String,
    },
    /// The monitor binary could not be started.
    #[error("container {id}: cannot start monitor {}", monitor.display())]
    Spawn {
        /// Container id.
        id: String,
        /// Monitor binary.
        monitor: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// File or pipe work around spawning failed.
    #[error("container {id}: {op} {}", path.display())]
    Io {
        /// Container id.
        id: String,
        /// What was being done.
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The monitor exited without reporting a create result.
    #[error("container {id}: monitor exited ({status}) without a result: {diagnostics}")]
    NoResult {
        /// Container id.
        id: String,
        /// Exit status of the first monitor process.
        status: String,
        /// Tail of `<bundle>/monitor.log`.
        diagnostics: String,
    },
    /// No create result within the timeout.
    #[error("container {id}: no create result from the monitor after {after:?}")]
    Timeout {
        /// Container id.
        id: String,
        /// How long we waited.
        after: Duration,
    },
    /// The request cannot be carried out as given.
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// The control socket is gone or refuses connections: the monitor has exited.
    #[error("monitor socket {}: {op}: monitor not reachable", socket.display())]
    Gone {
        /// Control socket.
        socket: PathBuf,
        /// The request.
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Talking over the control socket failed midway.
    #[error("monitor socket {}: {op}", socket.display())]
    Control {
        /// Control socket.
        socket: PathBuf,
        /// The request.
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The monitor's bytes were not valid protobuf.
    #[error("{what}: malformed message from monitor")]
    Decode {
        /// Pipe or socket.
        what: String,
        #[source]
        source: prost::DecodeError,
    },
    /// The monitor answered with an error (e.g. resize without a terminal).
    #[error("monitor socket {}: {op}: {message}", socket.display())]
    Refused {
        /// Control socket.
        socket: PathBuf,
        /// The request.
        op: &'static str,
        /// The monitor's message.
        message: String,
    },
    /// The exit file could not be read.
    #[error("exit file {}: cannot read", path.display())]
    ExitFileRead {
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The exit file is not what the monitor writes.
    #[error("exit file {}: {reason}", path.display())]
    ExitFileInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A blocking task did not complete.
    #[error(transparent)]
    Blocking(#[from] crate::blocking::JoinError),
}

impl MonitorError {
    /// Classify for the gRPC layer.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. } => ErrorKind::InvalidArgument,
            Self::Gone { .. } => ErrorKind::NotFound,
            Self::Refused { .. } => ErrorKind::FailedPrecondition,
            Self::Timeout { .. } => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    /// The error with all its sources, `: `-joined.
    pub fn full_message(&self) -> String {
        crate::errfmt::full_message(self)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_stays_small() {
        // Nested inside lifecycle errors (clippy::result_large_err).
        assert!(std::mem::size_of::<super::MonitorError>() <= 80);
    }
}
