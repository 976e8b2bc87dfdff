//! `StopPodSandbox` and `RemovePodSandbox`.
//!
//! CRI: StopPodSandbox "should force termination of any running containers" and is
//! idempotent; RemovePodSandbox "forcibly" removes the pod and its containers and must not
//! fail when the pod is already gone. Containers are stopped concurrently with no grace
//! period (the kubelet already gave each its grace through StopContainer).
//!
//! The pod's CNI attachment is DELeted (from the cached config and result, so it works
//! after a daemon restart or a config change) while the network namespace is still
//! pinned, then the namespaces are released: CRI-O's order. A failing DEL fails the stop
//! and keeps the cache record, so the kubelet's retry runs it again.

use std::sync::Arc;

use super::{files, ns, pause};
use crate::lifecycle::{LifecycleError, Manager};
use crate::state::{Pod, PodState};

impl Manager {
    /// `StopPodSandbox`.
    pub async fn stop_pod(self: &Arc<Self>, id: &str) -> Result<(), LifecycleError> {
        let pod = self.pod(id)?;
        tracing::Span::current().record("pod", pod.id.as_str());
        let _op = pod.op.lock().await;
        self.stop_pod_locked(&pod).await
    }

    async fn stop_pod_locked(self: &Arc<Self>, pod: &Arc<Pod>) -> Result<(), LifecycleError> {
        let stops = self.state.pod_containers(&pod.id).into_iter().map(|c| {
            let me = Arc::clone(self);
            async move { me.stop_container_by_id(&c.id, 0).await }
        });
        for r in futures::future::join_all(stops).await {
            r?;
        }
        self.network
            .detach(&pod.id)
            .await
            .map_err(|e| sandbox("tear down the pod network", &pod.id, e.full_message()))?;
        let rec = pod.record();
        let (dir, shm, p) = (rec.dir.clone(), rec.shm.clone(), rec.pause);
        let pod_id = pod.id.clone();
        crate::blocking::run("stop pod sandbox", move || {
            if let Some(p) = p {
                pause::kill_pause(&pause::PauseProcess {
                    pid: p.pid,
                    start_time: p.start_time,
                })
                .map_err(|e| sandbox("stop the pause process", &pod_id, e.to_string()))?;
            }
            if let Some(s) = &shm {
                files::unmount_shm(s)
                    .map_err(|e| sandbox("unmount /dev/shm", &pod_id, e.to_string()))?;
            }
            ns::unpin(&dir.join("ns"))
                .map_err(|e| sandbox("release namespaces", &pod_id, e.to_string()))
        })
        .await??;
        if rec.state != PodState::NotReady {
            let rec = pod.update(|r| r.state = PodState::NotReady);
            self.save_pod(rec).await?;
            tracing::info!(pod = %pod.id, "pod sandbox stopped");
        }
        Ok(())
    }

    /// `RemovePodSandbox`: a pod that does not exist is not an error.
    pub async fn remove_pod(self: &Arc<Self>, id: &str) -> Result<(), LifecycleError> {
        let pod = match self.pod(id) {
            Ok(p) => p,
            Err(LifecycleError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        tracing::Span::current().record("pod", pod.id.as_str());
        let _op = pod.op.lock().await;
        self.stop_pod_locked(&pod).await?;
        for c in self.state.pod_containers(&pod.id) {
            self.remove_container_by_id(&c.id).await?;
        }
        let me = Arc::clone(self);
        let (pid, dir) = (pod.id.clone(), pod.record().dir);
        crate::blocking::run("remove pod sandbox", move || {
            crate::lifecycle::remove_dir_all(&dir)?;
            me.state
                .delete_pod(&pid)
                .map_err(|source| LifecycleError::Persist { id: pid, source })
        })
        .await??;
        self.state.remove_pod(&pod.id);
        if let Some(meta) = &pod.config.metadata {
            self.state.release_name(&Pod::name_key(meta), &pod.id);
        }
        tracing::info!(pod = %pod.id, "pod sandbox removed");
        Ok(())
    }
}

fn sandbox(op: &'static str, id: &str, message: String) -> LifecycleError {
    LifecycleError::Sandbox {
        op,
        id: id.to_string(),
        message,
        invalid: false,
    }
}
