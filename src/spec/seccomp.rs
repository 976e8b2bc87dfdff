//! Seccomp: which profile a container gets, and crust's built-in `RuntimeDefault` profile.
//!
//! Selection follows CRI api.proto: the `seccomp` [`cri::SecurityProfile`] wins
//! (`RuntimeDefault`, `Unconfined`, `Localhost` + `localhost_ref`); without it the deprecated
//! `seccomp_profile_path` string is read (`runtime/default`, `docker/default`, `unconfined`,
//! `localhost/<absolute path>`, "" = unconfined, as in containerd). Privileged containers
//! never get a filter.
//!
//! The built-in profile is written in code, not copied: default action ALLOW and a deny list
//! (EPERM) of the syscalls Docker's default profile keeps away from containers because they
//! reach kernel-global state (keyrings, modules, reboot, clock, mounts and new namespaces,
//! bpf/perf, io_uring, ...). As in Docker's profile, most denials are lifted when the
//! container holds the capability that guards the syscall anyway (SYS_ADMIN lifts mount,
//! unshare, setns, ...). `clone3` gets ENOSYS (not EPERM) without SYS_ADMIN so libcs fall back
//! to `clone`, whose namespace flags are filtered by argument.

use std::path::{Path, PathBuf};

use crust_proto::cri;
use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

use super::SpecError;

/// Which seccomp profile a container asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompChoice {
    /// No filter.
    Unconfined,
    /// The runtime's default profile.
    RuntimeDefault,
    /// A JSON profile file on the node.
    Localhost(PathBuf),
}

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// Syscalls denied unless the container holds the capability (None = always denied).
const DENY: &[(Option<Capability>, &[&str])] = &[
    (
        None,
        &[
            "add_key",
            "keyctl",
            "request_key",
            "nfsservctl",
            "create_module",
            "get_kernel_syms",
            "query_module",
            "uselib",
            "ustat",
            "sysfs",
            "_sysctl",
            "vm86",
            "vm86old",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
        ],
    ),
    (
        Some(Capability::SysAdmin),
        &[
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "name_to_handle_at",
            "fanotify_init",
            "bpf",
            "perf_event_open",
        ],
    ),
    (
        Some(Capability::SysModule),
        &["init_module", "finit_module", "delete_module"],
    ),
    (
        Some(Capability::SysBoot),
        &["reboot", "kexec_load", "kexec_file_load"],
    ),
    (
        Some(Capability::SysTime),
        &["settimeofday", "stime", "clock_settime", "clock_adjtime"],
    ),
    (Some(Capability::SysRawio), &["iopl", "ioperm"]),
    (Some(Capability::SysPtrace), &["kcmp", "userfaultfd"]),
    (Some(Capability::SysNice), &["move_pages"]),
    (Some(Capability::SysPacct), &["acct"]),
    (Some(Capability::Syslog), &["syslog"]),
    (Some(Capability::SysTtyConfig), &["vhangup"]),
    (Some(Capability::DacReadSearch), &["open_by_handle_at"]),
];

/// `clone` flags that create namespaces (CLONE_NEWTIME is not valid for `clone`).
const CLONE_NS_FLAGS: &[u64] = &[
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

fn rule(names: &[&str], errno: u32) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| n.to_string()).collect())
        .set_action(LinuxSeccompAction::ScmpActErrno)
        .set_errno_ret(Some(errno));
    s
}

/// The architectures the built-in profile covers on this build's host.
fn architectures() -> Option<Vec<Arch>> {
    if cfg!(target_arch = "x86_64") {
        Some(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
    } else if cfg!(target_arch = "aarch64") {
        Some(vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm])
    } else {
        None
    }
}

/// crust's built-in default profile for a container holding `caps` (see the module docs).
pub fn default_profile(caps: &Capabilities) -> LinuxSeccomp {
    let mut rules = Vec::new();
    for (cap, names) in DENY {
        if cap.is_none_or(|c| !caps.contains(&c)) {
            rules.push(rule(names, EPERM));
        }
    }
    if !caps.contains(&Capability::SysAdmin) {
        rules.push(rule(&["clone3"], ENOSYS));
        for flag in CLONE_NS_FLAGS {
            // libseccomp MASKED_EQ: (arg & value) == value_two.
            let arg = LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(*flag)
                .value_two(*flag)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build();
            match arg {
                Ok(arg) => {
                    let mut r = rule(&["clone"], EPERM);
                    r.set_args(Some(vec![arg]));
                    rules.push(r);
                }
                Err(e) => tracing::error!(error = %e, "seccomp clone rule not built"),
            }
        }
    }
    let mut s = LinuxSeccomp::default();
    s.set_default_action(LinuxSeccompAction::ScmpActAllow)
        .set_architectures(architectures())
        .set_syscalls(Some(rules));
    s
}

fn profile_from_path(field: &str, value: &str) -> Result<SeccompChoice, SpecError> {
    if value.is_empty() || !value.starts_with('/') {
        return Err(SpecError::invalid(
            field,
            value,
            "localhost seccomp profile must be an absolute path",
        ));
    }
    Ok(SeccompChoice::Localhost(PathBuf::from(value)))
}

/// The seccomp profile a security context asks for (see the module docs).
#[allow(deprecated)]
pub fn choice(sc: Option<&cri::LinuxContainerSecurityContext>) -> Result<SeccompChoice, SpecError> {
    let Some(sc) = sc else {
        return Ok(SeccompChoice::Unconfined);
    };
    if let Some(p) = &sc.seccomp {
        return match cri::security_profile::ProfileType::try_from(p.profile_type) {
            Ok(cri::security_profile::ProfileType::RuntimeDefault) => {
                Ok(SeccompChoice::RuntimeDefault)
            }
            Ok(cri::security_profile::ProfileType::Unconfined) => Ok(SeccompChoice::Unconfined),
            Ok(cri::security_profile::ProfileType::Localhost) => profile_from_path(
                "linux.security_context.seccomp.localhost_ref",
                &p.localhost_ref,
            ),
            Err(_) => Err(SpecError::invalid(
                "linux.security_context.seccomp.profile_type",
                p.profile_type.to_string(),
                "unknown profile type",
            )),
        };
    }
    let path = sc.seccomp_profile_path.as_str();
    match path {
        "" | "unconfined" => Ok(SeccompChoice::Unconfined),
        "runtime/default" | "docker/default" => Ok(SeccompChoice::RuntimeDefault),
        _ => match path.strip_prefix("localhost/") {
            Some(p) => profile_from_path("linux.security_context.seccomp_profile_path", p),
            None => Err(SpecError::invalid(
                "linux.security_context.seccomp_profile_path",
                path,
                "expected runtime/default, docker/default, unconfined or localhost/<path>",
            )),
        },
    }
}

/// Parse a profile file: the OCI `linux.seccomp` shape, also accepting Docker's `archMap`
/// (architectures taken from it) — Docker's conditional `includes`/`excludes` are ignored.
pub fn parse_profile(path: &Path, text: &str) -> Result<LinuxSeccomp, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_str(text)?;
    if let Some(obj) = v.as_object_mut()
        && !obj.contains_key("architectures")
        && let Some(map) = obj.get("archMap").and_then(|m| m.as_array())
    {
        let mut arches = Vec::new();
        for entry in map {
            if let Some(a) = entry.get("architecture") {
                arches.push(a.clone());
            }
            if let Some(subs) = entry.get("subArchitectures").and_then(|s| s.as_array()) {
                arches.extend(subs.iter().cloned());
            }
        }
        obj.insert("architectures".into(), serde_json::Value::Array(arches));
    }
    tracing::debug!(path = %path.display(), "parsed seccomp profile");
    serde_json::from_value(v)
}

/// The `linux.seccomp` for a container. `configured` is the daemon's replacement for the
/// built-in default (`[crust.runtime] seccomp_profile`); `caps` the container's capabilities.
pub fn seccomp(
    sc: Option<&cri::LinuxContainerSecurityContext>,
    privileged: bool,
    configured: Option<&Path>,
    caps: &Capabilities,
) -> Result<Option<LinuxSeccomp>, SpecError> {
    if privileged {
        return Ok(None);
    }
    match choice(sc)? {
        SeccompChoice::Unconfined => Ok(None),
        SeccompChoice::RuntimeDefault => match configured {
            None => Ok(Some(default_profile(caps))),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| SpecError::io("read", p, e))?;
                parse_profile(p, &text)
                    .map(Some)
                    .map_err(|source| SpecError::Json {
                        op: "parse seccomp profile",
                        path: p.to_path_buf(),
                        source,
                    })
            }
        },
        SeccompChoice::Localhost(p) => {
            let field = "linux.security_context.seccomp.localhost_ref";
            let shown = p.display().to_string();
            let text = std::fs::read_to_string(&p).map_err(|e| {
                SpecError::invalid(field, &shown, format!("cannot read seccomp profile: {e}"))
            })?;
            parse_profile(&p, &text)
                .map(Some)
                .map_err(|e| SpecError::invalid(field, &shown, format!("bad seccomp profile: {e}")))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, deprecated)]
mod tests {
    use super::*;

    fn sc_profile(t: i32, r: &str) -> cri::LinuxContainerSecurityContext {
        cri::LinuxContainerSecurityContext {
            seccomp: Some(cri::SecurityProfile {
                profile_type: t,
                localhost_ref: r.to_string(),
            }),
            ..Default::default()
        }
    }

    fn sc_path(p: &str) -> cri::LinuxContainerSecurityContext {
        cri::LinuxContainerSecurityContext {
            seccomp_profile_path: p.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn choice_table() {
        use SeccompChoice::*;
        let cases: Vec<(Option<cri::LinuxContainerSecurityContext>, SeccompChoice)> = vec![
            (None, Unconfined),
            (Some(Default::default()), Unconfined),
            (Some(sc_profile(0, "")), RuntimeDefault),
            (Some(sc_profile(1, "")), Unconfined),
            (Some(sc_profile(2, "/p.json")), Localhost("/p.json".into())),
            (Some(sc_path("runtime/default")), RuntimeDefault),
            (Some(sc_path("docker/default")), RuntimeDefault),
            (Some(sc_path("unconfined")), Unconfined),
            (
                Some(sc_path("localhost//x/y.json")),
                Localhost("/x/y.json".into()),
            ),
        ];
        for (sc, want) in cases {
            assert_eq!(choice(sc.as_ref()).unwrap(), want, "{sc:?}");
        }
        for sc in [
            sc_profile(2, ""),
            sc_profile(2, "rel.json"),
            sc_profile(7, ""),
            sc_path("bogus"),
        ] {
            assert!(choice(Some(&sc)).unwrap_err().is_invalid_argument());
        }
    }

    #[test]
    fn default_profile_shape() {
        let p = default_profile(&Capabilities::new());
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
        let rules = p.syscalls().clone().unwrap();
        let denied = |n: &str| rules.iter().any(|r| r.names().iter().any(|x| x == n));
        for n in [
            "mount", "keyctl", "unshare", "reboot", "bpf", "clone3", "clone",
        ] {
            assert!(denied(n), "{n}");
        }
        for n in [
            "read", "write", "execve", "openat", "ptrace", "socket", "fork",
        ] {
            assert!(!denied(n), "{n}");
        }
        let caps: Capabilities = [Capability::SysAdmin].into_iter().collect();
        let rules = default_profile(&caps).syscalls().clone().unwrap();
        assert!(
            !rules
                .iter()
                .any(|r| r.names().iter().any(|x| x == "mount" || x == "clone"))
        );
        assert!(
            rules
                .iter()
                .any(|r| r.names().iter().any(|x| x == "reboot"))
        );
        // Serializes to what runc expects.
        let j = serde_json::to_value(default_profile(&Capabilities::new())).unwrap();
        assert_eq!(j["defaultAction"], "SCMP_ACT_ALLOW");
        assert!(j["syscalls"][0]["errnoRet"].is_number());
    }

    #[test]
    fn localhost_and_configured_profiles() {
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("p.json");
        std::fs::write(
            &good,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
               "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW","includes":{}}]}"#,
        )
        .unwrap();
        let none = Capabilities::new();
        let sc = sc_profile(2, good.to_str().unwrap());
        let p = seccomp(Some(&sc), false, None, &none).unwrap().unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.architectures().as_ref().unwrap().len(), 2);
        // privileged: none
        assert!(seccomp(Some(&sc), true, None, &none).unwrap().is_none());
        // missing file names the path
        let missing = d.path().join("missing.json");
        let sc = sc_profile(2, missing.to_str().unwrap());
        let e = seccomp(Some(&sc), false, None, &none).unwrap_err();
        assert!(e.is_invalid_argument());
        assert!(e.to_string().contains("missing.json"), "{e}");
        // configured replacement for RuntimeDefault
        let p = seccomp(Some(&sc_profile(0, "")), false, Some(&good), &none)
            .unwrap()
            .unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        let bad = d.path().join("bad.json");
        std::fs::write(&bad, "{").unwrap();
        let e = seccomp(Some(&sc_profile(0, "")), false, Some(&bad), &none).unwrap_err();
        assert!(!e.is_invalid_argument());
    }
}
