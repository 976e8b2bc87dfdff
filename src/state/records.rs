//! Persistent records of pods and containers (`<root>/state/{pods,containers}/<id>.json`).
//!
//! A record holds what the daemon needs to answer every CRI status call and to find its
//! pod or container again after a restart: the CRI config the kubelet sent (stored as
//! protobuf bytes, so nothing the kubelet set is lost to a partial JSON mapping), the
//! paths crust derived from it, and the lifecycle state. Records are rewritten atomically
//! on every state change (see [`super::persist`]), so a daemon killed at any instant
//! restarts from the last state it acknowledged.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Lifecycle state of a pod sandbox (CRI `PodSandboxState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodState {
    /// Namespaces pinned, containers may be created.
    Ready,
    /// Stopped: containers stopped, namespaces released.
    NotReady,
}

/// How the pod's containers see process ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PidMode {
    /// The host's pid namespace.
    Host,
    /// A new pid namespace per container.
    Container,
    /// One pid namespace for the pod, held by a `crust-pause` process.
    Pod,
}

/// The pause process holding a pod-level pid namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRecord {
    /// Host pid.
    pub pid: i32,
    /// `/proc/<pid>/stat` start time, so a recycled pid is never mistaken for the pause.
    pub start_time: u64,
}

/// A pod sandbox as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodRecord {
    /// 64 hex characters.
    pub id: String,
    /// The `PodSandboxConfig` as protobuf bytes (base64 in the file).
    #[serde(with = "b64")]
    pub config: Vec<u8>,
    /// RuntimeClass handler the pod runs with (never empty: the default is resolved).
    pub runtime_handler: String,
    /// Lifecycle state.
    pub state: PodState,
    /// Creation time, nanoseconds since the epoch.
    pub created_at: i64,
    /// `<runroot>/pods/<id>`: pinned namespaces, hostname/hosts/resolv.conf, shm.
    pub dir: PathBuf,
    /// Pinned network namespace (`None` for host network).
    pub net_ns: Option<PathBuf>,
    /// Pinned IPC namespace (`None` for host IPC).
    pub ipc_ns: Option<PathBuf>,
    /// Pinned UTS namespace (`None` for host network).
    pub uts_ns: Option<PathBuf>,
    /// Pid namespace mode.
    pub pid_mode: PidMode,
    /// The pause process of a pod-level pid namespace.
    pub pause: Option<PauseRecord>,
    /// Pod-shared `/dev/shm` (`None` for host IPC).
    pub shm: Option<PathBuf>,
    /// The hostname containers get.
    pub hostname: String,
    /// The pod's CNI attachment (`None`: host network, or no CNI config installed).
    #[serde(default)]
    pub network: Option<PodNetworkRecord>,
}

/// What CNI gave a pod (the attachment's full inputs and result live in the network
/// cache, `crate::network::cache`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNetworkRecord {
    /// Network name.
    pub network: String,
    /// Interface in the pod (`eth0`).
    pub interface: String,
    /// Addresses, IPv4 first (`PodSandboxStatus.network.ip`, then `additional_ips`).
    pub ips: Vec<String>,
}

/// Lifecycle state of a container (CRI `ContainerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Created by the runtime, not started.
    Created,
    /// Started.
    Running,
    /// Its init process exited.
    Exited,
    /// State could not be determined.
    Unknown,
}

/// A container as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex characters.
    pub id: String,
    /// The pod it belongs to.
    pub pod_id: String,
    /// The `ContainerConfig` as protobuf bytes (base64 in the file).
    #[serde(with = "b64")]
    pub config: Vec<u8>,
    /// Image as the kubelet named it.
    pub image_name: String,
    /// The image id (`sha256:...`), CRI `image_ref`.
    pub image_id: String,
    /// A repo digest of the image, when it has one.
    pub image_digest_ref: String,
    /// Runtime handler (copied from the pod).
    pub runtime_handler: String,
    /// Lifecycle state.
    pub state: ContainerState,
    /// Nanoseconds since the epoch; 0 when not reached.
    pub created_at: i64,
    /// Start time.
    pub started_at: i64,
    /// Finish time.
    pub finished_at: i64,
    /// Exit code once exited.
    pub exit_code: i32,
    /// CRI reason (`Completed`, `Error`, `OOMKilled`).
    pub reason: String,
    /// Human-readable message for the reason.
    pub message: String,
    /// Container init pid (host).
    pub pid: i32,
    /// Its monitor's pid.
    pub monitor_pid: i32,
    /// `<runroot>/containers/<id>`.
    pub bundle: PathBuf,
    /// The container's root filesystem (overlay mount).
    pub rootfs: PathBuf,
    /// CRI log file.
    pub log_path: PathBuf,
    /// Signal sent first by StopContainer (the image's StopSignal, else SIGTERM).
    pub stop_signal: i32,
    /// `linux.cgroupsPath` given to the runtime.
    pub cgroups_path: String,
    /// The last `UpdateContainerResources` as protobuf `LinuxContainerResources` bytes
    /// (empty: the config's resources still apply).
    #[serde(with = "b64", default)]
    pub updated_resources: Vec<u8>,
}

impl ContainerRecord {
    /// Monitor control socket.
    pub fn socket(&self) -> PathBuf {
        self.bundle.join("ctl.sock")
    }
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}
