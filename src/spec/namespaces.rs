//! The container's namespaces, from what the pod sandbox provides.
//!
//! crust pins the pod's net/ipc/uts namespaces as nsfs bind mounts (no pause process), so a
//! container joins them by path; `None` means the host's (host network / IPC / UTS: no
//! entry at all, the runtime's own namespace is kept). The PID namespace is the host's, a
//! new one per container, or the pod's (pause process) by path. A mount namespace is always
//! new. No cgroup namespace: this host runs cgroup v1 hybrid, where containerd does not
//! create one either.

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use super::{PidNs, SandboxSpecInfo};

fn ns(typ: LinuxNamespaceType, path: Option<&std::path::Path>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(typ).set_path(path.map(|p| p.to_path_buf()));
    n
}

/// The `linux.namespaces` list for a container of `sandbox`.
pub fn namespaces(sandbox: &SandboxSpecInfo) -> Vec<LinuxNamespace> {
    let mut out = Vec::new();
    match &sandbox.pid_ns {
        PidNs::Host => {}
        PidNs::Container => out.push(ns(LinuxNamespaceType::Pid, None)),
        PidNs::Pod(p) => out.push(ns(LinuxNamespaceType::Pid, Some(p))),
    }
    if let Some(p) = &sandbox.ipc_ns {
        out.push(ns(LinuxNamespaceType::Ipc, Some(p)));
    }
    if let Some(p) = &sandbox.uts_ns {
        out.push(ns(LinuxNamespaceType::Uts, Some(p)));
    }
    out.push(ns(LinuxNamespaceType::Mount, None));
    if let Some(p) = &sandbox.net_ns {
        out.push(ns(LinuxNamespaceType::Network, Some(p)));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// (namespace type, joined path)
    type NsWant = (&'static str, Option<&'static str>);

    #[test]
    fn namespace_table() {
        let pinned = SandboxSpecInfo {
            net_ns: Some(PathBuf::from("/run/p/ns/net")),
            ipc_ns: Some(PathBuf::from("/run/p/ns/ipc")),
            uts_ns: Some(PathBuf::from("/run/p/ns/uts")),
            pid_ns: PidNs::Pod(PathBuf::from("/proc/42/ns/pid")),
            ..Default::default()
        };
        let host = SandboxSpecInfo {
            pid_ns: PidNs::Host,
            ..Default::default()
        };
        let cases: Vec<(SandboxSpecInfo, Vec<NsWant>)> = vec![
            (
                pinned,
                vec![
                    ("pid", Some("/proc/42/ns/pid")),
                    ("ipc", Some("/run/p/ns/ipc")),
                    ("uts", Some("/run/p/ns/uts")),
                    ("mnt", None),
                    ("net", Some("/run/p/ns/net")),
                ],
            ),
            (host, vec![("mnt", None)]),
            (
                SandboxSpecInfo::default(),
                vec![("pid", None), ("mnt", None)],
            ),
        ];
        for (sb, want) in cases {
            let got: Vec<(String, Option<String>)> = namespaces(&sb)
                .iter()
                .map(|n| {
                    (
                        n.typ().to_string(),
                        n.path().as_ref().map(|p| p.display().to_string()),
                    )
                })
                .collect();
            let want: Vec<(String, Option<String>)> = want
                .into_iter()
                .map(|(t, p)| (t.to_string(), p.map(str::to_string)))
                .collect();
            assert_eq!(got, want);
        }
    }
}
