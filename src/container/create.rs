//! `CreateContainer`: writable layer + overlay rootfs, OCI bundle (with the matching OCI
//! hooks of `crust.runtime.hooks_dir`, `crate::spec::hooks`), then the monitor runs
//! `<runtime> create`.
//!
//! Order and rollback: the name is reserved first (AlreadyExists before any work), then
//! storage, bundle and monitor; any failure undoes what was done in reverse. The record is
//! persisted only once the runtime created the container, and restart recovery removes
//! storage layers and bundles that have no record (a crash mid-create).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crust_proto::cri;
use prost::Message as _;

use crate::lifecycle::{LifecycleError, Manager};
use crate::monitor::{self, SpawnRequest};
use crate::spec::{self, ImageSpecInfo, PidNs, SandboxSpecInfo, SpecOptions};
use crate::state::{
    Container, ContainerRecord, ContainerState, PidMode, Pod, PodRecord, new_id, now_nanos,
};

fn validate(req: &cri::CreateContainerRequest) -> Result<&cri::ContainerConfig, LifecycleError> {
    if req.pod_sandbox_id.is_empty() {
        return Err(LifecycleError::invalid("pod_sandbox_id", "", "is required"));
    }
    let cfg = req
        .config
        .as_ref()
        .ok_or_else(|| LifecycleError::invalid("config", "", "is required"))?;
    let meta = cfg
        .metadata
        .as_ref()
        .ok_or_else(|| LifecycleError::invalid("config.metadata", "", "is required"))?;
    if meta.name.is_empty() {
        return Err(LifecycleError::invalid(
            "config.metadata.name",
            "",
            "is required",
        ));
    }
    if cfg.image.as_ref().is_none_or(|i| i.image.is_empty()) {
        return Err(LifecycleError::invalid(
            "config.image.image",
            "",
            "is required",
        ));
    }
    if Path::new(&cfg.log_path).is_absolute() {
        return Err(LifecycleError::invalid(
            "config.log_path",
            cfg.log_path.clone(),
            "must be relative to the pod's log_directory",
        ));
    }
    if cfg.log_path.split('/').any(|c| c == "..") {
        return Err(LifecycleError::invalid(
            "config.log_path",
            cfg.log_path.clone(),
            "must not contain '..'",
        ));
    }
    Ok(cfg)
}

/// What the pod contributes to a container's spec.
pub fn sandbox_info(pod: &Pod, rec: &PodRecord) -> SandboxSpecInfo {
    let linux = pod.config.linux.as_ref();
    let privileged = linux
        .and_then(|l| l.security_context.as_ref())
        .is_some_and(|s| s.privileged);
    SandboxSpecInfo {
        pod_id: pod.id.clone(),
        hostname: rec.hostname.clone(),
        net_ns: rec.net_ns.clone(),
        ipc_ns: rec.ipc_ns.clone(),
        uts_ns: rec.uts_ns.clone(),
        pid_ns: match (rec.pid_mode, rec.pause) {
            (PidMode::Host, _) => PidNs::Host,
            (PidMode::Pod, Some(p)) => PidNs::Pod(PathBuf::from(format!("/proc/{}/ns/pid", p.pid))),
            _ => PidNs::Container,
        },
        hostname_file: Some(rec.dir.join("hostname")),
        hosts_file: Some(rec.dir.join("hosts")),
        resolv_file: Some(rec.dir.join("resolv.conf")),
        shm_dir: rec.shm.clone(),
        cgroup_parent: linux.map(|l| l.cgroup_parent.clone()).unwrap_or_default(),
        sysctls: linux.map(|l| l.sysctls.clone()).unwrap_or_default(),
        privileged,
        runtime_handler: rec.runtime_handler.clone(),
    }
}

/// The log file: `<pod log_directory>/<config log_path>` when both are set (CRI), else a
/// file in the bundle so the monitor always has somewhere to write.
fn log_path(pod: &Pod, cfg: &cri::ContainerConfig, bundle: &Path) -> PathBuf {
    if pod.config.log_directory.is_empty() || cfg.log_path.is_empty() {
        bundle.join("container.log")
    } else {
        Path::new(&pod.config.log_directory).join(&cfg.log_path)
    }
}

/// crust runs no infra container, so no runtime container is "the sandbox". Sandbox-aware
/// runtimes (gVisor's runsc, Kata) read containerd's container-type/sandbox-id annotations
/// and would look for that sandbox container (runsc: "cannot load sandbox"); without them
/// each container is its own runtime sandbox joining the pod's pinned namespaces.
fn without_sandbox_annotations(spec: &mut oci_spec::runtime::Spec) {
    if let Some(a) = spec.annotations_mut() {
        a.remove(spec::annotations::CONTAINER_TYPE);
        a.remove(spec::annotations::SANDBOX_ID);
    }
}

/// Everything created so far, for rollback.
#[derive(Default)]
struct Undo {
    layer: bool,
    bundle: Option<PathBuf>,
}

impl Manager {
    /// Spec options from the daemon's settings.
    pub fn spec_options(
        &self,
        cgroups_path: String,
        privileged_without_host_devices: bool,
    ) -> SpecOptions {
        SpecOptions {
            oom_score_adj_min: self.opts.oom_score_adj_min,
            cgroups_path,
            privileged_without_host_devices,
            seccomp_profile: self.opts.seccomp_profile.clone(),
            apparmor_enabled: self.opts.apparmor_enabled,
            default_capabilities: self.opts.default_capabilities.clone(),
        }
    }

    /// `CreateContainer`: returns the new container id.
    pub async fn create_container(
        self: &Arc<Self>,
        req: cri::CreateContainerRequest,
    ) -> Result<String, LifecycleError> {
        let cfg = validate(&req)?.clone();
        let pod = self.pod(&req.pod_sandbox_id)?;
        tracing::Span::current().record("pod", pod.id.as_str());
        // Holding the pod's op lock keeps StopPodSandbox/RemovePodSandbox from running
        // while a container is being added to the pod.
        let _pod_op = pod.op.lock().await;
        let prec = pod.record();
        if prec.state != crate::state::PodState::Ready {
            return Err(LifecycleError::precondition(
                format!("pod sandbox {}", pod.id),
                "is not ready (stopped): containers cannot be created in it",
            ));
        }
        let meta = cfg.metadata.clone().unwrap_or_default();
        let id = new_id();
        tracing::Span::current().record("container", id.as_str());
        let key = Container::name_key(&pod.id, &meta);
        self.state
            .reserve_name(&key, &id)
            .map_err(|t| LifecycleError::NameInUse {
                kind: "container",
                name: key.clone(),
                holder: t.holder,
            })?;
        let mut undo = Undo::default();
        let res = self.create_reserved(&id, &pod, &prec, cfg, &mut undo).await;
        if let Err(e) = &res {
            tracing::warn!(container = %id, error = %e.full_message(), "create failed, rolling back");
            self.rollback(&id, undo).await;
            self.state.release_name(&key, &id);
        }
        res.map(|()| id)
    }

    async fn rollback(self: &Arc<Self>, id: &str, undo: Undo) {
        let store = Arc::clone(self.images.store());
        let id = id.to_string();
        let sock = self.socket_path(&id);
        let exit = self.exit_file(&id);
        let _ = crate::blocking::run("roll back container", move || {
            if undo.layer {
                let _ = store.delete_container(&id);
            }
            if let Some(b) = undo.bundle {
                let _ = std::fs::remove_dir_all(b);
            }
            let _ = std::fs::remove_file(sock);
            let _ = std::fs::remove_file(exit);
        })
        .await;
    }

    async fn create_reserved(
        self: &Arc<Self>,
        id: &str,
        pod: &Arc<Pod>,
        prec: &PodRecord,
        cfg: cri::ContainerConfig,
        undo: &mut Undo,
    ) -> Result<(), LifecycleError> {
        let image_name = cfg
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let details = self.images.status(&image_name).await?.ok_or_else(|| {
            LifecycleError::ImageNotFound {
                image: image_name.clone(),
            }
        })?;
        let handler = self.handler(&prec.runtime_handler)?.clone();
        let image_id = details.record.id.clone();
        let store = Arc::clone(self.images.store());
        let rootfs = {
            let cid = id.to_string();
            undo.layer = true;
            crate::blocking::run("create container layer", move || {
                store.create_container(&cid, &image_id)?;
                store.mount_container(&cid)
            })
            .await?
            .map_err(|source| LifecycleError::Store {
                op: "create the writable layer of",
                id: id.to_string(),
                source: Box::new(source),
            })?
        };
        let image_info = ImageSpecInfo::from_config_json(
            details
                .config
                .get("config")
                .unwrap_or(&serde_json::Value::Null),
        );
        let sandbox = sandbox_info(pod, prec);
        let cgroups_path =
            crate::cgroups::container_path(self.opts.cgroup_driver, &sandbox.cgroup_parent, id);
        let opts = self.spec_options(
            cgroups_path.clone(),
            handler.privileged_without_host_devices,
        );
        let stop_signal = match &image_info.stop_signal {
            Some(s) if !s.is_empty() => {
                spec::parse_signal(s).map_err(|source| LifecycleError::Spec {
                    name: cfg
                        .metadata
                        .as_ref()
                        .map(|m| m.name.clone())
                        .unwrap_or_default(),
                    source: Box::new(source),
                })?
            }
            _ => libc::SIGTERM,
        };
        let bundle = self.bundle_dir(id);
        let log = log_path(pod, &cfg, &bundle);
        undo.bundle = Some(bundle.clone());
        let spec_res = {
            let (id, cfg, bundle, rootfs, log, hooks) = (
                id.to_string(),
                cfg.clone(),
                bundle.clone(),
                rootfs.clone(),
                log.clone(),
                Arc::clone(&self.hooks),
            );
            crate::blocking::run("write OCI bundle", move || {
                let io = |op: &'static str, path: PathBuf| {
                    move |source| LifecycleError::Io { op, path, source }
                };
                std::fs::create_dir_all(&bundle).map_err(io("create bundle", bundle.clone()))?;
                if let Some(parent) = log.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(io("create log directory", parent.to_path_buf()))?;
                }
                let name = cfg
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                let mut spec =
                    spec::container_spec(&id, &cfg, &sandbox, &image_info, &rootfs, &opts)
                        .map_err(|source| LifecycleError::Spec {
                            name: name.clone(),
                            source: Box::new(source),
                        })?;
                without_sandbox_annotations(&mut spec);
                let applied =
                    spec::hooks::apply(&hooks, &mut spec, &cfg.annotations, !cfg.mounts.is_empty());
                if !applied.is_empty() {
                    tracing::info!(container = %id, hooks = ?applied, "OCI hooks added");
                }
                spec::write_config(&bundle, &spec).map_err(|source| LifecycleError::Spec {
                    name,
                    source: Box::new(source),
                })?;
                Ok::<_, LifecycleError>(())
            })
            .await?
        };
        spec_res?;
        let req = SpawnRequest {
            monitor_path: handler.monitor_path.clone(),
            id: id.to_string(),
            bundle: bundle.clone(),
            runtime: handler.runtime.clone(),
            log_path: log.clone(),
            exit_file: self.exit_file(id),
            socket: self.socket_path(id),
            tty: cfg.tty,
            stdin: cfg.stdin,
            stdin_once: cfg.stdin_once,
        };
        let spawned = monitor::spawn(&req)
            .await
            .map_err(|source| LifecycleError::Monitor {
                op: "create",
                id: id.to_string(),
                source: Box::new(source),
            })?;
        let rec = ContainerRecord {
            id: id.to_string(),
            pod_id: pod.id.clone(),
            config: cfg.encode_to_vec(),
            image_name,
            image_id: details.record.id.to_string(),
            image_digest_ref: details
                .record
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_default(),
            runtime_handler: prec.runtime_handler.clone(),
            state: ContainerState::Created,
            created_at: now_nanos(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            pid: spawned.pid,
            monitor_pid: spawned.monitor_pid,
            bundle,
            rootfs,
            log_path: log,
            stop_signal,
            cgroups_path,
            updated_resources: Vec::new(),
        };
        let ctr = Container::new(rec.clone())
            .map_err(|e| LifecycleError::invalid("config", "", e.to_string()))?;
        if let Err(e) = self.save_container(rec).await {
            let _ = handler.runtime.delete(id, true).await;
            return Err(e);
        }
        let ctr = Arc::new(ctr);
        self.state.insert_container(Arc::clone(&ctr));
        // The container may already have died (e.g. killed before start).
        self.check_exit(&ctr).await;
        tracing::info!(container = id, pod = %pod.id, pid = spawned.pid, "container created");
        self.emit_container_event(
            &ctr,
            crust_proto::cri::ContainerEventType::ContainerCreatedEvent,
        );
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(cfg: Option<cri::ContainerConfig>) -> cri::CreateContainerRequest {
        cri::CreateContainerRequest {
            pod_sandbox_id: "p".into(),
            config: cfg,
            sandbox_config: None,
        }
    }

    #[test]
    fn validation_names_fields() {
        let e = validate(&req(None)).unwrap_err();
        assert!(e.to_string().contains("config"), "{e}");
        let mut c = cri::ContainerConfig::default();
        assert!(
            validate(&req(Some(c.clone())))
                .unwrap_err()
                .to_string()
                .contains("config.metadata")
        );
        c.metadata = Some(cri::ContainerMetadata {
            name: "a".into(),
            attempt: 0,
        });
        assert!(
            validate(&req(Some(c.clone())))
                .unwrap_err()
                .to_string()
                .contains("config.image.image")
        );
        c.image = Some(cri::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        });
        validate(&req(Some(c.clone()))).unwrap();
        c.log_path = "../x".into();
        assert!(
            validate(&req(Some(c)))
                .unwrap_err()
                .to_string()
                .contains("log_path")
        );
    }
}
