//! `[crust.runtime]`: which OCI runtimes (RuntimeClass handlers) crust can drive, and the
//! helper binaries (monitor, pause) and security defaults that go with them.
//!
//! Modelled on CRI-O's `[crio.runtime]` / `[crio.runtime.runtimes.<handler>]` and
//! containerd's `runtimes.<handler>` tables: a Kubernetes RuntimeClass names a handler,
//! the handler names a runc-compatible binary. Defaults ship entries for runc, runsc
//! (gVisor, ptrace platform so it works without KVM), crun and youki; entries whose
//! binary is missing are reported unavailable rather than failing the daemon
//! (see `crate::runtime::handlers`). A user table `[crust.runtime.runtimes.<name>]`
//! overrides or extends the defaults key by key, like every other drop-in key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The default RuntimeClass handler.
pub const DEFAULT_RUNTIME: &str = "runc";

/// `[crust.runtime]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Handler used when a pod names none (`RunPodSandboxRequest.runtime_handler == ""`).
    pub default_runtime: String,
    /// How container cgroups are named in `linux.cgroupsPath`.
    pub cgroup_manager: CgroupManager,
    /// `crust-monitor` binary; empty = next to the crust executable, then `$PATH`.
    pub monitor_path: PathBuf,
    /// `crust-pause` binary; empty = next to the crust executable, then `$PATH`.
    pub pause_path: PathBuf,
    /// Seccomp profile for `RuntimeDefault`; empty = crust's built-in profile.
    pub seccomp_profile: PathBuf,
    /// Capabilities every container gets; empty = crust's built-in default set.
    pub default_capabilities: Vec<String>,
    /// OCI hook directories (oci-hooks(5) `*.json` files), lowest precedence first: a file
    /// in a later directory masks the same name in an earlier one. CRI-O's `hooks_dir`.
    pub hooks_dir: Vec<PathBuf>,
    /// RuntimeClass handlers by name.
    pub runtimes: BTreeMap<String, RuntimeHandlerConfig>,
}

/// `[crust.runtime.runtimes.<handler>]`: one runc-compatible runtime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeHandlerConfig {
    /// Runtime binary; empty = the handler name looked up in `$PATH` and the sbin/bin
    /// directories.
    pub runtime_path: PathBuf,
    /// State directory given as `--root`; empty = `<runroot>/runtimes/<handler>`.
    pub runtime_root: PathBuf,
    /// Extra global arguments placed before the subcommand (e.g. `--platform=ptrace`).
    pub runtime_args: Vec<String>,
    /// Monitor binary for this handler; empty = `crust.runtime.monitor_path`.
    pub monitor_path: PathBuf,
    /// Privileged containers do not get every host device (for VM-based runtimes).
    pub privileged_without_host_devices: bool,
    /// Annotation prefixes passed through from the pod/container to the OCI spec.
    pub allowed_annotations: Vec<String>,
}

/// cgroup drivers (kubelet `--cgroup-driver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CgroupManager {
    /// Plain cgroupfs paths (`/crust/crust-<id>`).
    Cgroupfs,
    /// systemd slices (`<slice>:crust:<id>`).
    Systemd,
}

impl CgroupManager {
    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cgroupfs => "cgroupfs",
            Self::Systemd => "systemd",
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let mut runtimes = BTreeMap::new();
        for name in ["runc", "crun", "youki"] {
            runtimes.insert(name.to_owned(), RuntimeHandlerConfig::default());
        }
        runtimes.insert(
            "runsc".to_owned(),
            RuntimeHandlerConfig {
                // gVisor's default platform (systrap) needs recent kernels' features;
                // ptrace works everywhere, including nested VMs without KVM.
                // ptrace: the platform that works without KVM. network=none: crust pins
                // the pod's netns without an infra container, and gVisor 2022's
                // `--network=sandbox` refuses to copy interfaces from a netns joined by
                // path ("cannot run with network enabled in root network namespace");
                // gVisor's own netstack then gives containers loopback.
                runtime_args: vec!["--platform=ptrace".to_owned(), "--network=none".to_owned()],
                ..RuntimeHandlerConfig::default()
            },
        );
        Self {
            default_runtime: DEFAULT_RUNTIME.to_owned(),
            cgroup_manager: CgroupManager::Cgroupfs,
            monitor_path: PathBuf::new(),
            pause_path: PathBuf::new(),
            seccomp_profile: PathBuf::new(),
            default_capabilities: Vec::new(),
            hooks_dir: crust_hooks::DEFAULT_HOOK_DIRS
                .iter()
                .map(PathBuf::from)
                .collect(),
            runtimes,
        }
    }
}

/// True when a handler name is usable as a TOML bare key and a directory name.
/// Kubernetes requires RuntimeClass handlers to be DNS labels; `_` and upper case are
/// tolerated for CRI-O-style names.
fn valid_handler_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl RuntimeConfig {
    /// The monitor binary configured for `handler` (handler override, else global).
    pub fn monitor_path_for(&self, handler: &RuntimeHandlerConfig) -> PathBuf {
        if handler.monitor_path.as_os_str().is_empty() {
            self.monitor_path.clone()
        } else {
            handler.monitor_path.clone()
        }
    }

    /// Semantic checks (called from `Config::validate`). Returns `(dotted key, reason)`.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errs = Vec::new();
        if !self.runtimes.contains_key(&self.default_runtime) {
            errs.push((
                "crust.runtime.default_runtime",
                format!(
                    "handler {:?} is not defined in crust.runtime.runtimes (known: {})",
                    self.default_runtime,
                    self.runtimes.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        for (key, p) in [
            ("crust.runtime.monitor_path", &self.monitor_path),
            ("crust.runtime.pause_path", &self.pause_path),
            ("crust.runtime.seccomp_profile", &self.seccomp_profile),
        ] {
            if !p.as_os_str().is_empty() && !p.is_absolute() {
                errs.push((key, format!("must be an absolute path or \"\", got {p:?}")));
            }
        }
        for d in &self.hooks_dir {
            if !d.is_absolute() {
                errs.push((
                    "crust.runtime.hooks_dir",
                    format!("every entry must be an absolute path, got {d:?}"),
                ));
            }
        }
        for (name, h) in &self.runtimes {
            if !valid_handler_name(name) {
                errs.push((
                    "crust.runtime.runtimes",
                    format!("handler name {name:?} must be 1-63 characters of [A-Za-z0-9_-]"),
                ));
            }
            for (field, p) in [
                ("runtime_path", &h.runtime_path),
                ("runtime_root", &h.runtime_root),
                ("monitor_path", &h.monitor_path),
            ] {
                if !p.as_os_str().is_empty() && !p.is_absolute() {
                    errs.push((
                        "crust.runtime.runtimes",
                        format!(
                            "crust.runtime.runtimes.{name}.{field}: must be an absolute path or \"\", got {p:?}"
                        ),
                    ));
                }
            }
        }
        errs
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_four_handlers() {
        let c = RuntimeConfig::default();
        assert_eq!(
            c.runtimes.keys().map(String::as_str).collect::<Vec<_>>(),
            ["crun", "runc", "runsc", "youki"]
        );
        assert_eq!(
            c.runtimes["runsc"].runtime_args,
            ["--platform=ptrace", "--network=none"]
        );
        assert_eq!(c.default_runtime, "runc");
        assert_eq!(c.cgroup_manager, CgroupManager::Cgroupfs);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn validate_rejects_unknown_default_and_relative_paths() {
        let mut c = RuntimeConfig {
            default_runtime: "kata".into(),
            monitor_path: "rel/mon".into(),
            ..Default::default()
        };
        c.runtimes.insert(
            "bad name".into(),
            RuntimeHandlerConfig {
                runtime_path: "runc".into(),
                ..Default::default()
            },
        );
        let errs = c.validate();
        let keys: Vec<_> = errs.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "crust.runtime.default_runtime",
                "crust.runtime.monitor_path",
                "crust.runtime.runtimes",
                "crust.runtime.runtimes"
            ]
        );
        assert!(errs[0].1.contains("\"kata\""), "{}", errs[0].1);
        assert!(errs[3].1.contains("runtime_path"), "{}", errs[3].1);
    }

    #[test]
    fn monitor_path_override() {
        let c = RuntimeConfig {
            monitor_path: "/g/mon".into(),
            ..Default::default()
        };
        let mut h = RuntimeHandlerConfig::default();
        assert_eq!(c.monitor_path_for(&h), PathBuf::from("/g/mon"));
        h.monitor_path = "/h/mon".into();
        assert_eq!(c.monitor_path_for(&h), PathBuf::from("/h/mon"));
    }

    fn load(list: &[(&str, &str)]) -> Result<crate::config::Config, String> {
        let f: Vec<_> = list
            .iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect();
        crate::config::load::load_from(&f, &crate::config::ConfigFlags::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn dropins_merge_handler_tables_key_by_key() {
        let c = load(&[
            (
                "/etc/crust/crust.toml",
                "[crust.runtime.runtimes.kata]\nruntime_path = \"/opt/kata/bin/kata-runtime\"\n\
                 [crust.runtime.runtimes.runc]\nruntime_args = [\"--debug\"]\n",
            ),
            (
                "/d/10.toml",
                "[crust.runtime]\ndefault_runtime = \"kata\"\n\
                 [crust.runtime.runtimes.kata]\nprivileged_without_host_devices = true\n\
                 [crust.runtime.runtimes.runc]\nruntime_path = \"/usr/sbin/runc\"\n",
            ),
        ])
        .unwrap();
        let r = &c.crust.runtime;
        assert_eq!(r.default_runtime, "kata");
        let kata = &r.runtimes["kata"];
        assert_eq!(
            kata.runtime_path,
            PathBuf::from("/opt/kata/bin/kata-runtime")
        );
        assert!(kata.privileged_without_host_devices);
        let runc = &r.runtimes["runc"];
        assert_eq!(runc.runtime_args, ["--debug"]);
        assert_eq!(runc.runtime_path, PathBuf::from("/usr/sbin/runc"));
        assert_eq!(
            r.runtimes["runsc"].runtime_args,
            ["--platform=ptrace", "--network=none"]
        );
        assert_eq!(r.runtimes.len(), 5);
    }

    #[test]
    fn bad_runtime_keys_name_file_and_key() {
        let e = load(&[("/f.toml", "crust.runtime.default_runtime = \"nope\"")]).unwrap_err();
        assert!(
            e.starts_with("/f.toml: `crust.runtime.default_runtime`: handler \"nope\""),
            "{e}"
        );
        let e = load(&[("/f.toml", "crust.runtime.cgroup_manager = \"magic\"")]).unwrap_err();
        assert!(e.contains("`crust.runtime.cgroup_manager`"), "{e}");
        let e = load(&[("/f.toml", "[crust.runtime.runtimes.runc]\nbogus = 1\n")]).unwrap_err();
        assert_eq!(
            e,
            "/f.toml: unknown key `crust.runtime.runtimes.runc.bogus`"
        );
        let e = load(&[(
            "/f.toml",
            "[crust.runtime.runtimes.kata]\nruntime_path = \"kata\"\n",
        )])
        .unwrap_err();
        assert!(
            e.contains("crust.runtime.runtimes.kata.runtime_path"),
            "{e}"
        );
    }

    #[test]
    fn hooks_dir_defaults_override_and_validation() {
        let c = load(&[]).unwrap();
        assert_eq!(
            c.crust.runtime.hooks_dir,
            [
                PathBuf::from("/usr/share/containers/oci/hooks.d"),
                PathBuf::from("/etc/containers/oci/hooks.d")
            ]
        );
        let text = crate::config::print::to_commented_toml(&c).unwrap();
        assert!(
            text.contains(
                "hooks_dir = [\"/usr/share/containers/oci/hooks.d\", \"/etc/containers/oci/hooks.d\"]"
            ),
            "{text}"
        );
        let c = load(&[(
            "/d/10.toml",
            "[crust.runtime]\nhooks_dir = [\"/opt/hooks.d\"]\n",
        )])
        .unwrap();
        assert_eq!(c.crust.runtime.hooks_dir, [PathBuf::from("/opt/hooks.d")]);
        let e = load(&[("/f.toml", "crust.runtime.hooks_dir = [\"hooks.d\"]")]).unwrap_err();
        assert!(
            e.starts_with("/f.toml: `crust.runtime.hooks_dir`: every entry must be an absolute"),
            "{e}"
        );
    }

    #[test]
    fn flags_set_default_runtime_and_cgroup_manager() {
        let flags = crate::config::ConfigFlags {
            default_runtime: Some("crun".into()),
            cgroup_manager: Some(CgroupManager::Systemd),
            ..Default::default()
        };
        let c = crate::config::load::load_from(&[], &flags).unwrap();
        assert_eq!(c.crust.runtime.default_runtime, "crun");
        assert_eq!(c.crust.runtime.cgroup_manager, CgroupManager::Systemd);
    }

    #[test]
    fn printed_handlers_reparse() {
        let c = load(&[(
            "/f.toml",
            "[crust.runtime.runtimes.kata-qemu]\nruntime_path = \"/opt/kata\"\n\
             allowed_annotations = [\"io.katacontainers.\"]\n",
        )])
        .unwrap();
        let text = crate::config::print::to_commented_toml(&c).unwrap();
        assert!(
            text.contains("[crust.runtime.runtimes.kata-qemu]"),
            "{text}"
        );
        let again = load(&[("/printed.toml", &text)]).unwrap();
        assert_eq!(again, c);
    }
}
