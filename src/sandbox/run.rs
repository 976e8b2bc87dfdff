//! `RunPodSandbox`: pin the pod's namespaces and write the files its containers share.
//!
//! No infra container: network, IPC and UTS namespaces are created on a short-lived thread
//! and kept alive by bind mounts under `<runroot>/pods/<id>/ns` (what CRI-O's `pinns`
//! does), so a pod costs no process and starts in a few milliseconds. Only a pod-level
//! pid namespace (`NamespaceMode::POD`) needs a process to exist: `crust-pause` holds it.
//!
//! Networking: a pod with its own network namespace is attached to the default CNI
//! network (`crate::network`) once the namespace is pinned and before `RunPodSandbox`
//! returns, as CRI-O does; its addresses go into the pod record and `/etc/hosts`. A
//! failing ADD is DELeted by the network manager and the sandbox is torn down, so nothing
//! is left. Host-network pods never involve CNI.

use std::path::PathBuf;
use std::sync::Arc;

use crust_proto::cri;
use prost::Message as _;

use super::files::{self, DnsSettings};
use super::ns::{self, NsKind};
use super::pause;
use crate::lifecycle::{LifecycleError, Manager};
use crate::network::{self, AttachRequest, Capabilities, NetworkError};
use crate::state::records::PodNetworkRecord;
use crate::state::{PauseRecord, PidMode, Pod, PodRecord, PodState, new_id, now_nanos};

/// Size of the pod's `/dev/shm` (Docker's and the kubelet's default).
pub const SHM_SIZE: u64 = 64 * 1024 * 1024;

/// Namespace choices read from the pod's security context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceChoice {
    /// Host network (also host UTS, as in Kubernetes).
    pub host_network: bool,
    /// Host IPC.
    pub host_ipc: bool,
    /// Pid namespace mode.
    pub pid: PidMode,
}

/// Read `linux.security_context.namespace_options` (absent means all POD, the CRI default).
pub fn namespace_choice(config: &cri::PodSandboxConfig) -> NamespaceChoice {
    let opts = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref());
    let mode = |m: i32| cri::NamespaceMode::try_from(m).unwrap_or(cri::NamespaceMode::Pod);
    match opts {
        None => NamespaceChoice {
            host_network: false,
            host_ipc: false,
            pid: PidMode::Pod,
        },
        Some(o) => NamespaceChoice {
            host_network: mode(o.network) == cri::NamespaceMode::Node,
            host_ipc: mode(o.ipc) == cri::NamespaceMode::Node,
            pid: match mode(o.pid) {
                cri::NamespaceMode::Node => PidMode::Host,
                cri::NamespaceMode::Container | cri::NamespaceMode::Target => PidMode::Container,
                cri::NamespaceMode::Pod => PidMode::Pod,
            },
        },
    }
}

fn validate(config: &cri::PodSandboxConfig) -> Result<&cri::PodSandboxMetadata, LifecycleError> {
    let meta = config
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
    if meta.name.contains('/') || meta.namespace.contains('/') {
        return Err(LifecycleError::invalid(
            "config.metadata",
            format!("{}/{}", meta.namespace, meta.name),
            "name and namespace must not contain '/'",
        ));
    }
    Ok(meta)
}

fn dns_settings(config: &cri::PodSandboxConfig) -> Option<DnsSettings> {
    config.dns_config.as_ref().map(|d| DnsSettings {
        servers: d.servers.clone(),
        searches: d.searches.clone(),
        options: d.options.clone(),
    })
}

fn sandbox_err<'a>(
    op: &'static str,
    id: &'a str,
    invalid: bool,
) -> impl FnOnce(String) -> LifecycleError + 'a {
    move |message| LifecycleError::Sandbox {
        op,
        id: id.to_string(),
        message,
        invalid,
    }
}

/// CNI runtime capabilities from the pod config: host port mappings (CRI `PortMapping`
/// with a host port; ports without one are informational in Kubernetes), bandwidth from
/// the `kubernetes.io/*-bandwidth` annotations and the pod's DNS settings.
pub fn capabilities(config: &cri::PodSandboxConfig) -> Result<Capabilities, LifecycleError> {
    let mut caps = Capabilities::default();
    for (i, p) in config.port_mappings.iter().enumerate() {
        if p.host_port <= 0 {
            continue;
        }
        let field = |f: &str| format!("config.port_mappings[{i}].{f}");
        if p.host_port > 65535 {
            return Err(LifecycleError::invalid(
                field("host_port"),
                p.host_port.to_string(),
                "must be 1-65535",
            ));
        }
        if !(1..=65535).contains(&p.container_port) {
            return Err(LifecycleError::invalid(
                field("container_port"),
                p.container_port.to_string(),
                "must be 1-65535",
            ));
        }
        if !p.host_ip.is_empty() && p.host_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(LifecycleError::invalid(
                field("host_ip"),
                p.host_ip.clone(),
                "not an IP address",
            ));
        }
        let protocol = match cri::Protocol::try_from(p.protocol) {
            Ok(cri::Protocol::Tcp) => "tcp",
            Ok(cri::Protocol::Udp) => "udp",
            Ok(cri::Protocol::Sctp) => "sctp",
            Err(_) => {
                return Err(LifecycleError::invalid(
                    field("protocol"),
                    p.protocol.to_string(),
                    "unknown protocol",
                ));
            }
        };
        caps.port_mappings.push(network::PortMapping {
            protocol,
            container_port: p.container_port,
            host_port: p.host_port,
            host_ip: p.host_ip.clone(),
        });
    }
    caps.bandwidth = network::caps::bandwidth(&config.annotations).map_err(network_err_for(""))?;
    caps.dns = config.dns_config.as_ref().map(|d| network::DnsCapability {
        servers: d.servers.clone(),
        searches: d.searches.clone(),
        options: d.options.clone(),
    });
    Ok(caps)
}

/// Network errors as lifecycle errors: bad input stays InvalidArgument, a missing or
/// unusable config is FailedPrecondition, plugin failures name the network and plugin.
fn network_err_for(id: &str) -> impl FnOnce(NetworkError) -> LifecycleError + '_ {
    move |e| match e {
        NetworkError::InvalidArgument {
            field,
            value,
            reason,
        } => LifecycleError::invalid(field, value, reason),
        NetworkError::NotReady { .. } => {
            LifecycleError::precondition(format!("pod sandbox {id}"), e.full_message())
        }
        other => LifecycleError::Sandbox {
            op: "set up the pod network",
            id: id.to_string(),
            message: other.full_message(),
            invalid: false,
        },
    }
}

/// `/etc/hosts` of a pod with addresses: the kubelet's managed layout, the pod's IPs
/// mapped to its hostname instead of the loopback alias.
fn hosts_with_ips(hostname: &str, ips: &[String]) -> String {
    let mut s: String = files::hosts_content(hostname)
        .lines()
        .filter(|l| !l.starts_with("127.0.1.1\t"))
        .map(|l| format!("{l}\n"))
        .collect();
    for ip in ips {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

/// What the blocking setup produced.
struct Setup {
    pinned: ns::PinnedNs,
    shm: Option<PathBuf>,
    pause: Option<PauseRecord>,
}

/// Undo a partial setup (best effort, each step idempotent).
fn teardown(dir: &std::path::Path, shm: Option<&std::path::Path>, pause: Option<PauseRecord>) {
    if let Some(p) = pause {
        let _ = pause::kill_pause(&pause::PauseProcess {
            pid: p.pid,
            start_time: p.start_time,
        });
    }
    if let Some(s) = shm {
        let _ = files::unmount_shm(s);
    }
    let _ = ns::unpin(&dir.join("ns"));
    let _ = std::fs::remove_dir_all(dir);
}

fn setup(
    id: &str,
    dir: &std::path::Path,
    config: &cri::PodSandboxConfig,
    choice: NamespaceChoice,
    hostname: &str,
    pause_path: &std::path::Path,
) -> Result<Setup, LifecycleError> {
    let io =
        |op: &'static str, path: PathBuf| move |source| LifecycleError::Io { op, path, source };
    std::fs::create_dir_all(dir).map_err(io("create directory", dir.to_path_buf()))?;
    if !config.log_directory.is_empty() {
        let logs = PathBuf::from(&config.log_directory);
        std::fs::create_dir_all(&logs).map_err(io("create log directory", logs.clone()))?;
    }
    // Files first: they validate DNS input before anything needs undoing.
    let dns = dns_settings(config);
    files::write_resolv(&dir.join("resolv.conf"), dns.as_ref()).map_err(|e| {
        sandbox_err("write resolv.conf", id, e.is_invalid_argument())(e.to_string())
    })?;
    files::write_hostname(&dir.join("hostname"), hostname)
        .map_err(|e| sandbox_err("write hostname", id, e.is_invalid_argument())(e.to_string()))?;
    files::write_hosts(&dir.join("hosts"), hostname, choice.host_network)
        .map_err(|e| sandbox_err("write hosts", id, e.is_invalid_argument())(e.to_string()))?;
    let mut kinds = Vec::new();
    if !choice.host_network {
        kinds.push(NsKind::Net);
        kinds.push(NsKind::Uts);
    }
    if !choice.host_ipc {
        kinds.push(NsKind::Ipc);
    }
    let uts_name = (!choice.host_network).then_some(hostname);
    let pinned = ns::pin(&dir.join("ns"), &kinds, uts_name)
        .map_err(|e| sandbox_err("pin namespaces", id, false)(e.to_string()))?;
    let shm = if choice.host_ipc {
        None
    } else {
        let p = dir.join("shm");
        if let Err(e) = files::mount_shm(&p, SHM_SIZE) {
            teardown(dir, None, None);
            return Err(sandbox_err("mount /dev/shm", id, false)(e.to_string()));
        }
        Some(p)
    };
    let pause = if choice.pid == PidMode::Pod {
        match pause::spawn_pause(pause_path) {
            Ok(p) => Some(PauseRecord {
                pid: p.pid,
                start_time: p.start_time,
            }),
            Err(e) => {
                teardown(dir, shm.as_deref(), None);
                return Err(sandbox_err("start the pause process", id, false)(
                    e.to_string(),
                ));
            }
        }
    } else {
        None
    };
    Ok(Setup { pinned, shm, pause })
}

impl Manager {
    /// `RunPodSandbox`: returns the new pod id.
    pub async fn run_pod(
        self: &Arc<Self>,
        config: cri::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, LifecycleError> {
        let meta = validate(&config)?;
        let handler = self.handler(runtime_handler)?;
        let handler_name = handler.name.clone();
        if let Some(reason) = &handler.unavailable {
            return Err(LifecycleError::precondition(
                format!("runtime handler {handler_name}"),
                reason.clone(),
            ));
        }
        let id = new_id();
        tracing::Span::current().record("pod", id.as_str());
        let key = Pod::name_key(meta);
        self.state
            .reserve_name(&key, &id)
            .map_err(|t| LifecycleError::NameInUse {
                kind: "pod sandbox",
                name: key.clone(),
                holder: t.holder,
            })?;
        let res = self.run_pod_reserved(&id, config, handler_name).await;
        if res.is_err() {
            self.state.release_name(&key, &id);
        }
        res.map(|()| id)
    }

    async fn run_pod_reserved(
        self: &Arc<Self>,
        id: &str,
        config: cri::PodSandboxConfig,
        handler: String,
    ) -> Result<(), LifecycleError> {
        let choice = namespace_choice(&config);
        let caps = if choice.host_network {
            None
        } else {
            let mut caps = capabilities(&config)?;
            caps.ip_ranges = self
                .network
                .pod_cidrs()
                .into_iter()
                .map(|c| vec![c])
                .collect();
            Some(caps)
        };
        let hostname = if choice.host_network {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        } else if config.hostname.is_empty() {
            config
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default()
        } else {
            config.hostname.clone()
        };
        let dir = self.pod_dir(id);
        let pause_path = self.opts.pause_path.clone();
        let s = {
            let (id, dir, config, hostname) = (
                id.to_string(),
                dir.clone(),
                config.clone(),
                hostname.clone(),
            );
            crate::blocking::run("run pod sandbox", move || {
                setup(&id, &dir, &config, choice, &hostname, &pause_path)
            })
            .await??
        };
        let undo = |with_network: bool| {
            let me = Arc::clone(self);
            let (id, dir, shm, pause) = (id.to_string(), dir.clone(), s.shm.clone(), s.pause);
            async move {
                if with_network && let Err(e) = me.network.detach(&id).await {
                    tracing::error!(pod = %id, error = %e.full_message(), "DEL while undoing a pod sandbox failed");
                }
                let _ = crate::blocking::run("undo pod sandbox", move || {
                    teardown(&dir, shm.as_deref(), pause)
                })
                .await;
            }
        };
        let mut network = None;
        if let (Some(caps), Some(netns)) = (caps, s.pinned.net.clone()) {
            let meta = config.metadata.clone().unwrap_or_default();
            let req = AttachRequest {
                pod_id: id.to_string(),
                name: meta.name,
                namespace: meta.namespace,
                uid: meta.uid,
                netns,
                capabilities: caps,
            };
            match self.network.attach(req).await {
                Ok(net) => {
                    network = net.map(|n| PodNetworkRecord {
                        network: n.network,
                        interface: n.interface,
                        ips: n.ips.iter().map(ToString::to_string).collect(),
                    });
                }
                Err(e) => {
                    undo(false).await;
                    return Err(network_err_for(id)(e));
                }
            }
        }
        if let Some(n) = network.as_ref().filter(|n| !n.ips.is_empty()) {
            let (path, text) = (dir.join("hosts"), hosts_with_ips(&hostname, &n.ips));
            let written = crate::blocking::run("write hosts", move || {
                files::write_atomic(&path, text.as_bytes())
            })
            .await;
            let failed = match written {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = failed {
                undo(true).await;
                return Err(sandbox_err("write hosts", id, false)(e));
            }
        }
        let rec = PodRecord {
            id: id.to_string(),
            config: config.encode_to_vec(),
            runtime_handler: handler,
            state: PodState::Ready,
            created_at: now_nanos(),
            dir: dir.clone(),
            net_ns: s.pinned.net.clone(),
            ipc_ns: s.pinned.ipc.clone(),
            uts_ns: s.pinned.uts.clone(),
            pid_mode: choice.pid,
            pause: s.pause,
            shm: s.shm.clone(),
            hostname,
            network,
        };
        let pod = match Pod::new(rec.clone()) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                undo(true).await;
                return Err(LifecycleError::invalid("config", "", e.to_string()));
            }
        };
        if let Err(e) = self.save_pod(rec).await {
            undo(true).await;
            return Err(e);
        }
        self.state.insert_pod(pod);
        tracing::info!(pod = id, "pod sandbox ready");
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn namespace_defaults_and_modes() {
        let mut c = cri::PodSandboxConfig::default();
        let d = namespace_choice(&c);
        assert_eq!(d.pid, PidMode::Pod);
        assert!(!d.host_network && !d.host_ipc);
        c.linux = Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ipc: cri::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let d = namespace_choice(&c);
        assert!(d.host_network && d.host_ipc);
        assert_eq!(d.pid, PidMode::Container);
    }

    #[test]
    fn metadata_is_required() {
        let c = cri::PodSandboxConfig::default();
        let e = validate(&c).unwrap_err();
        assert!(e.to_string().contains("config.metadata"), "{e}");
    }
}
