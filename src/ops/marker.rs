//! The clean-shutdown marker, `<root>/clean.shutdown` (CRI-O's `clean_shutdown_file`).
//!
//! Written (durably, after a `syncfs` of the root) as the very last step of a graceful
//! shutdown, once the CRI server has stopped and no RPC can change the store any more;
//! read and deleted (durably) at start-up before anything else touches the store. So the
//! marker exists exactly when the previous daemon stopped cleanly and nothing ran since:
//! - absent: the previous run crashed, was killed with SIGKILL, or the machine lost power
//!   (or this is the first start). Half-done operations may be on disk, so the daemon runs
//!   the full consistency check with repair (`crate::ops::check`) before serving.
//! - present: every operation finished and was synced, so the expensive check is skipped
//!   (`Store::open`'s cheap recovery still runs, as always).
//!
//! Deleting the marker before serving is what makes this safe: a crash at any later
//! instant leaves no marker, and the next start checks.

use std::path::{Path, PathBuf};

/// File name of the marker below the root.
pub const MARKER: &str = "clean.shutdown";

/// Errors reading or writing the marker.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// Writing the marker failed.
    #[error("cannot write the clean-shutdown marker")]
    Write(#[source] crate::atomic_file::AtomicWriteError),
    /// Removing or syncing failed.
    #[error("cannot {op} {path:?}")]
    Io {
        /// What was done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The marker's path.
pub fn path(root: &Path) -> PathBuf {
    root.join(MARKER)
}

/// Record a clean shutdown: sync the filesystem holding `root` (so everything the daemon
/// wrote before is durable before the marker claims it), then write the marker durably.
pub fn write(root: &Path) -> Result<(), MarkerError> {
    let dir = std::fs::File::open(root).map_err(|source| MarkerError::Io {
        op: "open",
        path: root.to_owned(),
        source,
    })?;
    rustix::fs::syncfs(&dir).map_err(|e| MarkerError::Io {
        op: "syncfs",
        path: root.to_owned(),
        source: e.into(),
    })?;
    let text = format!(
        "crust {} stopped cleanly at unix time {}\n",
        env!("CARGO_PKG_VERSION"),
        crate::state::now_nanos() / 1_000_000_000
    );
    crate::atomic_file::write(&path(root), text.as_bytes(), true).map_err(MarkerError::Write)
}

/// Consume the marker: `true` if it was there (the previous run shut down cleanly). The
/// removal is made durable so a power loss cannot bring the marker back.
pub fn take(root: &Path) -> Result<bool, MarkerError> {
    let p = path(root);
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(MarkerError::Io {
                op: "remove",
                path: p,
                source,
            });
        }
    }
    std::fs::File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(|source| MarkerError::Io {
            op: "fsync",
            path: root.to_owned(),
            source,
        })?;
    Ok(true)
}

/// What start-up must do given whether the marker was present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupCheck {
    /// Clean shutdown: skip the consistency check.
    Skip,
    /// Unclean shutdown or first start: check and repair.
    Run,
}

/// Consume the marker and decide. An unreadable marker counts as absent (check).
pub fn startup_decision(root: &Path) -> StartupCheck {
    match take(root) {
        Ok(true) => StartupCheck::Skip,
        Ok(false) => StartupCheck::Run,
        Err(e) => {
            tracing::warn!(error = %e, "clean-shutdown marker unusable; checking storage");
            StartupCheck::Run
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn written_marker_is_consumed_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // First start: no marker, check.
        assert_eq!(startup_decision(root), StartupCheck::Run);
        write(root).unwrap();
        let text = std::fs::read_to_string(path(root)).unwrap();
        assert!(text.contains("stopped cleanly"), "{text}");
        // Clean restart: skip, and the marker is gone so a crash now means a check.
        assert_eq!(startup_decision(root), StartupCheck::Skip);
        assert!(!path(root).exists());
        assert_eq!(startup_decision(root), StartupCheck::Run);
    }

    #[test]
    fn unremovable_marker_means_check() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the marker's place cannot be removed with remove_file.
        std::fs::create_dir(path(dir.path())).unwrap();
        assert_eq!(startup_decision(dir.path()), StartupCheck::Run);
    }
}
