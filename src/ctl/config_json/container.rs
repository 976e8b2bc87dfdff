//! crictl container config JSON -> CRI `ContainerConfig` (`crictl create POD ctr.json pod.json`).

use crust_proto::cri;
use serde_json::Value;

use super::{
    ConfigJsonError, Obj, Parsed, id_mappings, int64_value, namespace_options, profile, resources,
    selinux, supplemental_groups_policy,
};

fn image_spec(mut o: Obj<'_>, w: &mut Vec<String>) -> Result<cri::ImageSpec, ConfigJsonError> {
    let r = cri::ImageSpec {
        image: o.string("image")?,
        annotations: o.string_map("annotations")?,
        user_specified_image: o.string("user_specified_image")?,
        runtime_handler: o.string("runtime_handler")?,
    };
    o.finish(w);
    Ok(r)
}

fn mount(mut m: Obj<'_>, w: &mut Vec<String>) -> Result<cri::Mount, ConfigJsonError> {
    let r = cri::Mount {
        container_path: m.string("container_path")?,
        host_path: m.string("host_path")?,
        readonly: m.bool("readonly")?,
        selinux_relabel: m.bool("selinux_relabel")?,
        propagation: m.enumeration("propagation", "a PROPAGATION_* name or 0-2", |s| {
            cri::MountPropagation::from_str_name(s).map(|p| p as i32)
        })?,
        uid_mappings: id_mappings(&mut m, "uid_mappings", w)?,
        gid_mappings: id_mappings(&mut m, "gid_mappings", w)?,
        recursive_read_only: m.bool("recursive_read_only")?,
        image: m.obj("image")?.map(|i| image_spec(i, w)).transpose()?,
    };
    m.finish(w);
    Ok(r)
}

#[allow(deprecated)]
fn container_security(
    mut o: Obj<'_>,
    w: &mut Vec<String>,
) -> Result<cri::LinuxContainerSecurityContext, ConfigJsonError> {
    let capabilities = match o.obj("capabilities")? {
        None => None,
        Some(mut c) => {
            let r = cri::Capability {
                add_capabilities: c.strings("add_capabilities")?,
                drop_capabilities: c.strings("drop_capabilities")?,
                add_ambient_capabilities: c.strings("add_ambient_capabilities")?,
            };
            c.finish(w);
            Some(r)
        }
    };
    let r = cri::LinuxContainerSecurityContext {
        capabilities,
        privileged: o.bool("privileged")?,
        namespace_options: o
            .obj("namespace_options")?
            .map(|n| namespace_options(n, w))
            .transpose()?,
        selinux_options: selinux(&mut o, w)?,
        run_as_user: int64_value(&mut o, "run_as_user")?,
        run_as_group: int64_value(&mut o, "run_as_group")?,
        run_as_username: o.string("run_as_username")?,
        readonly_rootfs: o.bool("readonly_rootfs")?,
        supplemental_groups: o.ints("supplemental_groups")?,
        supplemental_groups_policy: supplemental_groups_policy(&mut o)?,
        no_new_privs: o.bool("no_new_privs")?,
        masked_paths: o.strings("masked_paths")?,
        readonly_paths: o.strings("readonly_paths")?,
        seccomp: profile(&mut o, "seccomp", w)?,
        apparmor: profile(&mut o, "apparmor", w)?,
        apparmor_profile: o.string("apparmor_profile")?,
        seccomp_profile_path: o.string("seccomp_profile_path")?,
    };
    o.finish(w);
    Ok(r)
}

/// Map a crictl container config (`crictl create POD ctr.json pod.json`).
pub fn container_config(v: &Value) -> Result<Parsed<cri::ContainerConfig>, ConfigJsonError> {
    let mut w = Vec::new();
    let mut o = Obj::new(v, "")?;
    let mut cfg = cri::ContainerConfig {
        command: o.strings("command")?,
        args: o.strings("args")?,
        working_dir: o.string("working_dir")?,
        labels: o.string_map("labels")?,
        annotations: o.string_map("annotations")?,
        log_path: o.string("log_path")?,
        stdin: o.bool("stdin")?,
        stdin_once: o.bool("stdin_once")?,
        tty: o.bool("tty")?,
        ..Default::default()
    };
    if let Some(mut m) = o.obj("metadata")? {
        cfg.metadata = Some(cri::ContainerMetadata {
            name: m.string("name")?,
            attempt: m.int("attempt")?,
        });
        m.finish(&mut w);
    }
    cfg.image = o.obj("image")?.map(|i| image_spec(i, &mut w)).transpose()?;
    for mut e in o.objs("envs")? {
        cfg.envs.push(cri::KeyValue {
            key: e.string("key")?,
            value: e.string("value")?,
        });
        e.finish(&mut w);
    }
    for m in o.objs("mounts")? {
        cfg.mounts.push(mount(m, &mut w)?);
    }
    for mut d in o.objs("devices")? {
        cfg.devices.push(cri::Device {
            container_path: d.string("container_path")?,
            host_path: d.string("host_path")?,
            permissions: d.string("permissions")?,
        });
        d.finish(&mut w);
    }
    for mut d in o.objs("cdi_devices")? {
        cfg.cdi_devices.push(cri::CdiDevice {
            name: d.string("name")?,
        });
        d.finish(&mut w);
    }
    if let Some(mut l) = o.obj("linux")? {
        cfg.linux = Some(cri::LinuxContainerConfig {
            resources: l
                .obj("resources")?
                .map(|r| resources(r, &mut w))
                .transpose()?,
            security_context: l
                .obj("security_context")?
                .map(|s| container_security(s, &mut w))
                .transpose()?,
        });
        l.finish(&mut w);
    }
    o.ignore("windows");
    o.finish(&mut w);
    Ok(Parsed {
        config: cfg,
        warnings: w,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn camel_case_container_config() {
        let v = json!({
            "metadata": {"name": "busybox"},
            "image": {"image": "busybox:latest", "userSpecifiedImage": "busybox"},
            "command": ["top"],
            "args": ["-b"],
            "workingDir": "/tmp",
            "envs": [{"key": "A", "value": "1"}],
            "mounts": [{"containerPath": "/data", "hostPath": "/srv", "readonly": true,
                        "propagation": "PROPAGATION_BIDIRECTIONAL"}],
            "devices": [{"containerPath": "/dev/fuse", "hostPath": "/dev/fuse", "permissions": "rwm"}],
            "logPath": "busybox.0.log",
            "stdin": true, "stdinOnce": true, "tty": true,
            "linux": {
                "resources": {"cpuPeriod": 100000, "cpuQuota": 50000, "oomScoreAdj": 500,
                              "cpusetCpus": "0", "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
                              "unified": {"memory.high": "max"}},
                "securityContext": {
                    "capabilities": {"addCapabilities": ["NET_ADMIN"], "dropCapabilities": ["ALL"]},
                    "runAsUser": {"value": "0"},
                    "runAsUsername": "root",
                    "readonlyRootfs": true,
                    "noNewPrivs": true,
                    "maskedPaths": ["/proc/kcore"],
                    "readonlyPaths": [],
                    "namespaceOptions": {"pid": "CONTAINER"},
                    "seccomp": {"profileType": "Localhost", "localhostRef": "/p.json"},
                    "selinuxOptions": {"type": "spc_t"}
                }
            }
        });
        let p = container_config(&v).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let c = p.config;
        assert_eq!(c.metadata.unwrap().name, "busybox");
        let img = c.image.unwrap();
        assert_eq!(
            (img.image.as_str(), img.user_specified_image.as_str()),
            ("busybox:latest", "busybox")
        );
        assert_eq!(
            (c.command, c.args),
            (vec!["top".to_owned()], vec!["-b".to_owned()])
        );
        assert_eq!(c.working_dir, "/tmp");
        assert_eq!(
            (c.envs[0].key.as_str(), c.envs[0].value.as_str()),
            ("A", "1")
        );
        let m = &c.mounts[0];
        assert_eq!(
            (m.container_path.as_str(), m.host_path.as_str(), m.readonly),
            ("/data", "/srv", true)
        );
        assert_eq!(
            m.propagation,
            cri::MountPropagation::PropagationBidirectional as i32
        );
        assert_eq!(c.devices[0].permissions, "rwm");
        assert_eq!(c.log_path, "busybox.0.log");
        assert!(c.stdin && c.stdin_once && c.tty);
        let l = c.linux.unwrap();
        let r = l.resources.unwrap();
        assert_eq!(
            (r.cpu_period, r.cpu_quota, r.oom_score_adj),
            (100_000, 50_000, 500)
        );
        assert_eq!(r.cpuset_cpus, "0");
        assert_eq!(r.hugepage_limits[0].page_size, "2MB");
        assert_eq!(r.unified["memory.high"], "max");
        let sc = l.security_context.unwrap();
        let caps = sc.capabilities.unwrap();
        assert_eq!(caps.add_capabilities, vec!["NET_ADMIN"]);
        assert_eq!(caps.drop_capabilities, vec!["ALL"]);
        assert_eq!(sc.run_as_user.unwrap().value, 0);
        assert_eq!(sc.run_as_username, "root");
        assert!(sc.readonly_rootfs && sc.no_new_privs);
        assert_eq!(sc.masked_paths, vec!["/proc/kcore"]);
        assert_eq!(
            sc.namespace_options.unwrap().pid,
            cri::NamespaceMode::Container as i32
        );
        let seccomp = sc.seccomp.unwrap();
        assert_eq!(
            seccomp.profile_type,
            cri::security_profile::ProfileType::Localhost as i32
        );
        assert_eq!(seccomp.localhost_ref, "/p.json");
        assert_eq!(sc.selinux_options.unwrap().r#type, "spc_t");
    }
}
