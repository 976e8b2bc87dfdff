//! RuntimeClass handlers: `[crust.runtime.runtimes.<name>]` resolved against this host.
//!
//! Kubernetes' RuntimeClass names a handler; CRI `RunPodSandboxRequest.runtime_handler`
//! carries it ("" = the default) and every container of the pod uses it. Like CRI-O, an
//! unknown handler is an InvalidArgument listing the known ones, and configured handlers
//! whose binary is missing stay listed but unavailable (so the default config can name
//! runsc/crun/youki without failing hosts that lack them).
//!
//! crun 1.8 refuses to run on cgroup v1 "hybrid" hosts (v1 controllers with a v2 mount at
//! /sys/fs/cgroup/unified), so on any host where /sys/fs/cgroup is not cgroup2 crun is
//! marked unavailable with that reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::binaries::{SearchPath, find_binary_in, find_runtime_in};
use super::cli::OciRuntime;
use super::error::RuntimeError;
use crate::config::CrustConfig;

/// Name of the monitor binary.
pub const MONITOR_BINARY: &str = "crust-monitor";

/// `statfs` magic of cgroup2 (linux/magic.h `CGROUP2_SUPER_MAGIC`).
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

/// One resolved handler.
#[derive(Debug, Clone)]
pub struct Handler {
    /// Handler name (the RuntimeClass `handler`).
    pub name: String,
    /// How to run the runtime.
    pub runtime: OciRuntime,
    /// Monitor binary for its containers.
    pub monitor_path: PathBuf,
    /// Privileged containers do not get all host devices.
    pub privileged_without_host_devices: bool,
    /// Annotation prefixes passed into the OCI spec.
    pub allowed_annotations: Vec<String>,
    /// Why the handler cannot be used on this host; `None` when usable.
    pub unavailable: Option<String>,
}

impl Handler {
    /// Error unless the handler is usable.
    pub fn check(&self) -> Result<(), RuntimeError> {
        match &self.unavailable {
            None => Ok(()),
            Some(reason) => Err(RuntimeError::Unavailable {
                name: self.name.clone(),
                reason: reason.clone(),
            }),
        }
    }
}

/// The host facts handler resolution depends on (seam for tests).
pub trait Host {
    /// Where binaries are searched.
    fn search_path(&self) -> SearchPath;
    /// True when /sys/fs/cgroup is a cgroup2 mount (unified hierarchy).
    fn cgroup2_unified(&self) -> bool;
}

/// The real host.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealHost;

impl Host for RealHost {
    fn search_path(&self) -> SearchPath {
        SearchPath::from_env()
    }

    fn cgroup2_unified(&self) -> bool {
        is_cgroup2(Path::new("/sys/fs/cgroup"))
    }
}

/// True when `path` is the root of a cgroup2 mount.
pub fn is_cgroup2(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| {
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        let t = s.f_type as u64;
        t == CGROUP2_SUPER_MAGIC
    })
}

/// All configured handlers, resolved.
#[derive(Debug, Clone)]
pub struct Handlers {
    default: String,
    map: BTreeMap<String, Handler>,
}

impl Handlers {
    /// Resolve `[crust.runtime]` on this host. Fails only when `default_runtime` is not a
    /// configured handler; missing binaries make handlers unavailable instead.
    pub fn from_config(cfg: &CrustConfig) -> Result<Handlers, RuntimeError> {
        Self::from_config_on(cfg, &RealHost)
    }

    /// [`Handlers::from_config`] against an explicit [`Host`].
    pub fn from_config_on(cfg: &CrustConfig, host: &dyn Host) -> Result<Handlers, RuntimeError> {
        let rt = &cfg.runtime;
        if !rt.runtimes.contains_key(&rt.default_runtime) {
            return Err(RuntimeError::UnknownHandler {
                name: rt.default_runtime.clone(),
                known: rt.runtimes.keys().cloned().collect(),
            });
        }
        let search = host.search_path();
        let unified = host.cgroup2_unified();
        let mut map = BTreeMap::new();
        for (name, h) in &rt.runtimes {
            let mut unavailable = None;
            let path = match find_runtime_in(&search, name, &h.runtime_path) {
                Ok(p) => p,
                Err(e) => {
                    unavailable = Some(e.to_string());
                    if h.runtime_path.as_os_str().is_empty() {
                        PathBuf::from(name)
                    } else {
                        h.runtime_path.clone()
                    }
                }
            };
            let is_crun = name == "crun" || path.file_name().is_some_and(|f| f == "crun");
            if unavailable.is_none() && is_crun && !unified {
                unavailable = Some(
                    "crun 1.8 refuses cgroup v1 hybrid hierarchies and /sys/fs/cgroup is not cgroup2"
                        .to_owned(),
                );
            }
            let monitor_cfg = rt.monitor_path_for(h);
            let monitor_path = match find_binary_in(&search, MONITOR_BINARY, &monitor_cfg) {
                Ok(p) => p,
                Err(e) => {
                    if unavailable.is_none() {
                        unavailable = Some(e.to_string());
                    }
                    if monitor_cfg.as_os_str().is_empty() {
                        PathBuf::from(MONITOR_BINARY)
                    } else {
                        monitor_cfg
                    }
                }
            };
            let root = if h.runtime_root.as_os_str().is_empty() {
                cfg.runroot.join("runtimes").join(name)
            } else {
                h.runtime_root.clone()
            };
            if let Some(reason) = &unavailable {
                tracing::info!(handler = %name, %reason, "runtime handler unavailable");
            }
            map.insert(
                name.clone(),
                Handler {
                    name: name.clone(),
                    runtime: OciRuntime {
                        path,
                        root,
                        args: h.runtime_args.clone(),
                    },
                    monitor_path,
                    privileged_without_host_devices: h.privileged_without_host_devices,
                    allowed_annotations: h.allowed_annotations.clone(),
                    unavailable,
                },
            );
        }
        if let Some(reason) = map
            .get(&rt.default_runtime)
            .and_then(|h| h.unavailable.as_ref())
        {
            tracing::warn!(handler = %rt.default_runtime, %reason, "default runtime handler is unavailable");
        }
        Ok(Handlers {
            default: rt.default_runtime.clone(),
            map,
        })
    }

    /// The handler named `name` ("" = the default), usable or not.
    pub fn get(&self, name: &str) -> Result<&Handler, RuntimeError> {
        let name = if name.is_empty() { &self.default } else { name };
        self.map
            .get(name)
            .ok_or_else(|| RuntimeError::UnknownHandler {
                name: name.to_owned(),
                known: self.map.keys().cloned().collect(),
            })
    }

    /// [`Handlers::get`], and an error when the handler is unavailable on this host.
    pub fn usable(&self, name: &str) -> Result<&Handler, RuntimeError> {
        let h = self.get(name)?;
        h.check()?;
        Ok(h)
    }

    /// Every handler, by name.
    pub fn all(&self) -> impl Iterator<Item = &Handler> {
        self.map.values()
    }

    /// The default handler's name.
    pub fn default_name(&self) -> &str {
        &self.default
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::runtime::RuntimeHandlerConfig;

    struct FakeHost {
        dir: PathBuf,
        unified: bool,
    }

    impl Host for FakeHost {
        fn search_path(&self) -> SearchPath {
            SearchPath {
                exe_dir: Some(self.dir.join("exe")),
                path_env: Some(self.dir.join("bin").into_os_string()),
                runtime_dirs: vec![],
            }
        }
        fn cgroup2_unified(&self) -> bool {
            self.unified
        }
    }

    fn exe(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn setup(unified: bool) -> (tempfile::TempDir, FakeHost) {
        let t = tempfile::tempdir().unwrap();
        for b in ["bin/runc", "bin/crun", "exe/crust-monitor"] {
            exe(&t.path().join(b));
        }
        let host = FakeHost {
            dir: t.path().to_path_buf(),
            unified,
        };
        (t, host)
    }

    #[test]
    fn resolves_defaults() {
        let (t, host) = setup(false);
        let cfg = CrustConfig {
            runroot: "/run/crust-test".into(),
            ..Default::default()
        };
        let hs = Handlers::from_config_on(&cfg, &host).unwrap();
        assert_eq!(hs.default_name(), "runc");
        let runc = hs.get("").unwrap();
        assert_eq!(runc.name, "runc");
        assert_eq!(runc.runtime.path, t.path().join("bin/runc"));
        assert_eq!(
            runc.runtime.root,
            PathBuf::from("/run/crust-test/runtimes/runc")
        );
        assert_eq!(runc.monitor_path, t.path().join("exe/crust-monitor"));
        assert!(runc.unavailable.is_none());
        hs.usable("runc").unwrap();

        // crun exists but the host is not cgroup2.
        let crun = hs.get("crun").unwrap();
        assert!(
            crun.unavailable.as_deref().unwrap().contains("cgroup v1"),
            "{:?}",
            crun.unavailable
        );
        assert!(matches!(
            hs.usable("crun"),
            Err(RuntimeError::Unavailable { .. })
        ));
        // runsc is missing in this fake host; keeps its args.
        let runsc = hs.get("runsc").unwrap();
        assert!(
            runsc
                .unavailable
                .as_deref()
                .unwrap()
                .contains("`runsc` not found")
        );
        assert_eq!(runsc.runtime.args, ["--platform=ptrace", "--network=none"]);
        assert_eq!(
            hs.all().map(|h| h.name.as_str()).collect::<Vec<_>>(),
            ["crun", "runc", "runsc", "youki"]
        );

        let e = hs.get("kata").unwrap_err();
        assert_eq!(e.kind(), super::super::error::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("crun, runc, runsc, youki"), "{e}");

        let (_t2, host2) = setup(true);
        let hs = Handlers::from_config_on(&cfg, &host2).unwrap();
        assert!(hs.get("crun").unwrap().unavailable.is_none());
    }

    #[test]
    fn configured_paths_and_unknown_default() {
        let (t, host) = setup(true);
        let mut cfg = CrustConfig::default();
        let custom = t.path().join("opt/kata-runtime");
        exe(&custom);
        cfg.runtime.runtimes.insert(
            "kata".into(),
            RuntimeHandlerConfig {
                runtime_path: custom.clone(),
                runtime_root: "/run/kata".into(),
                monitor_path: t.path().join("nope/crust-monitor"),
                privileged_without_host_devices: true,
                ..Default::default()
            },
        );
        cfg.runtime.default_runtime = "kata".into();
        let hs = Handlers::from_config_on(&cfg, &host).unwrap();
        let k = hs.get("").unwrap();
        assert_eq!(k.runtime.path, custom);
        assert_eq!(k.runtime.root, PathBuf::from("/run/kata"));
        assert!(k.privileged_without_host_devices);
        assert!(
            k.unavailable
                .as_deref()
                .unwrap()
                .contains("nope/crust-monitor"),
            "{:?}",
            k.unavailable
        );

        cfg.runtime.default_runtime = "missing".into();
        let e = Handlers::from_config_on(&cfg, &host).unwrap_err();
        assert!(matches!(e, RuntimeError::UnknownHandler { .. }), "{e}");
    }

    #[test]
    fn cgroup2_detection_on_non_cgroup_dir() {
        let t = tempfile::tempdir().unwrap();
        assert!(!is_cgroup2(t.path()));
        assert!(!is_cgroup2(Path::new("/nonexistent-crust")));
    }
}
