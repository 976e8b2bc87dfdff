//! crictl pod config JSON -> CRI `PodSandboxConfig` (`crictl runp pod.json`).

use crust_proto::cri;
use serde_json::Value;

use super::{
    ConfigJsonError, Obj, Parsed, int64_value, namespace_options, profile, resources, selinux,
    supplemental_groups_policy,
};

fn metadata_pod(
    mut o: Obj<'_>,
    w: &mut Vec<String>,
) -> Result<cri::PodSandboxMetadata, ConfigJsonError> {
    let m = cri::PodSandboxMetadata {
        name: o.string("name")?,
        uid: o.string("uid")?,
        namespace: o.string("namespace")?,
        attempt: o.int("attempt")?,
    };
    o.finish(w);
    Ok(m)
}

// The deprecated `seccomp_profile_path`/`apparmor_profile` strings are still read: older
// crictl configs use them and runtimes still honour them when the typed fields are unset.
#[allow(deprecated)]
fn pod_security(
    mut o: Obj<'_>,
    w: &mut Vec<String>,
) -> Result<cri::LinuxSandboxSecurityContext, ConfigJsonError> {
    let r = cri::LinuxSandboxSecurityContext {
        namespace_options: o
            .obj("namespace_options")?
            .map(|n| namespace_options(n, w))
            .transpose()?,
        selinux_options: selinux(&mut o, w)?,
        run_as_user: int64_value(&mut o, "run_as_user")?,
        run_as_group: int64_value(&mut o, "run_as_group")?,
        readonly_rootfs: o.bool("readonly_rootfs")?,
        supplemental_groups: o.ints("supplemental_groups")?,
        supplemental_groups_policy: supplemental_groups_policy(&mut o)?,
        privileged: o.bool("privileged")?,
        seccomp: profile(&mut o, "seccomp", w)?,
        apparmor: profile(&mut o, "apparmor", w)?,
        seccomp_profile_path: o.string("seccomp_profile_path")?,
    };
    o.finish(w);
    Ok(r)
}

/// Map a crictl pod config (`crictl runp pod.json`).
pub fn pod_config(v: &Value) -> Result<Parsed<cri::PodSandboxConfig>, ConfigJsonError> {
    let mut w = Vec::new();
    let mut o = Obj::new(v, "")?;
    let mut cfg = cri::PodSandboxConfig {
        metadata: o
            .obj("metadata")?
            .map(|m| metadata_pod(m, &mut w))
            .transpose()?,
        hostname: o.string("hostname")?,
        log_directory: o.string("log_directory")?,
        labels: o.string_map("labels")?,
        annotations: o.string_map("annotations")?,
        ..Default::default()
    };
    if let Some(mut d) = o.obj("dns_config")? {
        cfg.dns_config = Some(cri::DnsConfig {
            servers: d.strings("servers")?,
            searches: d.strings("searches")?,
            options: d.strings("options")?,
        });
        d.finish(&mut w);
    }
    for mut p in o.objs("port_mappings")? {
        cfg.port_mappings.push(cri::PortMapping {
            protocol: p.enumeration("protocol", "TCP, UDP, SCTP or 0-2", |s| {
                cri::Protocol::from_str_name(s).map(|p| p as i32)
            })?,
            container_port: p.int("container_port")?,
            host_port: p.int("host_port")?,
            host_ip: p.string("host_ip")?,
        });
        p.finish(&mut w);
    }
    if let Some(mut l) = o.obj("linux")? {
        cfg.linux = Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: l.string("cgroup_parent")?,
            security_context: l
                .obj("security_context")?
                .map(|s| pod_security(s, &mut w))
                .transpose()?,
            sysctls: l.string_map("sysctls")?,
            overhead: l
                .obj("overhead")?
                .map(|r| resources(r, &mut w))
                .transpose()?,
            resources: l
                .obj("resources")?
                .map(|r| resources(r, &mut w))
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
    fn crictl_pod_config_snake_case() {
        let v = json!({
            "metadata": {"name": "nginx-sandbox", "namespace": "default", "attempt": 1, "uid": "hdishd83djaidwnduwk28bcsb"},
            "hostname": "web",
            "log_directory": "/tmp",
            "dns_config": {"servers": ["8.8.8.8"], "searches": ["svc.local"], "options": ["ndots:5"]},
            "port_mappings": [{"protocol": "UDP", "container_port": 53, "host_port": "5353", "host_ip": "127.0.0.1"}],
            "labels": {"app": "web", "my_label": "x"},
            "annotations": {"a_b": "c"},
            "linux": {
                "cgroup_parent": "/kubepods",
                "sysctls": {"net.ipv4.ip_forward": "1"},
                "security_context": {
                    "namespace_options": {"network": 2, "pid": "POD", "ipc": "node"},
                    "run_as_user": {"value": 1000},
                    "run_as_group": 100,
                    "supplemental_groups": [1, "2"],
                    "privileged": true,
                    "seccomp": {"profile_type": "RuntimeDefault"}
                },
                "resources": {"cpu_shares": 512, "memory_limit_in_bytes": "1048576"}
            }
        });
        let p = pod_config(&v).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let c = p.config;
        let m = c.metadata.unwrap();
        assert_eq!(
            (m.name.as_str(), m.namespace.as_str(), m.attempt),
            ("nginx-sandbox", "default", 1)
        );
        assert_eq!(m.uid, "hdishd83djaidwnduwk28bcsb");
        assert_eq!(c.hostname, "web");
        assert_eq!(c.log_directory, "/tmp");
        assert_eq!(c.dns_config.unwrap().options, vec!["ndots:5"]);
        let pm = &c.port_mappings[0];
        assert_eq!(pm.protocol, cri::Protocol::Udp as i32);
        assert_eq!((pm.container_port, pm.host_port), (53, 5353));
        assert_eq!(c.labels["my_label"], "x");
        assert_eq!(c.annotations["a_b"], "c");
        let l = c.linux.unwrap();
        assert_eq!(l.cgroup_parent, "/kubepods");
        assert_eq!(l.sysctls["net.ipv4.ip_forward"], "1");
        let sc = l.security_context.unwrap();
        let ns = sc.namespace_options.unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
        assert_eq!(ns.pid, cri::NamespaceMode::Pod as i32);
        assert_eq!(ns.ipc, cri::NamespaceMode::Node as i32);
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert_eq!(sc.run_as_group.unwrap().value, 100);
        assert_eq!(sc.supplemental_groups, vec![1, 2]);
        assert!(sc.privileged);
        assert_eq!(
            sc.seccomp.unwrap().profile_type,
            cri::security_profile::ProfileType::RuntimeDefault as i32
        );
        let r = l.resources.unwrap();
        assert_eq!((r.cpu_shares, r.memory_limit_in_bytes), (512, 1_048_576));
    }
}
