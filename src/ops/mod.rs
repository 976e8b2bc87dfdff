//! Operating crust as a node service: the clean-shutdown marker ([`marker`]), the offline
//! storage/state check ([`check`], `crust check`), wiping all containers and optionally
//! images ([`wipe`], `crust wipe`), and `crust status` ([`status`]), which asks the running
//! daemon over CRI.
//!
//! `check` and `wipe` are offline tools, like CRI-O's `crio wipe` and containers/storage's
//! `check`/`repair`: they refuse while a daemon serves the configured socket or holds
//! `<root>/crust.lock` ([`ensure_offline`]), and keep that lock while they work so a
//! daemon started meanwhile refuses instead of sharing the store.

pub mod check;
pub mod cli;
pub mod marker;
pub mod mounts;
pub mod status;
pub mod wipe;

use std::time::Duration;

use crate::config::Config;

/// Errors of the operations subcommands.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// A daemon is running on this socket or root.
    #[error(
        "a crust daemon is running ({why}); `crust {command}` works offline only: stop the daemon first"
    )]
    DaemonRunning {
        /// The subcommand refused.
        command: &'static str,
        /// How it was detected.
        why: String,
    },
    /// The check could not run.
    #[error(transparent)]
    Check(#[from] check::CheckError),
    /// The wipe could not run or left things behind.
    #[error(transparent)]
    Wipe(#[from] wipe::WipeError),
    /// `crust status` failed.
    #[error(transparent)]
    Status(#[from] status::StatusError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// `e` and its sources, joined by ": " (for logs of errors printed with `%`).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// Whether a CRI server answers `Version` on `sock` within 2 s.
pub async fn socket_answers(sock: &std::path::Path) -> bool {
    if !sock.exists() {
        return false;
    }
    let endpoint = format!("unix://{}", sock.display());
    let probe = async {
        let (mut rt, _) = crate::ctl::connect(&endpoint).await.ok()?;
        rt.version(crust_proto::cri::VersionRequest::default())
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(_))
    )
}

/// The root lock held by an offline tool (released on drop).
#[derive(Debug)]
pub struct OfflineGuard {
    _lock: Option<std::fs::File>,
}

/// Refuse when a daemon serves `crust.api.listen` or holds `<root>/crust.lock`; otherwise
/// take that lock for the caller's lifetime. A root that does not exist needs no lock.
pub async fn ensure_offline(
    config: &Config,
    command: &'static str,
) -> Result<OfflineGuard, OpsError> {
    let c = &config.crust;
    if socket_answers(&c.api.listen).await {
        return Err(OpsError::DaemonRunning {
            command,
            why: format!("its socket {} answers", c.api.listen.display()),
        });
    }
    if !c.root.is_dir() {
        return Ok(OfflineGuard { _lock: None });
    }
    match crate::daemon::lock_root(&c.root) {
        Ok(f) => Ok(OfflineGuard { _lock: Some(f) }),
        Err(e) => Err(OpsError::DaemonRunning {
            command,
            why: format!("{e}"),
        }),
    }
}
