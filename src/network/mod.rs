//! Pod networking through CNI plugins, driven by crust itself (CNI spec 1.0/1.1 exec
//! protocol; no libcni): configs from `[crust.network] network_dir`, plugins from
//! `plugin_dirs`, one attachment per pod to the default network on interface `eth0`.
//!
//! - [`conf`]: loading `.conf`/`.conflist`/`.json` files, choosing the default network.
//! - [`exec`]: running one plugin; [`chain`]: ADD/DEL/CHECK/STATUS/GC over a list.
//! - [`result`]: results of any version; [`caps`]: runtime capabilities
//!   (`portMappings`, `bandwidth`, `dns`, `ipRanges`); [`quantity`]: bandwidth values.
//! - [`cache`]: per-pod attachment records so DEL repeats ADD's exact inputs, also after
//!   a daemon restart or a reboot.
//!
//! [`NetworkManager`] is what the lifecycle calls: [`NetworkManager::attach`] in
//! `RunPodSandbox`, [`NetworkManager::detach`] in `StopPodSandbox`,
//! [`NetworkManager::status`] for the `NetworkReady` condition, [`NetworkManager::gc`]
//! at start-up and [`NetworkManager::watch`] to follow config changes. The config
//! directory is re-scanned whenever its signature (names, sizes, mtimes) changes, checked
//! on every use and once a second, so a CNI DaemonSet dropping its config in makes the
//! node ready without a restart.

pub mod cache;
pub mod caps;
pub mod chain;
pub mod conf;
pub mod error;
pub mod exec;
pub mod quantity;
pub mod result;
pub mod version;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use caps::{Bandwidth, Capabilities, DnsCapability, PortMapping};
pub use error::NetworkError;

use cache::{AttachState, Attachment, Cache};
use conf::{Loaded, NetworkList, NotReady};
use exec::{Exec, Target};

use crate::config::network::NetworkConfig;

/// The interface name pods get (`CNI_IFNAME`), as in CRI-O and containerd.
pub const IFNAME: &str = "eth0";
/// How often [`NetworkManager::watch`] looks at the config directory.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What a pod needs attached.
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    /// Pod id (`CNI_CONTAINERID`, `K8S_POD_INFRA_CONTAINER_ID`).
    pub pod_id: String,
    /// Pod name (`K8S_POD_NAME`).
    pub name: String,
    /// Pod namespace (`K8S_POD_NAMESPACE`).
    pub namespace: String,
    /// Pod UID (`K8S_POD_UID`).
    pub uid: String,
    /// The pinned network namespace.
    pub netns: PathBuf,
    /// Runtime capability values.
    pub capabilities: Capabilities,
}

/// A pod's network as status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// Network name.
    pub network: String,
    /// Interface in the pod.
    pub interface: String,
    /// Addresses, IPv4 first.
    pub ips: Vec<IpAddr>,
}

/// The `NetworkReady` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Pods can be attached to `network`.
    Ready {
        /// The default network.
        network: String,
    },
    /// Not ready, with the reason.
    NotReady {
        /// Human-readable message.
        message: String,
    },
}

/// `CNI_ARGS` as CRI-O's ocicni builds them.
pub fn cni_args(r: &AttachRequest) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
        r.namespace, r.name, r.pod_id, r.uid
    )
}

type Signature = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The CNI driver of the daemon.
pub struct NetworkManager {
    config: NetworkConfig,
    exec: Exec,
    cache: Cache,
    loaded: Mutex<(Signature, Arc<Loaded>)>,
    /// Pod CIDRs from `UpdateRuntimeConfig`, passed to plugins as `ipRanges`.
    pod_cidrs: std::sync::RwLock<Vec<String>>,
}

impl std::fmt::Debug for NetworkManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NetworkManager {
    /// A manager for `config`; the cache lives in `config.cache_dir` or `<root>/cni`.
    pub fn new(config: &NetworkConfig, root: &Path) -> Result<Self, NetworkError> {
        let cache = Cache::open(&config.cache_dir_for(root))?;
        let sig = conf::signature(&config.network_dir, &config.plugin_dirs);
        let loaded = conf::load_dir(&config.network_dir, &config.plugin_dirs);
        for (p, reason) in &loaded.skipped {
            tracing::warn!(file = %p.display(), reason, "skipping CNI config");
        }
        Ok(Self {
            config: config.clone(),
            exec: Exec {
                plugin_dirs: config.plugin_dirs.clone(),
                timeout: config.plugin_timeout,
            },
            cache,
            loaded: Mutex::new((sig, Arc::new(loaded))),
            pod_cidrs: std::sync::RwLock::new(Vec::new()),
        })
    }

    /// Remember the node's pod CIDRs (CRI `UpdateRuntimeConfig`; the kubelet sends them
    /// again after a daemon restart, so they are not persisted, as in CRI-O). New pods get
    /// them as the `ipRanges` capability: one range set per CIDR, i.e. per address family.
    pub fn set_pod_cidrs(&self, cidrs: Vec<String>) {
        match self.pod_cidrs.write() {
            Ok(mut g) => *g = cidrs,
            Err(poisoned) => *poisoned.into_inner() = cidrs,
        }
    }

    /// The pod CIDRs last set by [`Self::set_pod_cidrs`].
    pub fn pod_cidrs(&self) -> Vec<String> {
        match self.pod_cidrs.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The network config in use.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The current config set, re-scanned if the directory changed. Returns whether it
    /// changed. Blocking (a directory scan); cheap when nothing changed.
    pub fn networks(&self) -> (Arc<Loaded>, bool) {
        let sig = conf::signature(&self.config.network_dir, &self.config.plugin_dirs);
        {
            let g = match self.loaded.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if g.0 == sig {
                return (Arc::clone(&g.1), false);
            }
        }
        let loaded = Arc::new(conf::load_dir(
            &self.config.network_dir,
            &self.config.plugin_dirs,
        ));
        for (p, reason) in &loaded.skipped {
            tracing::warn!(file = %p.display(), reason, "skipping CNI config");
        }
        let mut g = match self.loaded.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = (sig, Arc::clone(&loaded));
        (loaded, true)
    }

    fn readiness_of(&self, loaded: &Loaded) -> Result<NetworkList, NotReady> {
        loaded
            .default_network(&self.config.default_network)
            .cloned()
    }

    /// `NetworkReady`: a default network exists and (CNI 1.1) its plugins answer STATUS.
    pub async fn status(self: &Arc<Self>) -> Readiness {
        let me = Arc::clone(self);
        let loaded = match crate::blocking::run("scan cni configs", move || me.networks().0).await {
            Ok(l) => l,
            Err(e) => {
                return Readiness::NotReady {
                    message: e.to_string(),
                };
            }
        };
        match self.readiness_of(&loaded) {
            Err(e) => Readiness::NotReady {
                message: e.message().to_owned(),
            },
            Ok(list) => match chain::status(&self.exec, &list).await {
                Ok(()) => Readiness::Ready { network: list.name },
                Err(e) => Readiness::NotReady {
                    message: e.full_message(),
                },
            },
        }
    }

    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        task: &'static str,
        f: impl FnOnce(&Self) -> Result<T, NetworkError> + Send + 'static,
    ) -> Result<T, NetworkError> {
        let me = Arc::clone(self);
        crate::blocking::run(task, move || f(&me)).await?
    }

    /// ADD the pod to the default network. `Ok(None)`: no CNI config is installed at all,
    /// the pod keeps a loopback-only namespace (see README "Networking"). On failure the
    /// chain is DELeted and no cache record is left (unless that DEL fails too: then the
    /// record stays for the start-up GC to retry).
    pub async fn attach(
        self: &Arc<Self>,
        req: AttachRequest,
    ) -> Result<Option<PodNetwork>, NetworkError> {
        let loaded = self
            .blocking("scan cni configs", |me| Ok(me.networks().0))
            .await?;
        let list = match self.readiness_of(&loaded) {
            Ok(l) => l,
            Err(NotReady::NoConfig(m)) => {
                tracing::warn!(pod = %req.pod_id, reason = %m, "no CNI network configured; the pod gets loopback only");
                return Ok(None);
            }
            Err(NotReady::Unusable(m)) => return Err(NetworkError::NotReady { reason: m }),
        };
        let runtime_config = req.capabilities.runtime_config();
        let mut att = Attachment {
            pod_id: req.pod_id.clone(),
            network: list.name.clone(),
            config_file: list.source.clone(),
            config: list.bytes.clone(),
            is_list: list.is_list,
            ifname: IFNAME.to_owned(),
            netns: req.netns.clone(),
            cni_args: cni_args(&req),
            runtime_config,
            state: AttachState::Adding,
            result: None,
        };
        let a = att.clone();
        self.blocking("save network attachment", move |me| me.cache.save(&a))
            .await?;
        let target = target_of(&att, att.netns.display().to_string());
        let added = chain::add(&self.exec, &list, &target, &att.runtime_config).await;
        let res = match added {
            Ok(v) => v,
            Err(e) => {
                self.undo(&list, &target, &att).await;
                return Err(e);
            }
        };
        let ips = result::parse(&res)
            .map(|r| r.pod_ips(IFNAME))
            .unwrap_or_default();
        att.state = AttachState::Added;
        att.result = Some(res);
        let a = att.clone();
        if let Err(e) = self
            .blocking("save network attachment", move |me| me.cache.save(&a))
            .await
        {
            self.undo(&list, &target, &att).await;
            return Err(e);
        }
        tracing::info!(pod = %req.pod_id, network = %list.name, ips = ?ips, "pod network attached");
        Ok(Some(PodNetwork {
            network: list.name,
            interface: IFNAME.to_owned(),
            ips,
        }))
    }

    /// DEL after a failed ADD; drop the cache record once DEL succeeded.
    async fn undo(self: &Arc<Self>, list: &NetworkList, target: &Target, att: &Attachment) {
        match chain::del(&self.exec, list, target, &att.runtime_config, None).await {
            Ok(()) => {
                let id = att.pod_id.clone();
                if let Err(e) = self
                    .blocking("remove network attachment", move |me| me.cache.remove(&id))
                    .await
                {
                    tracing::warn!(pod = %att.pod_id, error = %e.full_message(), "cannot remove network attachment record");
                }
            }
            Err(e) => {
                tracing::error!(pod = %att.pod_id, error = %e.full_message(), "DEL after a failed ADD failed; start-up GC retries it");
            }
        }
    }

    /// DEL the pod's attachment with its cached config and result. Idempotent: a pod
    /// without a record (never attached, host network, already detached) is a no-op.
    /// Returns whether a DEL ran.
    pub async fn detach(self: &Arc<Self>, pod_id: &str) -> Result<bool, NetworkError> {
        let id = pod_id.to_owned();
        let att = self
            .blocking("load network attachment", move |me| me.cache.load(&id))
            .await?;
        let Some(att) = att else {
            return Ok(false);
        };
        self.detach_attachment(&att).await?;
        Ok(true)
    }

    async fn detach_attachment(self: &Arc<Self>, att: &Attachment) -> Result<(), NetworkError> {
        let list = conf::parse(&att.config_file, &att.config, att.is_list).map_err(|reason| {
            NetworkError::CachedConfig {
                network: att.network.clone(),
                reason,
            }
        })?;
        // A namespace that is gone (reboot, pin removed) is passed as "": plugins then
        // release what they hold outside it (IPAM leases, host rules), as the spec allows.
        let netns = if crate::sandbox::ns::is_pinned(&att.netns) {
            att.netns.display().to_string()
        } else {
            String::new()
        };
        let target = target_of(att, netns);
        chain::del(
            &self.exec,
            &list,
            &target,
            &att.runtime_config,
            att.result.as_ref(),
        )
        .await?;
        let id = att.pod_id.clone();
        self.blocking("remove network attachment", move |me| me.cache.remove(&id))
            .await?;
        tracing::info!(pod = %att.pod_id, network = %att.network, "pod network detached");
        Ok(())
    }

    /// CHECK the pod's attachment (CNI 0.4.0+; a no-op otherwise or without a record).
    pub async fn check(self: &Arc<Self>, pod_id: &str) -> Result<(), NetworkError> {
        let id = pod_id.to_owned();
        let att = self
            .blocking("load network attachment", move |me| me.cache.load(&id))
            .await?;
        let Some(att) = att else {
            return Ok(());
        };
        let (AttachState::Added, Some(res)) = (att.state, att.result.as_ref()) else {
            return Ok(());
        };
        let list = conf::parse(&att.config_file, &att.config, att.is_list).map_err(|reason| {
            NetworkError::CachedConfig {
                network: att.network.clone(),
                reason,
            }
        })?;
        let target = target_of(&att, att.netns.display().to_string());
        chain::check(&self.exec, &list, &target, &att.runtime_config, res).await
    }

    /// The network of a pod from its cache record (for pods attached before a restart).
    pub async fn pod_network(self: &Arc<Self>, pod_id: &str) -> Option<PodNetwork> {
        let id = pod_id.to_owned();
        let att = self
            .blocking("load network attachment", move |me| me.cache.load(&id))
            .await
            .ok()??;
        let r = result::parse(att.result.as_ref()?).ok()?;
        Some(PodNetwork {
            network: att.network,
            interface: att.ifname.clone(),
            ips: r.pod_ips(&att.ifname),
        })
    }

    /// Start-up garbage collection: DEL every cached attachment of a pod not in `known`
    /// (a crash mid-RunPodSandbox, a pod removed while its DEL failed), then, for a
    /// CNI 1.1 default network, run the GC verb with the attachments still valid.
    /// Returns the ids of the pods whose attachments were released.
    pub async fn gc(self: &Arc<Self>, known: &HashSet<String>) -> Vec<String> {
        let listed = self
            .blocking("list network attachments", |me| Ok(me.cache.list()))
            .await;
        let Ok((atts, errs)) = listed else {
            return Vec::new();
        };
        for e in errs {
            tracing::warn!(error = %e.full_message(), "unreadable network attachment record");
        }
        let mut released = Vec::new();
        let mut valid = Vec::new();
        for att in atts {
            if known.contains(&att.pod_id) {
                valid.push(att);
                continue;
            }
            tracing::warn!(pod = %att.pod_id, network = %att.network, "releasing the network attachment of an unknown pod");
            match self.detach_attachment(&att).await {
                Ok(()) => released.push(att.pod_id),
                Err(e) => {
                    tracing::error!(pod = %att.pod_id, error = %e.full_message(), "network GC: DEL failed; retried at the next start");
                }
            }
        }
        let (loaded, _) = match self
            .blocking("scan cni configs", |me| Ok(me.networks()))
            .await
        {
            Ok(l) => l,
            Err(_) => return released,
        };
        if let Ok(list) = self.readiness_of(&loaded) {
            let ids: Vec<(String, String)> = valid
                .iter()
                .filter(|a| a.network == list.name)
                .map(|a| (a.pod_id.clone(), a.ifname.clone()))
                .collect();
            match chain::gc(&self.exec, &list, &ids).await {
                Ok(true) => tracing::info!(network = %list.name, valid = ids.len(), "cni GC done"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e.full_message(), "cni GC failed"),
            }
        }
        released
    }

    /// Follow the config directory until the daemon stops, logging readiness changes.
    pub async fn watch(self: Arc<Self>) {
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            let me = Arc::clone(&self);
            let Ok((loaded, changed)) =
                crate::blocking::run("scan cni configs", move || me.networks()).await
            else {
                continue;
            };
            if !changed {
                continue;
            }
            match self.readiness_of(&loaded) {
                Ok(list) => tracing::info!(
                    network = %list.name,
                    file = %list.source.display(),
                    plugins = ?list.plugin_types(),
                    "CNI configuration changed: pod network ready"
                ),
                Err(e) => tracing::warn!(
                    reason = e.message(),
                    "CNI configuration changed: pod network not ready"
                ),
            }
        }
    }
}

fn target_of(att: &Attachment, netns: String) -> Target {
    Target {
        container_id: att.pod_id.clone(),
        netns,
        ifname: att.ifname.clone(),
        args: att.cni_args.clone(),
    }
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
