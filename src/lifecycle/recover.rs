//! Restart recovery: rebuild the index from the records and reconcile each with what is
//! really there, so a daemon killed at any instant comes back consistent (issue 3).
//!
//! - Containers recorded created/running: an exit file means the container exited while
//!   the daemon was away (its real code and time are applied); a live monitor means it is
//!   still running; neither (monitor gone, e.g. after a reboot) means it is exited with an
//!   unknown status, reported as such.
//! - Pods recorded ready: if the pinned namespaces are gone (reboot) or the pause process
//!   died, the pod is not ready any more and the kubelet recreates it.
//! - Leftovers of a crash mid-create or mid-remove (a writable layer or bundle with no
//!   record) are deleted, and their runtime state removed.
//! - Pod networks: CNI attachments cached for pods crust no longer knows (a crash
//!   mid-RunPodSandbox) are DELeted, then a CNI 1.1 network gets its GC verb
//!   (`NetworkManager::gc`); sandbox directories without a record (pinned namespaces,
//!   shm) are released after that DEL. The config watcher starts, and attachments of
//!   ready pods are CHECKed in the background (logged, never fatal).

use std::collections::HashSet;
use std::sync::Arc;

use super::Manager;
use crate::state::{Container, ContainerState, PidMode, Pod, PodState, now_nanos};

impl Manager {
    /// Load records and reconcile. Never fails the start: problems are logged per object.
    pub async fn recover(self: &Arc<Self>) {
        let me = Arc::clone(self);
        let loaded = crate::blocking::run("load state", move || me.state.load()).await;
        let Ok((pods, ctrs, errors)) = loaded else {
            tracing::error!("loading pod and container records failed");
            return;
        };
        for e in errors {
            tracing::error!(error = %e, "skipping unreadable record");
        }
        for rec in pods {
            let id = rec.id.clone();
            let pod = match Pod::new(rec) {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    tracing::error!(pod = %id, error = %e, "skipping pod with undecodable config");
                    continue;
                }
            };
            if let Some(meta) = &pod.config.metadata {
                let _ = self.state.reserve_name(&Pod::name_key(meta), &pod.id);
            }
            self.state.insert_pod(Arc::clone(&pod));
            self.reconcile_pod(&pod).await;
        }
        let mut known = HashSet::new();
        for rec in ctrs {
            let id = rec.id.clone();
            known.insert(id.clone());
            let c = match Container::new(rec) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    tracing::error!(container = %id, error = %e, "skipping container with undecodable config");
                    continue;
                }
            };
            if let Some(meta) = &c.config.metadata {
                let _ = self
                    .state
                    .reserve_name(&Container::name_key(&c.pod_id, meta), &c.id);
            }
            self.state.insert_container(Arc::clone(&c));
            self.reconcile_container(&c).await;
        }
        self.remove_orphans(&known).await;
        self.recover_network().await;
        tracing::info!(
            pods = self.state.pods().len(),
            containers = self.state.containers().len(),
            "state recovered"
        );
    }

    /// Network GC, orphan sandbox directories, the config watcher and background CHECKs.
    async fn recover_network(self: &Arc<Self>) {
        let pods = self.state.pods();
        let known: HashSet<String> = pods.iter().map(|p| p.id.clone()).collect();
        let released = self.network.gc(&known).await;
        if !released.is_empty() {
            tracing::info!(pods = ?released, "released network attachments of unknown pods");
        }
        let dir = self.opts.runroot.join("pods");
        let known2 = known.clone();
        let _ = crate::blocking::run("remove orphan pod directories", move || {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                return;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if known2.contains(&name) {
                    continue;
                }
                let p = e.path();
                tracing::warn!(pod = %name, dir = %p.display(), "removing the sandbox directory of an unknown pod");
                let _ = crate::sandbox::files::unmount_shm(&p.join("shm"));
                let _ = crate::sandbox::ns::unpin(&p.join("ns"));
                let _ = std::fs::remove_dir_all(&p);
            }
        })
        .await;
        tokio::spawn(Arc::clone(&self.network).watch());
        let ready: Vec<String> = pods
            .iter()
            .filter(|p| {
                let r = p.record();
                r.state == PodState::Ready && r.network.is_some()
            })
            .map(|p| p.id.clone())
            .collect();
        if ready.is_empty() {
            return;
        }
        let network = Arc::clone(&self.network);
        tokio::spawn(async move {
            for id in ready {
                if let Err(e) = network.check(&id).await {
                    tracing::warn!(pod = %id, error = %e.full_message(), "CNI CHECK of a recovered pod failed");
                }
            }
        });
    }

    async fn reconcile_pod(self: &Arc<Self>, pod: &Arc<Pod>) {
        let rec = pod.record();
        if rec.state != PodState::Ready {
            return;
        }
        let pins = [rec.net_ns.clone(), rec.ipc_ns.clone(), rec.uts_ns.clone()];
        let pause = rec.pause;
        let ok = crate::blocking::run("check pod", move || {
            let pins_ok = pins
                .iter()
                .flatten()
                .all(|p| crate::sandbox::ns::is_pinned(p));
            let pause_ok = match (rec.pid_mode, pause) {
                (PidMode::Pod, Some(p)) => {
                    crate::sandbox::pause::is_alive(&crate::sandbox::pause::PauseProcess {
                        pid: p.pid,
                        start_time: p.start_time,
                    })
                }
                (PidMode::Pod, None) => false,
                _ => true,
            };
            pins_ok && pause_ok
        })
        .await
        .unwrap_or(false);
        if !ok {
            tracing::warn!(pod = %pod.id, "pod namespaces or pause process are gone; marking it not ready");
            let rec = pod.update(|r| r.state = PodState::NotReady);
            if let Err(e) = self.save_pod(rec).await {
                tracing::error!(pod = %pod.id, error = %e.full_message(), "cannot persist pod state");
            }
        }
    }

    async fn reconcile_container(self: &Arc<Self>, c: &Arc<Container>) {
        let rec = c.record();
        if rec.state == ContainerState::Exited {
            return;
        }
        self.check_exit(c).await;
        if c.record().state == ContainerState::Exited {
            return;
        }
        if crate::monitor::process_alive(rec.monitor_pid) && self.socket_path(&c.id).exists() {
            return;
        }
        tracing::warn!(container = %c.id, "monitor gone and no exit file; exit status unknown");
        let rec = c.update(|r| {
            r.state = ContainerState::Exited;
            r.exit_code = 255;
            r.finished_at = now_nanos();
            r.reason = "Error".into();
            r.message = "container monitor disappeared (node reboot?); exit status unknown".into();
        });
        if let Err(e) = self.save_container(rec).await {
            tracing::error!(container = %c.id, error = %e.full_message(), "cannot persist container state");
        }
    }

    /// Writable layers and bundles without a record: a crash between creating them and
    /// saving the record (or between deleting the record's files and the record).
    async fn remove_orphans(self: &Arc<Self>, known: &HashSet<String>) {
        let store = Arc::clone(self.images.store());
        let bundles = self.opts.runroot.join("containers");
        let known2 = known.clone();
        let orphans = crate::blocking::run("find orphans", move || {
            let mut ids: HashSet<String> = store
                .containers()
                .into_iter()
                .map(|l| l.id)
                .filter(|id| !known2.contains(id))
                .collect();
            if let Ok(rd) = std::fs::read_dir(&bundles) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if !known2.contains(&name) {
                        ids.insert(name);
                    }
                }
            }
            ids
        })
        .await
        .unwrap_or_default();
        for id in orphans {
            tracing::warn!(container = %id, "removing leftovers of an interrupted create or remove");
            for h in self.handlers.all() {
                if h.unavailable.is_none() {
                    let _ = h.runtime.delete(&id, true).await;
                }
            }
            let me = Arc::clone(self);
            let _ = crate::blocking::run("remove orphan", move || {
                let _ = me.images.store().delete_container(&id);
                let _ = std::fs::remove_dir_all(me.bundle_dir(&id));
                let _ = std::fs::remove_file(me.socket_path(&id));
                let _ = std::fs::remove_file(me.exit_file(&id));
            })
            .await;
        }
    }
}
