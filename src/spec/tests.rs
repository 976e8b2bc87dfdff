//! End-to-end tests of [`super::container_spec_with`] with a fake [`Host`]: the whole
//! CreateContainer conversion for plain, privileged and locked-down containers.
#![allow(clippy::unwrap_used)]

use super::*;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxDevice, LinuxDeviceType, LinuxNamespaceType,
};

struct FakeHost {
    devices: Vec<LinuxDevice>,
    caps: Capabilities,
}

impl FakeHost {
    fn new() -> Self {
        let mut d = LinuxDevice::default();
        d.set_path(PathBuf::from("/dev/fake0"))
            .set_typ(LinuxDeviceType::B)
            .set_major(8)
            .set_minor(0);
        FakeHost {
            devices: vec![d],
            caps: caps::capabilities_from_mask(0x1ff_feff_ffff),
        }
    }
}

impl Host for FakeHost {
    fn host_devices(&self) -> Result<Vec<LinuxDevice>, SpecError> {
        Ok(self.devices.clone())
    }
    fn devices_at(&self, path: &Path) -> Result<Option<Vec<LinuxDevice>>, SpecError> {
        RealHost.devices_at(path)
    }
    fn bounding_capabilities(&self) -> Capabilities {
        self.caps.clone()
    }
    fn swap_available(&self) -> bool {
        true
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    rootfs: PathBuf,
    sandbox: SandboxSpecInfo,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\nwww:x:33:\nweb:x:80:www\n",
    )
    .unwrap();
    let pod = dir.path().join("pod");
    std::fs::create_dir_all(&pod).unwrap();
    let sandbox = SandboxSpecInfo {
        pod_id: "pod123".into(),
        hostname: "mypod".into(),
        net_ns: Some(pod.join("ns/net")),
        ipc_ns: Some(pod.join("ns/ipc")),
        uts_ns: Some(pod.join("ns/uts")),
        pid_ns: PidNs::Container,
        hostname_file: Some(pod.join("hostname")),
        hosts_file: Some(pod.join("hosts")),
        resolv_file: Some(pod.join("resolv.conf")),
        shm_dir: Some(pod.join("shm")),
        cgroup_parent: "/crust".into(),
        sysctls: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
        privileged: true,
        runtime_handler: "runc".into(),
    };
    Fixture {
        _dir: dir,
        rootfs,
        sandbox,
    }
}

fn config(sc: Option<cri::LinuxContainerSecurityContext>) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "web".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: "docker.io/library/busybox:latest".into(),
            ..Default::default()
        }),
        envs: vec![cri::KeyValue {
            key: "A".into(),
            value: "1".into(),
        }],
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources {
                memory_limit_in_bytes: 32 << 20,
                oom_score_adj: -999,
                ..Default::default()
            }),
            security_context: sc,
        }),
        ..Default::default()
    }
}

fn image() -> ImageSpecInfo {
    ImageSpecInfo {
        entrypoint: vec![],
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        working_dir: "/".into(),
        user: "www".into(),
        stop_signal: None,
    }
}

fn opts() -> SpecOptions {
    SpecOptions {
        oom_score_adj_min: -500,
        cgroups_path: "/crust/crust-abc".into(),
        ..Default::default()
    }
}

fn build(f: &Fixture, cfg: &cri::ContainerConfig, o: &SpecOptions) -> Result<Spec, SpecError> {
    container_spec_with(
        "abc",
        cfg,
        &f.sandbox,
        &image(),
        &f.rootfs,
        o,
        &FakeHost::new(),
    )
}

#[test]
fn plain_container() {
    let f = fixture();
    let spec = build(&f, &config(None), &opts()).unwrap();
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.args().as_ref().unwrap(), &vec!["sh".to_string()]);
    assert_eq!(
        p.env().as_ref().unwrap(),
        &vec![
            "HOSTNAME=mypod".to_string(),
            "PATH=/bin".into(),
            "A=1".into()
        ]
    );
    assert_eq!((p.user().uid(), p.user().gid()), (33, 33));
    assert_eq!(p.user().additional_gids().as_ref().unwrap(), &vec![33, 80]);
    assert_eq!(p.oom_score_adj(), Some(-500));
    let caps = p
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap();
    assert_eq!(caps.len(), caps::DEFAULT_CAPABILITIES.len());
    assert_eq!(spec.hostname().as_deref(), Some("mypod"));
    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), &f.rootfs);
    assert_eq!(root.readonly(), Some(false));

    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new("/crust/crust-abc"))
    );
    assert!(linux.seccomp().is_none());
    assert!(!linux.masked_paths().as_ref().unwrap().is_empty());
    assert_eq!(linux.sysctl().as_ref().unwrap()["net.ipv4.ip_forward"], "1");
    let res = linux.resources().as_ref().unwrap();
    assert_eq!(res.memory().unwrap().limit(), Some(32 << 20));
    assert!(!res.devices().as_ref().unwrap()[0].allow());
    assert!(linux.devices().as_ref().unwrap().is_empty());
    let ns: Vec<_> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    assert!(ns.contains(&LinuxNamespaceType::Network) && ns.contains(&LinuxNamespaceType::Pid));

    let mounts = spec.mounts().as_ref().unwrap();
    for d in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ] {
        assert!(
            mounts.iter().any(|m| m.destination() == Path::new(d)),
            "{d}"
        );
    }
    for d in [
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/dev/shm",
    ] {
        let m: Vec<_> = mounts
            .iter()
            .filter(|m| m.destination() == Path::new(d))
            .collect();
        assert_eq!(m.len(), 1, "{d}");
        assert_eq!(m[0].typ().as_deref(), Some("bind"), "{d}");
    }
    let ann = spec.annotations().as_ref().unwrap();
    assert_eq!(ann[annotations::CONTAINER_TYPE], "container");
    assert_eq!(ann[annotations::SANDBOX_ID], "pod123");
    assert_eq!(ann[annotations::CONTAINER_NAME], "web");
    assert_eq!(
        ann[annotations::IMAGE_NAME],
        "docker.io/library/busybox:latest"
    );

    // It serializes, and round-trips through config.json.
    let bundle = tempfile::tempdir().unwrap();
    write_config(bundle.path(), &spec).unwrap();
    let back: Spec =
        serde_json::from_slice(&std::fs::read(bundle.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(back.process().as_ref().unwrap().args(), p.args());
    assert_eq!(std::fs::read_dir(bundle.path()).unwrap().count(), 1);
}

#[test]
fn locked_down_container() {
    let f = fixture();
    let sc = cri::LinuxContainerSecurityContext {
        readonly_rootfs: true,
        no_new_privs: true,
        run_as_user: Some(cri::Int64Value { value: 1000 }),
        capabilities: Some(cri::Capability {
            drop_capabilities: vec!["ALL".into()],
            add_capabilities: vec!["NET_BIND_SERVICE".into()],
            ..Default::default()
        }),
        seccomp: Some(cri::SecurityProfile {
            profile_type: 0,
            localhost_ref: String::new(),
        }),
        ..Default::default()
    };
    let spec = build(&f, &config(Some(sc)), &opts()).unwrap();
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!((p.user().uid(), p.user().gid()), (1000, 0));
    let caps = p
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap();
    assert_eq!(caps, [Capability::NetBindService].into_iter().collect());
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_some());
    let hosts = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/etc/hosts"))
        .unwrap();
    assert!(
        hosts
            .options()
            .as_ref()
            .unwrap()
            .contains(&"ro".to_string())
    );
}

#[test]
fn privileged_container() {
    let f = fixture();
    let sc = cri::LinuxContainerSecurityContext {
        privileged: true,
        seccomp: Some(cri::SecurityProfile::default()),
        capabilities: Some(cri::Capability {
            drop_capabilities: vec!["ALL".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let cfg = config(Some(sc));
    let spec = build(&f, &cfg, &opts()).unwrap();
    let p = spec.process().as_ref().unwrap();
    let caps = p
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap();
    assert_eq!(caps.len(), 40, "all caps the daemon holds");
    assert!(!caps.contains(&Capability::SysResource));
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none());
    assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    assert!(linux.readonly_paths().as_ref().unwrap().is_empty());
    assert_eq!(linux.devices().as_ref().unwrap().len(), 1);
    let rules = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    assert!(rules[0].allow() && rules[0].typ() == Some(LinuxDeviceType::A));
    let sys = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/sys"))
        .unwrap();
    assert!(!sys.options().as_ref().unwrap().contains(&"ro".to_string()));

    // Without host devices.
    let o = SpecOptions {
        privileged_without_host_devices: true,
        ..opts()
    };
    let spec = build(&f, &cfg, &o).unwrap();
    assert!(
        spec.linux()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap()
            .is_empty()
    );

    // A non-privileged pod refuses privileged containers.
    let mut f2 = fixture();
    f2.sandbox.privileged = false;
    let e = build(&f2, &cfg, &opts()).unwrap_err();
    assert!(
        e.is_invalid_argument() && e.to_string().contains("privileged"),
        "{e}"
    );
}

#[test]
fn host_namespaces_and_bad_input() {
    let mut f = fixture();
    f.sandbox.uts_ns = None;
    f.sandbox.net_ns = None;
    f.sandbox.pid_ns = PidNs::Host;
    let spec = build(&f, &config(None), &opts()).unwrap();
    assert_eq!(spec.hostname(), &None);
    let ns: Vec<_> = spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    assert_eq!(ns, vec![LinuxNamespaceType::Ipc, LinuxNamespaceType::Mount]);

    // (mutation, field named in the error)
    type Mutate = fn(&mut cri::ContainerConfig);
    let cases: Vec<(Mutate, &str)> = vec![
        (|c| c.metadata = None, "metadata.name"),
        (
            |c| {
                c.mounts = vec![cri::Mount {
                    container_path: "/data".into(),
                    host_path: "/nonexistent/crust-test".into(),
                    ..Default::default()
                }]
            },
            "mounts[0].host_path",
        ),
        (
            |c| {
                if let Some(l) = c.linux.as_mut() {
                    l.security_context = Some(cri::LinuxContainerSecurityContext {
                        run_as_username: "nobody".into(),
                        ..Default::default()
                    });
                }
            },
            "run_as_username",
        ),
        (|c| c.working_dir = "rel".into(), "working_dir"),
        (
            |c| {
                c.devices = vec![cri::Device {
                    host_path: "/dev/nope-crust".into(),
                    container_path: "/dev/x".into(),
                    permissions: "rwm".into(),
                }]
            },
            "devices[0].host_path",
        ),
    ];
    for (mutate, field) in cases {
        let mut cfg = config(None);
        mutate(&mut cfg);
        let e = build(&f, &cfg, &opts()).unwrap_err();
        assert!(e.is_invalid_argument(), "{e}");
        assert!(e.to_string().contains(field), "{e} !~ {field}");
    }
    // Empty argv.
    let e = container_spec_with(
        "abc",
        &config(None),
        &f.sandbox,
        &ImageSpecInfo::default(),
        &f.rootfs,
        &opts(),
        &FakeHost::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("command"), "{e}");
}

#[test]
fn write_config_fails_cleanly() {
    let spec = Spec::default();
    let e = write_config(Path::new("/nonexistent/crust-bundle"), &spec).unwrap_err();
    assert!(!e.is_invalid_argument());
    assert!(e.to_string().contains("/nonexistent/crust-bundle"), "{e}");
}

/// Manual smoke test against a real runtime: with `CRUST_SPEC_SMOKE_BUNDLE=<bundle>` (holding
/// `rootfs/`), writes `<bundle>/config.json` for `CRUST_SPEC_SMOKE_CMD` (space separated)
/// with host namespaces; `CRUST_SPEC_SMOKE_PRIVILEGED=1` makes it privileged and
/// `CRUST_SPEC_SMOKE_SECCOMP=1` applies the built-in profile. Then `runc run` it by hand.
#[test]
#[ignore = "manual: needs a bundle directory and a runtime"]
fn smoke_bundle() {
    let Ok(bundle) = std::env::var("CRUST_SPEC_SMOKE_BUNDLE") else {
        return;
    };
    let bundle = PathBuf::from(bundle);
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let privileged = env("CRUST_SPEC_SMOKE_PRIVILEGED") == "1";
    let sc = cri::LinuxContainerSecurityContext {
        privileged,
        seccomp: Some(cri::SecurityProfile {
            profile_type: if env("CRUST_SPEC_SMOKE_SECCOMP") == "1" {
                0
            } else {
                1
            },
            localhost_ref: String::new(),
        }),
        run_as_username: env("CRUST_SPEC_SMOKE_USER"),
        ..Default::default()
    };
    let mut cfg = config(Some(sc));
    cfg.command = env("CRUST_SPEC_SMOKE_CMD")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let sandbox = SandboxSpecInfo {
        pod_id: "smoke".into(),
        hostname: "smoke".into(),
        pid_ns: PidNs::Container,
        privileged: true,
        ..Default::default()
    };
    let image = ImageSpecInfo {
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    let o = SpecOptions {
        oom_score_adj_min: std::fs::read_to_string("/proc/self/oom_score_adj")
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
        cgroups_path: "/crust-smoke".into(),
        ..Default::default()
    };
    let spec = container_spec("smoke", &cfg, &sandbox, &image, &bundle.join("rootfs"), &o).unwrap();
    write_config(&bundle, &spec).unwrap();
}
