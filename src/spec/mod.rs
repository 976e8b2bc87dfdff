//! CRI container config + image config -> OCI runtime spec (`config.json`).
//!
//! [`container_spec`] is the whole of `CreateContainer`'s spec generation: it takes the CRI
//! [`cri::ContainerConfig`], what the image config says ([`ImageSpecInfo`]), what the pod
//! provides ([`SandboxSpecInfo`]) and the daemon's options ([`SpecOptions`]) and builds an
//! [`oci_spec::runtime::Spec`] for any runc-compatible runtime. It follows containerd's CRI
//! plugin (and the CRI api.proto comments) field by field; each submodule says which rules
//! it implements:
//! - [`process`]: argv merge, env, working dir, stop signals;
//! - [`user`]: uid/gid/groups through the image's passwd/group files, confined to the rootfs;
//! - [`caps`]: default capabilities, add/drop, ALL;
//! - [`mounts`]: default mounts, pod files, CRI mounts, default masked/read-only paths;
//! - [`security`]: devices, device cgroup, masked/read-only paths, AppArmor;
//! - [`seccomp`]: profile selection and the built-in default profile;
//! - [`resources`]: cgroup resources and the clamped `oom_score_adj`;
//! - [`namespaces`]: the pod's namespaces;
//! - [`hooks`]: OCI hooks from the `hooks.d` directories (applied by `CreateContainer`);
//! - [`host`]: the host facts (devices, capability bounding set, swap) behind a seam.
//!
//! Everything wrong in a request is [`SpecError::InvalidArgument`] naming the field.

pub mod caps;
mod error;
pub mod hooks;
pub mod host;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod resources;
pub mod seccomp;
pub mod security;
pub mod user;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crust_proto::cri;
use oci_spec::runtime::{Linux, LinuxResources, Process, Root, Spec, User};

pub use error::SpecError;
pub use host::{Host, RealHost};
pub use process::{ImageSpecInfo, parse_signal};
pub use resources::linux_resources;

/// OCI runtime spec version written to `config.json` (runc 1.1 speaks 1.0.2).
pub const OCI_VERSION: &str = "1.0.2-dev";

/// containerd-compatible annotation keys (io.kubernetes.cri.*), read by tools and runtimes
/// such as gVisor to tell sandbox and container apart.
pub mod annotations {
    /// "container" for a CRI container (a sandbox would be "sandbox").
    pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
    /// The pod sandbox id.
    pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
    /// The container name from the CRI metadata.
    pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
    /// The image the container was created from.
    pub const IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
}

/// The PID namespace of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PidNs {
    /// The host's (`NamespaceMode NODE`).
    Host,
    /// A new one for this container (`NamespaceMode CONTAINER`).
    #[default]
    Container,
    /// The pod's, joined by path (`NamespaceMode POD`, e.g. `/proc/<pause>/ns/pid`).
    Pod(PathBuf),
}

/// What the pod sandbox provides to each of its containers.
#[derive(Debug, Clone, Default)]
pub struct SandboxSpecInfo {
    /// Pod sandbox id.
    pub pod_id: String,
    /// Pod hostname (`HOSTNAME` env; the UTS hostname when `uts_ns` is set).
    pub hostname: String,
    /// Pinned network namespace; `None` = host network.
    pub net_ns: Option<PathBuf>,
    /// Pinned IPC namespace; `None` = host IPC.
    pub ipc_ns: Option<PathBuf>,
    /// Pinned UTS namespace; `None` = host UTS (hostname not set).
    pub uts_ns: Option<PathBuf>,
    /// PID namespace mode.
    pub pid_ns: PidNs,
    /// File bind-mounted on `/etc/hostname`.
    pub hostname_file: Option<PathBuf>,
    /// File bind-mounted on `/etc/hosts`.
    pub hosts_file: Option<PathBuf>,
    /// File bind-mounted on `/etc/resolv.conf`.
    pub resolv_file: Option<PathBuf>,
    /// The pod's shm directory bound on `/dev/shm`; `None` = the host's `/dev/shm`.
    pub shm_dir: Option<PathBuf>,
    /// CRI `cgroup_parent` of the pod (informational; `SpecOptions::cgroups_path` is used).
    pub cgroup_parent: String,
    /// Pod sysctls.
    pub sysctls: HashMap<String, String>,
    /// Whether the pod allows privileged containers.
    pub privileged: bool,
    /// RuntimeClass handler of the pod.
    pub runtime_handler: String,
}

/// Daemon-side options of the conversion.
#[derive(Debug, Clone, Default)]
pub struct SpecOptions {
    /// The daemon's own `oom_score_adj`; containers never get less.
    pub oom_score_adj_min: i32,
    /// `linux.cgroupsPath` ("" = none).
    pub cgroups_path: String,
    /// Privileged containers do not get the host's devices (handler option).
    pub privileged_without_host_devices: bool,
    /// Seccomp profile used for `RuntimeDefault` (`None` = crust's built-in one).
    pub seccomp_profile: Option<PathBuf>,
    /// The host has AppArmor: apply profiles.
    pub apparmor_enabled: bool,
    /// Default capabilities (`[]` = containerd's default set).
    pub default_capabilities: Vec<String>,
}

/// Build the OCI spec of container `id` (see the module docs).
pub fn container_spec(
    id: &str,
    cfg: &cri::ContainerConfig,
    sandbox: &SandboxSpecInfo,
    image: &ImageSpecInfo,
    rootfs: &Path,
    opts: &SpecOptions,
) -> Result<Spec, SpecError> {
    container_spec_with(id, cfg, sandbox, image, rootfs, opts, &RealHost)
}

/// [`container_spec`] with the host facts given (tests use a fake [`Host`]).
pub fn container_spec_with(
    id: &str,
    cfg: &cri::ContainerConfig,
    sandbox: &SandboxSpecInfo,
    image: &ImageSpecInfo,
    rootfs: &Path,
    opts: &SpecOptions,
    host: &dyn Host,
) -> Result<Spec, SpecError> {
    let name = cfg
        .metadata
        .as_ref()
        .map(|m| m.name.as_str())
        .unwrap_or_default();
    if name.is_empty() {
        return Err(SpecError::invalid("metadata.name", "", "is required"));
    }
    if !rootfs.is_absolute() {
        return Err(SpecError::invalid(
            "rootfs",
            rootfs.display().to_string(),
            "must be an absolute path",
        ));
    }
    let linux_cfg = cfg.linux.as_ref();
    let sc = linux_cfg.and_then(|l| l.security_context.as_ref());
    let privileged = sc.is_some_and(|s| s.privileged);
    if privileged && !sandbox.privileged {
        return Err(SpecError::invalid(
            "linux.security_context.privileged",
            "true",
            "the pod sandbox is not privileged",
        ));
    }
    let readonly_rootfs = sc.is_some_and(|s| s.readonly_rootfs);

    // Process.
    let args = process::merge_args(&cfg.command, &cfg.args, image)?;
    let envs: Vec<(String, String)> = cfg
        .envs
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    let env = process::merge_env(&sandbox.hostname, &image.env, &envs, cfg.tty);
    let cwd = process::working_dir(&cfg.working_dir, &image.working_dir)?;
    let who = user::resolve_user(rootfs, sc, &image.user)?;

    let all_caps = host.bounding_capabilities();
    let cap_set = if privileged {
        all_caps
    } else {
        let c = sc.and_then(|s| s.capabilities.as_ref());
        caps::apply_add_drop(
            caps::default_set(&opts.default_capabilities)?,
            c.map(|c| c.add_capabilities.as_slice()).unwrap_or_default(),
            c.map(|c| c.drop_capabilities.as_slice())
                .unwrap_or_default(),
            &all_caps,
        )?
    };
    let ambient = caps::ambient_set(
        sc.and_then(|s| s.capabilities.as_ref())
            .map(|c| c.add_ambient_capabilities.as_slice())
            .unwrap_or_default(),
    )?;
    let cri_res = linux_cfg.and_then(|l| l.resources.as_ref());
    let oom = resources::clamp_oom_score_adj(
        cri_res.map(|r| r.oom_score_adj).unwrap_or(0),
        opts.oom_score_adj_min,
    );
    let seccomp = seccomp::seccomp(sc, privileged, opts.seccomp_profile.as_deref(), &cap_set)?;

    let mut u = User::default();
    u.set_uid(who.uid)
        .set_gid(who.gid)
        .set_additional_gids(Some(who.additional_gids.clone()));
    let mut proc_ = Process::default();
    proc_
        .set_terminal(Some(cfg.tty))
        .set_user(u)
        .set_args(Some(args))
        .set_env(Some(env))
        .set_cwd(PathBuf::from(cwd))
        .set_capabilities(Some(caps::linux_capabilities(cap_set, ambient)))
        .set_rlimits(None)
        .set_no_new_privileges(Some(sc.is_some_and(|s| s.no_new_privs)))
        .set_apparmor_profile(security::apparmor_profile(
            sc,
            privileged,
            opts.apparmor_enabled,
        )?)
        .set_oom_score_adj(Some(oom));

    // Mounts.
    let cri_mounts = mounts::cri_mounts(&cfg.mounts)?;
    let all_mounts = mounts::merge(
        mounts::default_mounts(privileged),
        mounts::pod_mounts(sandbox, readonly_rootfs),
        cri_mounts.mounts,
    );

    // Devices.
    let mut device_rules = security::default_device_rules(privileged);
    let mut devices = Vec::new();
    if privileged && !opts.privileged_without_host_devices {
        devices = host.host_devices()?;
    }
    let (cri_devs, cri_rules) = security::cri_devices(&cfg.devices, host)?;
    for d in cri_devs {
        devices.retain(|x| x.path() != d.path());
        devices.push(d);
    }
    device_rules.extend(cri_rules);

    let mut res = match cri_res {
        Some(r) => resources::linux_resources_with(r, host.swap_available()),
        None => LinuxResources::default(),
    };
    res.set_devices(Some(device_rules));

    let (masked, readonly) = security::masked_and_readonly(sc, privileged);
    let mut linux = Linux::default();
    linux
        .set_resources(Some(res))
        .set_cgroups_path(
            (!opts.cgroups_path.is_empty()).then(|| PathBuf::from(&opts.cgroups_path)),
        )
        .set_namespaces(Some(namespaces::namespaces(sandbox)))
        .set_devices(Some(devices))
        .set_seccomp(seccomp)
        .set_rootfs_propagation(cri_mounts.rootfs_propagation)
        .set_masked_paths(Some(masked))
        .set_readonly_paths(Some(readonly))
        .set_sysctl((!sandbox.sysctls.is_empty()).then(|| sandbox.sysctls.clone()))
        .set_uid_mappings(None)
        .set_gid_mappings(None);

    let mut root = Root::default();
    root.set_path(rootfs.to_path_buf())
        .set_readonly(Some(readonly_rootfs));

    let image_name = cfg
        .image
        .as_ref()
        .map(|i| {
            if i.user_specified_image.is_empty() {
                i.image.clone()
            } else {
                i.user_specified_image.clone()
            }
        })
        .unwrap_or_default();
    let annotations: HashMap<String, String> = [
        (annotations::CONTAINER_TYPE, "container".to_string()),
        (annotations::SANDBOX_ID, sandbox.pod_id.clone()),
        (annotations::CONTAINER_NAME, name.to_string()),
        (annotations::IMAGE_NAME, image_name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_string())
        .set_root(Some(root))
        .set_mounts(Some(all_mounts))
        .set_process(Some(proc_))
        .set_hostname(sandbox.uts_ns.as_ref().map(|_| sandbox.hostname.clone()))
        .set_domainname(None)
        .set_hooks(None)
        .set_annotations(Some(annotations))
        .set_linux(Some(linux));
    tracing::debug!(container = id, pod = %sandbox.pod_id, privileged, "built OCI spec");
    Ok(spec)
}

/// Write `bundle/config.json` atomically: a temp file in the bundle, then rename, so the
/// runtime and a restarted daemon see no config.json or a complete one. No fsync: the
/// bundle lives in the runroot (volatile state, tmpfs on a real node); after a power loss
/// the container it describes is gone as well, so durability would only cost create time.
pub fn write_config(bundle: &Path, spec: &Spec) -> Result<(), SpecError> {
    let path = bundle.join("config.json");
    let data = serde_json::to_vec(spec).map_err(|source| SpecError::Json {
        op: "serialize",
        path: path.clone(),
        source,
    })?;
    crate::atomic_file::write(&path, &data, false)
        .map_err(|e| SpecError::io(e.op, &e.path, e.source))
}

#[cfg(test)]
mod tests;
