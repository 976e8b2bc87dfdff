//! The pod and container lifecycle: the domain layer below the CRI server.
//!
//! [`Manager`] owns the state store (records + index), the runtime handlers, the container
//! event stream and the paths below root/runroot. Its operations live next to the parts
//! they drive: pod operations in `crate::sandbox` (`run.rs`, `stop.rs`, `remove.rs`),
//! container operations in `crate::container`, exit tracking in [`exits`] and restart
//! recovery in [`recover`].
//!
//! Paths:
//! - `<root>/state/{pods,containers}/<id>.json`: records (survive reboots).
//! - `<runroot>/pods/<id>/`: pinned namespaces, hostname/hosts/resolv.conf, shm.
//! - `<root>/cni/<pod id>.json` (`[crust.network] cache_dir`): CNI attachment records.
//! - `<runroot>/containers/<id>/`: OCI bundle (`config.json`, runtime pid file, monitor log).
//! - `<runroot>/exits/<id>`: exit files the monitors write (one inotify watch for all).
//! - `<runroot>/sock/<id prefix>`: monitor control sockets (kept short: `sun_path` is 108
//!   bytes and the monitor appends `.console`).

pub mod error;
pub mod exits;
pub mod recover;
pub mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crust_proto::cri;
use tokio::sync::broadcast;

pub use error::LifecycleError;

use crate::cgroups::Driver;
use crate::config::{CrustConfig, SharedConfig};
use crate::image::ImageService;
use crate::network::NetworkManager;
use crate::runtime::{Handler, Handlers};
use crate::state::{Container, Lookup, Pod, StateStore};

/// Characters of the container id used in the monitor socket name.
const SOCKET_ID_LEN: usize = 24;

/// Options derived from the config at start-up.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// `crust.root`.
    pub root: PathBuf,
    /// `crust.runroot`.
    pub runroot: PathBuf,
    /// The cgroup driver.
    pub cgroup_driver: Driver,
    /// The daemon's own `oom_score_adj`: containers never get a lower one (the node may
    /// lack CAP_SYS_RESOURCE; containerd's `restrict_oom_score_adj`).
    pub oom_score_adj_min: i32,
    /// `crust-pause` binary.
    pub pause_path: PathBuf,
    /// Custom RuntimeDefault seccomp profile (`None`: built-in).
    pub seccomp_profile: Option<PathBuf>,
    /// Default capabilities (empty: built-in set).
    pub default_capabilities: Vec<String>,
    /// Whether AppArmor is enabled on this kernel.
    pub apparmor_enabled: bool,
}

/// The lifecycle manager. Shared behind an `Arc`.
pub struct Manager {
    /// Records and index.
    pub state: StateStore,
    /// Runtime handlers (RuntimeClass).
    pub handlers: Handlers,
    /// Images (container create resolves the image; the store mounts rootfs).
    pub images: Arc<ImageService>,
    /// The effective config.
    pub config: SharedConfig,
    /// Options fixed at start-up.
    pub opts: ManagerOptions,
    /// OCI hooks from `crust.runtime.hooks_dir`, injected by `CreateContainer`.
    pub hooks: Arc<crust_hooks::HookManager>,
    /// Pod networking (CNI), configured by `[crust.network]` at start-up.
    pub network: Arc<NetworkManager>,
    events: broadcast::Sender<cri::ContainerEventResponse>,
}

/// Read the daemon's own oom_score_adj (0 when unreadable).
pub fn own_oom_score_adj() -> i32 {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether AppArmor profiles can be applied: the kernel has AppArmor enabled *and* crust's
/// default profile is loaded (runc fails to start a container whose profile is missing, so
/// without it containers run unconfined, as containerd does on hosts without AppArmor).
pub fn apparmor_enabled() -> bool {
    let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false);
    if !enabled {
        return false;
    }
    let loaded = std::fs::read_to_string("/sys/kernel/security/apparmor/profiles")
        .map(|p| {
            p.lines()
                .any(|l| l.starts_with(crate::spec::security::APPARMOR_DEFAULT_PROFILE))
        })
        .unwrap_or(false);
    if !loaded {
        tracing::warn!(
            profile = crate::spec::security::APPARMOR_DEFAULT_PROFILE,
            "AppArmor is enabled but crust's profile is not loaded; containers run unconfined"
        );
    }
    loaded
}

impl Manager {
    /// A manager over `state`; call [`Manager::recover`] before serving.
    pub fn new(
        config: SharedConfig,
        c: &CrustConfig,
        handlers: Handlers,
        images: Arc<ImageService>,
        opts: ManagerOptions,
    ) -> Result<Self, LifecycleError> {
        let state =
            StateStore::open(&c.root.join("state")).map_err(|source| LifecycleError::Persist {
                id: "state store".into(),
                source,
            })?;
        for d in [
            opts.runroot.join("pods"),
            opts.runroot.join("containers"),
            opts.runroot.join("exits"),
            opts.runroot.join("sock"),
        ] {
            std::fs::create_dir_all(&d).map_err(|source| LifecycleError::Io {
                op: "create directory",
                path: d.clone(),
                source,
            })?;
        }
        let cache_dir = c.network.cache_dir_for(&c.root);
        std::fs::create_dir_all(&cache_dir).map_err(|source| LifecycleError::Io {
            op: "create directory",
            path: cache_dir.clone(),
            source,
        })?;
        let network = NetworkManager::new(&c.network, &c.root).map_err(|e| {
            LifecycleError::precondition("the network attachment cache", e.full_message())
        })?;
        let (events, _) = broadcast::channel(1024);
        tracing::info!(dirs = ?c.runtime.hooks_dir, "OCI hook directories");
        let hooks = Arc::new(crust_hooks::HookManager::new(c.runtime.hooks_dir.clone()));
        Ok(Self {
            state,
            handlers,
            images,
            config,
            opts,
            hooks,
            network: Arc::new(network),
            events,
        })
    }

    /// `<runroot>/pods/<id>`.
    pub fn pod_dir(&self, id: &str) -> PathBuf {
        self.opts.runroot.join("pods").join(id)
    }

    /// `<runroot>/containers/<id>`.
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.opts.runroot.join("containers").join(id)
    }

    /// `<runroot>/exits`.
    pub fn exits_dir(&self) -> PathBuf {
        self.opts.runroot.join("exits")
    }

    /// `<runroot>/exits/<id>`.
    pub fn exit_file(&self, id: &str) -> PathBuf {
        self.exits_dir().join(id)
    }

    /// `<runroot>/sock/<id prefix>`.
    pub fn socket_path(&self, id: &str) -> PathBuf {
        let short = id.get(..SOCKET_ID_LEN).unwrap_or(id);
        self.opts.runroot.join("sock").join(short)
    }

    /// The handler a pod runs with.
    pub fn handler(&self, name: &str) -> Result<&Handler, LifecycleError> {
        self.handlers
            .get(name)
            .map_err(|e| LifecycleError::Handler(Box::new(e)))
    }

    /// Find a pod by id or unique prefix.
    pub fn pod(&self, id: &str) -> Result<Arc<Pod>, LifecycleError> {
        match self.state.pod(id) {
            Lookup::Found(p) => Ok(p),
            Lookup::NotFound => Err(LifecycleError::NotFound {
                kind: "pod sandbox",
                id: id.to_string(),
            }),
            Lookup::Ambiguous(matches) => Err(LifecycleError::Ambiguous {
                kind: "pod sandbox",
                id: id.to_string(),
                matches,
            }),
        }
    }

    /// Find a container by id or unique prefix.
    pub fn container(&self, id: &str) -> Result<Arc<Container>, LifecycleError> {
        match self.state.container(id) {
            Lookup::Found(c) => Ok(c),
            Lookup::NotFound => Err(LifecycleError::NotFound {
                kind: "container",
                id: id.to_string(),
            }),
            Lookup::Ambiguous(matches) => Err(LifecycleError::Ambiguous {
                kind: "container",
                id: id.to_string(),
                matches,
            }),
        }
    }

    /// Find a container that must be running for `what` (e.g. "exec needs a running
    /// container"): FailedPrecondition naming the container and its state otherwise.
    pub fn running_container(
        &self,
        id: &str,
        what: &str,
    ) -> Result<Arc<Container>, LifecycleError> {
        let c = self.container(id)?;
        let state = c.record().state;
        if state != crate::state::ContainerState::Running {
            return Err(LifecycleError::precondition(
                format!("container {}", c.id),
                format!("is {}: {what}", crate::container::start::state_word(state)),
            ));
        }
        Ok(c)
    }

    /// Persist a pod record. Writes of one pod are serialised and always write the
    /// newest in-memory snapshot (`rec` is used only for a pod not yet in the index).
    pub async fn save_pod(
        self: &Arc<Self>,
        rec: crate::state::PodRecord,
    ) -> Result<(), LifecycleError> {
        let id = rec.id.clone();
        let pod = match self.state.pod(&id) {
            Lookup::Found(p) if p.id == id => Some(p),
            _ => None,
        };
        let _guard = match &pod {
            Some(p) => Some(p.save.lock().await),
            None => None,
        };
        let rec = pod.as_ref().map(|p| p.record()).unwrap_or(rec);
        let me = Arc::clone(self);
        crate::blocking::run("save pod", move || me.state.save_pod(&rec))
            .await?
            .map_err(|source| LifecycleError::Persist { id, source })
    }

    /// Persist a container record; serialised per container like [`Manager::save_pod`].
    pub async fn save_container(
        self: &Arc<Self>,
        rec: crate::state::ContainerRecord,
    ) -> Result<(), LifecycleError> {
        let id = rec.id.clone();
        let ctr = match self.state.container(&id) {
            Lookup::Found(c) if c.id == id => Some(c),
            _ => None,
        };
        let _guard = match &ctr {
            Some(c) => Some(c.save.lock().await),
            None => None,
        };
        // Container records need to survive a daemon crash, not a power loss: after a
        // reboot the runtime's containers are gone (CRI-O wipes them, the kubelet
        // recreates pods), so an fsync here would only slow CreateContainer down.
        let durable = false;
        let rec = ctr.as_ref().map(|c| c.record()).unwrap_or(rec);
        let me = Arc::clone(self);
        crate::blocking::run("save container", move || {
            me.state.save_container(&rec, durable)
        })
        .await?
        .map_err(|source| LifecycleError::Persist { id, source })
    }

    /// Subscribe to container events (GetContainerEvents).
    pub fn subscribe(&self) -> broadcast::Receiver<cri::ContainerEventResponse> {
        self.events.subscribe()
    }

    /// Publish a container event; the status snapshots are built by the caller-provided
    /// closure only when someone listens.
    pub fn emit(
        &self,
        container_id: &str,
        kind: cri::ContainerEventType,
        build: impl FnOnce() -> (Option<cri::PodSandboxStatus>, Vec<cri::ContainerStatus>),
    ) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let (pod_sandbox_status, containers_statuses) = build();
        let _ = self.events.send(cri::ContainerEventResponse {
            container_id: container_id.to_string(),
            container_event_type: kind as i32,
            created_at: crate::state::now_nanos(),
            pod_sandbox_status,
            containers_statuses,
        });
    }
}

/// `res` of removing `path`, with "already gone" counted as success.
fn removed(res: std::io::Result<()>, path: &Path) -> Result<(), LifecycleError> {
    match res {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LifecycleError::Io {
            op: "remove",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Remove a directory tree, ignoring a missing one.
pub fn remove_dir_all(path: &Path) -> Result<(), LifecycleError> {
    removed(std::fs::remove_dir_all(path), path)
}

/// Remove a file, ignoring a missing one.
pub fn remove_file(path: &Path) -> Result<(), LifecycleError> {
    removed(std::fs::remove_file(path), path)
}
