//! The one bridge from async code to the synchronous leaf crates (`crust-storage`, later
//! `crust-hooks`).
//!
//! Storage does file-system work that blocks (fsync, unpacking, mounts); running it on the
//! tokio worker threads would stall every other RPC. All such calls go through [`run`], so
//! there is a single place that decides how blocking work is scheduled.

/// Error returned when the blocking task itself failed (it panicked or was cancelled at
/// shutdown) rather than returning its own error.
#[derive(Debug, thiserror::Error)]
#[error("blocking task '{task}' did not complete")]
pub struct JoinError {
    /// What was running, for the log and the gRPC message.
    pub task: &'static str,
    #[source]
    pub source: tokio::task::JoinError,
}

/// Run `f` on tokio's blocking pool and wait for it.
pub async fn run<T, F>(task: &'static str, f: F) -> Result<T, JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| JoinError { task, source })
}
