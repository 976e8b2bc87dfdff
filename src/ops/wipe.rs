//! `crust wipe [--images] [--force]`: remove every pod and container crust knows, and with
//! `--images` the whole image store (CRI-O's `crio wipe`, which the kubelet's node
//! teardown and upgrades rely on).
//!
//! The removal goes through the daemon's own lifecycle code, run offline: the state is
//! loaded and reconciled exactly as at a daemon start, then each pod is removed like
//! `RemovePodSandbox` does (containers killed, `runtime delete --force`, rootfs unmounted,
//! bundle, cgroup and record deleted, pause process killed, namespaces and `/dev/shm`
//! unmounted) and the containers without a pod like `RemoveContainer`. So a wipe leaves
//! what a clean removal leaves: nothing. `--force` then also removes, by brute force,
//! whatever a failed removal left (mounts detached, runtime state force-deleted, records
//! and directories deleted), so a broken node can always be reset.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::mounts;
use crate::config::Config;
use crate::daemon::image_options;
use crate::image::ImageService;

/// Errors of a wipe.
#[derive(Debug, thiserror::Error)]
pub enum WipeError {
    /// The image store could not be opened.
    #[error("cannot open the image store at {path:?}")]
    Images {
        /// The storage root.
        path: PathBuf,
        #[source]
        source: crate::image::ImageError,
    },
    /// The lifecycle manager could not be set up.
    #[error("cannot load pod and container state")]
    Lifecycle(#[source] Box<crate::daemon::DaemonError>),
    /// Some objects could not be removed.
    #[error("wipe incomplete ({} failures; --force removes leftovers by brute force): {}", errors.len(), errors.join("; "))]
    Incomplete {
        /// One message per failure.
        errors: Vec<String>,
    },
    /// The image store could not be deleted.
    #[error("cannot remove the image store {path:?}")]
    RemoveImages {
        /// The storage root.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a wipe removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WipeReport {
    /// Pods removed.
    pub pods: usize,
    /// Containers removed (with or without a pod).
    pub containers: usize,
    /// Whether the image store was removed.
    pub images: bool,
    /// Failures that `--force` got past.
    pub forced: Vec<String>,
}

/// Wipe the node's crust state. The caller holds the offline guard.
pub async fn run(config: &Config, images: bool, force: bool) -> Result<WipeReport, WipeError> {
    let c = &config.crust;
    let opts = image_options(config);
    let storage = opts.storage_root.clone();
    let service = ImageService::open(opts)
        .await
        .map_err(|source| WipeError::Images {
            path: storage.clone(),
            source,
        })?;
    let manager = crate::daemon::lifecycle(config, Arc::new(service))
        .map_err(|e| WipeError::Lifecycle(Box::new(e)))?;
    manager.recover().await;
    // Stops wait for exit notifications, as in the daemon.
    let exits = tokio::spawn(Arc::clone(&manager).watch_exits());
    let mut report = WipeReport::default();
    let mut errors = Vec::new();
    for pod in manager.state.pods() {
        let n = manager.state.pod_containers(&pod.id).len();
        match manager.remove_pod(&pod.id).await {
            Ok(()) => {
                report.pods += 1;
                report.containers += n;
            }
            Err(e) => errors.push(format!("pod {}: {}", pod.id, e.full_message())),
        }
    }
    for ctr in manager.state.containers() {
        if !matches!(
            manager.state.pod(&ctr.pod_id),
            crate::state::Lookup::NotFound
        ) {
            continue; // its pod failed to go; reported above
        }
        match manager.remove_container_by_id(&ctr.id).await {
            Ok(()) => report.containers += 1,
            Err(e) => errors.push(format!("container {}: {}", ctr.id, e.full_message())),
        }
    }
    exits.abort();
    if !errors.is_empty() {
        if !force {
            return Err(WipeError::Incomplete { errors });
        }
        brute_force(&manager, config).await;
        report.forced = errors;
    }
    drop(manager);
    // Nothing below the runroot belongs to a pod or container any more.
    for d in ["pods", "containers"] {
        mounts::detach_below(&c.runroot.join(d));
    }
    if images {
        mounts::detach_below(&storage);
        match std::fs::remove_dir_all(&storage) {
            Ok(()) => report.images = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => report.images = true,
            Err(source) => {
                return Err(WipeError::RemoveImages {
                    path: storage,
                    source,
                });
            }
        }
    }
    Ok(report)
}

/// Remove what failed removals left: force-delete runtime state, detach mounts, delete
/// directories and records. Errors are logged only: this is the last resort.
async fn brute_force(manager: &Arc<crate::lifecycle::Manager>, config: &Config) {
    let c = &config.crust;
    for ctr in manager.state.containers() {
        for h in manager.handlers.all() {
            if h.unavailable.is_none() {
                let _ = h.runtime.delete(&ctr.id, true).await;
            }
        }
        if let Err(e) = manager.images.store().delete_container(&ctr.id) {
            tracing::warn!(container = %ctr.id, error = %e, "cannot delete the writable layer");
        }
        if let Err(e) =
            crate::cgroups::remove(manager.opts.cgroup_driver, &ctr.record().cgroups_path)
        {
            tracing::warn!(container = %ctr.id, error = %e, "cannot remove the cgroup");
        }
    }
    for pod in manager.state.pods() {
        if let Some(p) = pod.record().pause {
            let _ = crate::sandbox::pause::kill_pause(&crate::sandbox::pause::PauseProcess {
                pid: p.pid,
                start_time: p.start_time,
            });
        }
    }
    for d in ["pods", "containers", "exits", "sock"] {
        clear_dir(&c.runroot.join(d));
    }
    for d in ["pods", "containers"] {
        clear_dir(&c.root.join("state").join(d));
    }
}

fn clear_dir(dir: &Path) {
    mounts::detach_below(dir);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let res = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        if let Err(e) = res {
            tracing::warn!(path = %p.display(), error = %e, "cannot remove");
        }
    }
}
