//! `StopContainer` and `RemoveContainer`.
//!
//! Stop follows CRI and Docker: the stop signal (the image's `StopSignal`, else SIGTERM),
//! wait up to `timeout` seconds, then SIGKILL. Waiting happens on the container's exit
//! notification, holding only the container's own operation lock, so List/Status calls
//! answer meanwhile. Both are idempotent: stopping an exited container and removing an
//! unknown one succeed.

use std::sync::Arc;
use std::time::Duration;

use crust_proto::cri::ContainerEventType;

use crate::lifecycle::{LifecycleError, Manager};
use crate::state::{Container, ContainerState, now_nanos};

/// After SIGKILL, how long to wait for the monitor to report the exit.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Manager {
    /// `StopContainer`.
    pub async fn stop_container(
        self: &Arc<Self>,
        id: &str,
        timeout: i64,
    ) -> Result<(), LifecycleError> {
        let c = self.container(id)?;
        tracing::Span::current().record("container", c.id.as_str());
        self.stop_container_by_id(&c.id, timeout).await
    }

    /// Stop by exact id (pod stop uses this too).
    pub async fn stop_container_by_id(
        self: &Arc<Self>,
        id: &str,
        timeout: i64,
    ) -> Result<(), LifecycleError> {
        let c = self.container(id)?;
        let _op = c.op.lock().await;
        self.stop_locked(&c, timeout).await
    }

    async fn stop_locked(
        self: &Arc<Self>,
        c: &Arc<Container>,
        timeout: i64,
    ) -> Result<(), LifecycleError> {
        let rec = c.record();
        if matches!(rec.state, ContainerState::Exited) {
            return Ok(());
        }
        let runtime = self.handler(&rec.runtime_handler)?.runtime.clone();
        let kill = |sig: i32| {
            let runtime = runtime.clone();
            let id = c.id.clone();
            async move {
                runtime
                    .kill(&id, sig, false)
                    .await
                    .map_err(|source| LifecycleError::Runtime {
                        op: "signal",
                        kind: "container",
                        id,
                        source: Box::new(source),
                    })
            }
        };
        if rec.state == ContainerState::Created {
            // Never started: nothing to signal gracefully, and some runtimes (runsc) refuse
            // to signal a created container. `delete --force` kills its init.
            runtime
                .delete(&c.id, true)
                .await
                .map_err(|source| LifecycleError::Runtime {
                    op: "delete",
                    kind: "container",
                    id: c.id.clone(),
                    source: Box::new(source),
                })?;
        } else if timeout > 0 && rec.stop_signal != libc::SIGKILL {
            kill(rec.stop_signal).await?;
            let grace = Duration::from_secs(u64::try_from(timeout).unwrap_or(0));
            if tokio::time::timeout(grace, c.wait_exited()).await.is_ok() {
                return Ok(());
            }
            tracing::info!(container = %c.id, timeout, "grace period over, sending SIGKILL");
        }
        if rec.state != ContainerState::Created {
            kill(libc::SIGKILL).await?;
        }
        if tokio::time::timeout(KILL_WAIT, c.wait_exited())
            .await
            .is_ok()
        {
            return Ok(());
        }
        // The exit file never came: the monitor is gone (killed, or the node's state was
        // lost). Record the kill ourselves so the container does not stay "running".
        self.check_exit(c).await;
        if c.record().state == ContainerState::Exited {
            return Ok(());
        }
        if !crate::monitor::process_alive(rec.monitor_pid) {
            let rec = c.update(|r| {
                r.state = ContainerState::Exited;
                r.exit_code = 128 + libc::SIGKILL;
                r.finished_at = now_nanos();
                r.reason = "Error".into();
                r.message = "container monitor is gone; the container was killed".into();
            });
            self.save_container(rec).await?;
            self.emit_container_event(c, ContainerEventType::ContainerStoppedEvent);
            return Ok(());
        }
        Err(LifecycleError::precondition(
            format!("container {}", c.id),
            format!("did not exit within {}s of SIGKILL", KILL_WAIT.as_secs()),
        ))
    }

    /// `RemoveContainer`: a container that does not exist is not an error.
    pub async fn remove_container(self: &Arc<Self>, id: &str) -> Result<(), LifecycleError> {
        let c = match self.container(id) {
            Ok(c) => c,
            Err(LifecycleError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        tracing::Span::current().record("container", c.id.as_str());
        self.remove_container_by_id(&c.id).await
    }

    /// Remove by exact id: force-stop, delete runtime state, rootfs, bundle and record.
    pub async fn remove_container_by_id(self: &Arc<Self>, id: &str) -> Result<(), LifecycleError> {
        let c = match self.container(id) {
            Ok(c) => c,
            Err(LifecycleError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let _op = c.op.lock().await;
        self.stop_locked(&c, 0).await?;
        let rec = c.record();
        let runtime = self.handler(&rec.runtime_handler)?.runtime.clone();
        runtime
            .delete(&c.id, true)
            .await
            .map_err(|source| LifecycleError::Runtime {
                op: "delete",
                kind: "container",
                id: c.id.clone(),
                source: Box::new(source),
            })?;
        self.cleanup_container_files(&c.id, &rec).await?;
        self.state.remove_container(&c.id);
        if let Some(meta) = &c.config.metadata {
            self.state
                .release_name(&Container::name_key(&c.pod_id, meta), &c.id);
        }
        tracing::info!(container = %c.id, "container removed");
        self.emit_container_event(&c, ContainerEventType::ContainerDeletedEvent);
        Ok(())
    }

    /// Delete everything a container left on disk: writable layer (unmounting it), bundle,
    /// socket, exit file, cgroup, and last its record.
    pub async fn cleanup_container_files(
        self: &Arc<Self>,
        id: &str,
        rec: &crate::state::ContainerRecord,
    ) -> Result<(), LifecycleError> {
        let me = Arc::clone(self);
        let id = id.to_string();
        let (bundle, cgroups_path) = (rec.bundle.clone(), rec.cgroups_path.clone());
        crate::blocking::run("remove container files", move || {
            match me.images.store().delete_container(&id) {
                Ok(()) | Err(crust_storage::StoreError::NotFound { .. }) => {}
                Err(source) => {
                    return Err(LifecycleError::Store {
                        op: "delete the writable layer of",
                        id,
                        source: Box::new(source),
                    });
                }
            }
            crate::lifecycle::remove_dir_all(&bundle)?;
            crate::lifecycle::remove_file(&me.socket_path(&id))?;
            crate::lifecycle::remove_file(&me.exit_file(&id))?;
            if let Err(e) = crate::cgroups::remove(me.opts.cgroup_driver, &cgroups_path) {
                tracing::warn!(container = %id, error = %e, "cannot remove the container's cgroup");
            }
            me.state
                .delete_container(&id)
                .map_err(|source| LifecycleError::Persist { id, source })
        })
        .await?
    }
}
