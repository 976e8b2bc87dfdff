//! Container mounts: containerd's default mounts, the pod files (`/etc/hostname`,
//! `/etc/hosts`, `/etc/resolv.conf`, `/dev/shm`) and the CRI `mounts`, plus the default
//! masked and read-only paths.
//!
//! Rules followed (containerd `WithMounts` / `WithPodNamespaces`, CRI api.proto `Mount`):
//! - a CRI `host_path` must exist (crust does not create it, like CRI-O) and symlinks in it
//!   are resolved on the host; a missing one is InvalidArgument naming `mounts[i].host_path`;
//! - CRI mounts are bind mounts (`rbind`) with `rprivate`/`rslave`/`rshared` propagation and
//!   `ro`/`rw`; `rslave` and `rshared` make the rootfs propagation at least as open
//!   (`linux.rootfsPropagation`), else the mount could not propagate;
//! - a CRI mount (or pod file) replaces a default mount with the same destination, and a CRI
//!   mount of `/dev` drops every default below `/dev`;
//! - CRI mounts are sorted by destination depth so `/a` is mounted before `/a/b`;
//! - mounts onto files (`/dev/termination-log`) need nothing special: runc creates the
//!   destination with the source's type.

use std::path::{Path, PathBuf};

use crust_proto::cri;
use oci_spec::runtime::Mount;

use super::{SandboxSpecInfo, SpecError};

/// containerd's default masked paths (plus runc's newer additions).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// containerd's default read-only paths.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn mount(dest: &str, typ: &str, source: impl Into<PathBuf>, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest))
        .set_typ(Some(typ.to_string()))
        .set_source(Some(source.into()))
        .set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

/// containerd's default mounts for a CRI container (no `/run`). Privileged containers get
/// `/sys` and `/sys/fs/cgroup` read-write.
pub fn default_mounts(privileged: bool) -> Vec<Mount> {
    let ro_unless_privileged = |mut opts: Vec<&'static str>| {
        if !privileged {
            opts.push("ro");
        }
        opts
    };
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &ro_unless_privileged(vec!["nosuid", "noexec", "nodev"]),
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &ro_unless_privileged(vec!["nosuid", "noexec", "nodev", "relatime"]),
        ),
    ]
}

/// A bind mount as CRI mounts and pod files become.
fn bind(dest: &str, source: &Path, propagation: &str, readonly: bool) -> Mount {
    mount(
        dest,
        "bind",
        source,
        &["rbind", propagation, if readonly { "ro" } else { "rw" }],
    )
}

/// The pod files: `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` (read-only when the
/// rootfs is, like containerd) and `/dev/shm` (the sandbox's, or the host's with host IPC).
pub fn pod_mounts(sandbox: &SandboxSpecInfo, readonly_rootfs: bool) -> Vec<Mount> {
    let mut out = Vec::new();
    for (dest, file) in [
        ("/etc/hostname", &sandbox.hostname_file),
        ("/etc/hosts", &sandbox.hosts_file),
        ("/etc/resolv.conf", &sandbox.resolv_file),
    ] {
        if let Some(f) = file {
            out.push(bind(dest, f, "rprivate", readonly_rootfs));
        }
    }
    let shm = sandbox
        .shm_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/dev/shm"));
    out.push(bind("/dev/shm", &shm, "rprivate", false));
    out
}

/// The result of converting CRI mounts.
#[derive(Debug, Clone, Default)]
pub struct CriMounts {
    /// The bind mounts, sorted by destination depth.
    pub mounts: Vec<Mount>,
    /// `linux.rootfsPropagation` needed by `rslave`/`rshared` mounts.
    pub rootfs_propagation: Option<String>,
}

fn clean(dest: &str) -> String {
    let mut out = String::new();
    for part in dest.split('/').filter(|p| !p.is_empty() && *p != ".") {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() { "/".to_string() } else { out }
}

/// Validate and convert CRI mounts (see the module docs).
pub fn cri_mounts(mounts: &[cri::Mount]) -> Result<CriMounts, SpecError> {
    let mut out = CriMounts::default();
    for (i, m) in mounts.iter().enumerate() {
        let field = |f: &str| format!("mounts[{i}].{f}");
        if !m.container_path.starts_with('/') {
            return Err(SpecError::invalid(
                field("container_path"),
                &m.container_path,
                "must be an absolute path",
            ));
        }
        if clean(&m.container_path) == "/" {
            return Err(SpecError::invalid(
                field("container_path"),
                &m.container_path,
                "cannot mount over the container's root",
            ));
        }
        if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
            return Err(SpecError::invalid(
                field("image"),
                m.image
                    .as_ref()
                    .map(|i| i.image.as_str())
                    .unwrap_or_default(),
                "image volume mounts are not supported",
            ));
        }
        if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
            return Err(SpecError::invalid(
                field("uid_mappings"),
                format!("{} entries", m.uid_mappings.len() + m.gid_mappings.len()),
                "id-mapped mounts are not supported",
            ));
        }
        if m.recursive_read_only && !m.readonly {
            return Err(SpecError::invalid(
                field("recursive_read_only"),
                "true",
                "requires readonly",
            ));
        }
        if m.host_path.is_empty() {
            return Err(SpecError::invalid(field("host_path"), "", "is required"));
        }
        let source = match std::fs::canonicalize(&m.host_path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SpecError::invalid(
                    field("host_path"),
                    &m.host_path,
                    "path does not exist on the host",
                ));
            }
            Err(e) => {
                return Err(SpecError::invalid(
                    field("host_path"),
                    &m.host_path,
                    format!("cannot resolve: {e}"),
                ));
            }
        };
        let propagation = match cri::MountPropagation::try_from(m.propagation) {
            Ok(cri::MountPropagation::PropagationPrivate) => "rprivate",
            Ok(cri::MountPropagation::PropagationHostToContainer) => {
                if out.rootfs_propagation.as_deref() != Some("rshared") {
                    out.rootfs_propagation = Some("rslave".to_string());
                }
                "rslave"
            }
            Ok(cri::MountPropagation::PropagationBidirectional) => {
                out.rootfs_propagation = Some("rshared".to_string());
                "rshared"
            }
            Err(_) => {
                return Err(SpecError::invalid(
                    field("propagation"),
                    m.propagation.to_string(),
                    "unknown mount propagation",
                ));
            }
        };
        let mut b = bind(&clean(&m.container_path), &source, propagation, m.readonly);
        if m.recursive_read_only
            && let Some(o) = b.options_mut()
        {
            o.push("rro".to_string());
        }
        out.mounts.push(b);
    }
    out.mounts
        .sort_by_key(|m| m.destination().components().count());
    Ok(out)
}

/// The final mount list: defaults not overridden, then the pod files not overridden by a CRI
/// mount, then the CRI mounts.
pub fn merge(defaults: Vec<Mount>, pod: Vec<Mount>, cri: Vec<Mount>) -> Vec<Mount> {
    let cri_dests: Vec<PathBuf> = cri.iter().map(|m| m.destination().clone()).collect();
    let pod: Vec<Mount> = pod
        .into_iter()
        .filter(|m| !cri_dests.contains(m.destination()))
        .collect();
    let supplied: Vec<PathBuf> = cri_dests
        .iter()
        .cloned()
        .chain(pod.iter().map(|m| m.destination().clone()))
        .collect();
    let dev_supplied = supplied.iter().any(|d| d == Path::new("/dev"));
    let mut out: Vec<Mount> = defaults
        .into_iter()
        .filter(|m| !supplied.contains(m.destination()))
        .filter(|m| !(dev_supplied && m.destination().starts_with("/dev")))
        .collect();
    out.extend(pod);
    out.extend(cri);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cm(dest: &str, host: &str, ro: bool, prop: cri::MountPropagation) -> cri::Mount {
        cri::Mount {
            container_path: dest.to_string(),
            host_path: host.to_string(),
            readonly: ro,
            propagation: prop as i32,
            ..Default::default()
        }
    }

    fn opts(m: &Mount) -> Vec<String> {
        m.options().clone().unwrap_or_default()
    }

    #[test]
    fn cri_mount_validation_table() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().to_str().unwrap().to_string();
        let missing = d.path().join("missing").to_str().unwrap().to_string();
        let p = cri::MountPropagation::PropagationPrivate;
        // (mounts, error field fragment or "" for ok)
        let cases: Vec<(Vec<cri::Mount>, &str)> = vec![
            (vec![cm("/data", &host, false, p)], ""),
            (
                vec![cm("/data", &host, true, p), cm("/x", &missing, false, p)],
                "mounts[1].host_path",
            ),
            (
                vec![cm("data", &host, false, p)],
                "mounts[0].container_path",
            ),
            (vec![cm("/", &host, false, p)], "mounts[0].container_path"),
            (vec![cm("/data", "", false, p)], "mounts[0].host_path"),
            (
                vec![cri::Mount {
                    propagation: 9,
                    ..cm("/d", &host, false, p)
                }],
                "mounts[0].propagation",
            ),
            (
                vec![cri::Mount {
                    recursive_read_only: true,
                    ..cm("/d", &host, false, p)
                }],
                "mounts[0].recursive_read_only",
            ),
        ];
        for (mounts, want) in cases {
            let r = cri_mounts(&mounts);
            if want.is_empty() {
                r.unwrap();
            } else {
                let e = r.unwrap_err();
                assert!(e.is_invalid_argument(), "{e}");
                assert!(e.to_string().contains(want), "{e} !~ {want}");
            }
        }
        let e = cri_mounts(&[cm("/x", &missing, false, p)]).unwrap_err();
        assert!(e.to_string().contains(&missing), "{e}");
    }

    #[test]
    fn propagation_and_options() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().to_str().unwrap();
        let file = d.path().join("termlog");
        std::fs::write(&file, "").unwrap();
        let r = cri_mounts(&[
            cm(
                "/a/b/c",
                host,
                true,
                cri::MountPropagation::PropagationHostToContainer,
            ),
            cm("/a", host, false, cri::MountPropagation::PropagationPrivate),
            cm(
                "/dev/termination-log",
                file.to_str().unwrap(),
                false,
                cri::MountPropagation::PropagationPrivate,
            ),
        ])
        .unwrap();
        assert_eq!(r.rootfs_propagation.as_deref(), Some("rslave"));
        let dests: Vec<_> = r.mounts.iter().map(|m| m.destination().clone()).collect();
        assert_eq!(
            dests,
            vec![
                PathBuf::from("/a"),
                PathBuf::from("/dev/termination-log"),
                PathBuf::from("/a/b/c")
            ]
        );
        assert_eq!(opts(&r.mounts[2]), vec!["rbind", "rslave", "ro"]);
        assert_eq!(opts(&r.mounts[0]), vec!["rbind", "rprivate", "rw"]);
        let r = cri_mounts(&[
            cm(
                "/s",
                host,
                false,
                cri::MountPropagation::PropagationBidirectional,
            ),
            cm(
                "/t",
                host,
                false,
                cri::MountPropagation::PropagationHostToContainer,
            ),
        ])
        .unwrap();
        assert_eq!(r.rootfs_propagation.as_deref(), Some("rshared"));
    }

    #[test]
    fn merge_replaces_defaults() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().to_str().unwrap();
        let sb = SandboxSpecInfo {
            hosts_file: Some(PathBuf::from("/run/pod/hosts")),
            shm_dir: Some(PathBuf::from("/run/pod/shm")),
            ..Default::default()
        };
        let p = cri::MountPropagation::PropagationPrivate;
        let cri = cri_mounts(&[cm("/etc/hosts", host, false, p)]).unwrap();
        let all = merge(default_mounts(false), pod_mounts(&sb, true), cri.mounts);
        let hosts: Vec<_> = all
            .iter()
            .filter(|m| m.destination() == Path::new("/etc/hosts"))
            .collect();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].source().as_deref(), Some(d.path()));
        let shm: Vec<_> = all
            .iter()
            .filter(|m| m.destination() == Path::new("/dev/shm"))
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0].source().as_deref(), Some(Path::new("/run/pod/shm")));
        // A CRI /dev drops the /dev defaults.
        let cri = cri_mounts(&[cm("/dev", host, false, p)]).unwrap();
        let all = merge(default_mounts(false), vec![], cri.mounts);
        assert!(!all.iter().any(
            |m| m.destination() == Path::new("/dev/pts") || m.typ().as_deref() == Some("tmpfs")
        ));
    }

    #[test]
    fn defaults_and_privileged() {
        let m = default_mounts(false);
        let sys = m
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap();
        assert!(opts(sys).contains(&"ro".to_string()));
        let m = default_mounts(true);
        for d in ["/sys", "/sys/fs/cgroup"] {
            let x = m.iter().find(|m| m.destination() == Path::new(d)).unwrap();
            assert!(!opts(x).contains(&"ro".to_string()), "{d}");
        }
        // host IPC: host /dev/shm
        let pm = pod_mounts(&SandboxSpecInfo::default(), false);
        assert_eq!(pm.len(), 1);
        assert_eq!(pm[0].source().as_deref(), Some(Path::new("/dev/shm")));
    }
}
