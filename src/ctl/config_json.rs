//! crictl-style JSON config files -> CRI `PodSandboxConfig` / `ContainerConfig`.
//!
//! `crictl runp pod.json` and `crictl create POD ctr.json pod.json` read the CRI messages in
//! their protobuf JSON form. Protobuf JSON (proto3 JSON mapping) spells fields in lowerCamelCase
//! but parsers must also accept the original snake_case names, enums by name or number and
//! 64-bit integers as numbers or strings; this reader does the same. Unknown keys are reported
//! as warnings (crictl silently drops them, which hides typos); a value of the wrong type is an
//! error naming the key path (`linux.security_context.run_as_user.value`).
//!
//! The mapping is written by hand rather than via the generated serde derives because those
//! demand every field and know only snake_case.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crust_proto::cri;
use serde_json::{Map, Value};

/// Errors reading a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigJsonError {
    /// The file cannot be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("config file {path} is not valid JSON")]
    Parse {
        /// The file.
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A key holds a value of the wrong type or an invalid value.
    #[error("config key `{key}`: expected {expected}, found {found}")]
    Type {
        /// Dotted key path.
        key: String,
        /// What was expected.
        expected: &'static str,
        /// What was found (a short rendering of the value).
        found: String,
    },
}

/// A parsed config and the warnings (unknown keys) found while reading it.
#[derive(Debug)]
pub struct Parsed<T> {
    /// The CRI message.
    pub config: T,
    /// Unknown keys, as `key path` strings, for the caller to print.
    pub warnings: Vec<String>,
}

/// Read and parse a JSON file.
pub fn read_json(path: &Path) -> Result<Value, ConfigJsonError> {
    let text = std::fs::read(path).map_err(|source| ConfigJsonError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| ConfigJsonError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// `lower_snake_case` -> `lowerCamelCase` (proto3 JSON names).
fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn render(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

fn type_err(key: &str, expected: &'static str, v: &Value) -> ConfigJsonError {
    ConfigJsonError::Type {
        key: key.to_owned(),
        expected,
        found: render(v),
    }
}

/// One JSON object being read; remembers which keys were consumed.
struct Obj<'a> {
    map: Option<&'a Map<String, Value>>,
    path: String,
    used: HashSet<&'a str>,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: &str) -> Result<Self, ConfigJsonError> {
        let map = match v {
            Value::Object(m) => Some(m),
            Value::Null => None,
            other => {
                let key = if path.is_empty() { "<top level>" } else { path };
                return Err(type_err(key, "an object", other));
            }
        };
        Ok(Obj {
            map,
            path: path.to_owned(),
            used: HashSet::new(),
        })
    }

    fn key(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The value under `snake` or its camelCase spelling; `null` counts as absent.
    fn get(&mut self, snake: &str) -> Option<(&'a Value, String)> {
        let map = self.map?;
        let camel = camel(snake);
        for (k, v) in map.iter() {
            if k == snake || *k == camel {
                self.used.insert(k.as_str());
                if v.is_null() {
                    return None;
                }
                return Some((v, self.key(snake)));
            }
        }
        None
    }

    fn string(&mut self, k: &str) -> Result<String, ConfigJsonError> {
        match self.get(k) {
            None => Ok(String::new()),
            Some((Value::String(s), _)) => Ok(s.clone()),
            Some((v, key)) => Err(type_err(&key, "a string", v)),
        }
    }

    fn bool(&mut self, k: &str) -> Result<bool, ConfigJsonError> {
        match self.get(k) {
            None => Ok(false),
            Some((Value::Bool(b), _)) => Ok(*b),
            Some((v, key)) => Err(type_err(&key, "true or false", v)),
        }
    }

    fn i64(&mut self, k: &str) -> Result<i64, ConfigJsonError> {
        match self.get(k) {
            None => Ok(0),
            Some((v, key)) => as_i64(v, &key),
        }
    }

    fn int<T: TryFrom<i64> + Default>(&mut self, k: &str) -> Result<T, ConfigJsonError> {
        match self.get(k) {
            None => Ok(T::default()),
            Some((v, key)) => {
                let n = as_i64(v, &key)?;
                T::try_from(n).map_err(|_| type_err(&key, "an integer in range", v))
            }
        }
    }

    fn strings(&mut self, k: &str) -> Result<Vec<String>, ConfigJsonError> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some((Value::Array(a), key)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(type_err(&format!("{key}[{i}]"), "a string", other)),
                })
                .collect(),
            Some((v, key)) => Err(type_err(&key, "an array of strings", v)),
        }
    }

    fn ints(&mut self, k: &str) -> Result<Vec<i64>, ConfigJsonError> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some((Value::Array(a), key)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| as_i64(v, &format!("{key}[{i}]")))
                .collect(),
            Some((v, key)) => Err(type_err(&key, "an array of integers", v)),
        }
    }

    fn string_map(&mut self, k: &str) -> Result<HashMap<String, String>, ConfigJsonError> {
        match self.get(k) {
            None => Ok(HashMap::new()),
            Some((Value::Object(m), key)) => m
                .iter()
                .map(|(name, v)| match v {
                    Value::String(s) => Ok((name.clone(), s.clone())),
                    other => Err(type_err(&format!("{key}.{name}"), "a string", other)),
                })
                .collect(),
            Some((v, key)) => Err(type_err(&key, "an object of strings", v)),
        }
    }

    fn obj(&mut self, k: &str) -> Result<Option<Obj<'a>>, ConfigJsonError> {
        match self.get(k) {
            None => Ok(None),
            Some((v, key)) => Obj::new(v, &key).map(Some),
        }
    }

    fn objs(&mut self, k: &str) -> Result<Vec<Obj<'a>>, ConfigJsonError> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some((Value::Array(a), key)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| Obj::new(v, &format!("{key}[{i}]")))
                .collect(),
            Some((v, key)) => Err(type_err(&key, "an array of objects", v)),
        }
    }

    /// An enum by name (exact or upper-cased) or by number.
    fn enumeration(
        &mut self,
        k: &str,
        expected: &'static str,
        by_name: fn(&str) -> Option<i32>,
    ) -> Result<i32, ConfigJsonError> {
        match self.get(k) {
            None => Ok(0),
            Some((Value::String(s), key)) => by_name(s)
                .or_else(|| by_name(&s.to_uppercase()))
                .ok_or_else(|| type_err(&key, expected, &Value::String(s.clone()))),
            Some((v @ Value::Number(_), key)) => {
                let n = as_i64(v, &key)?;
                i32::try_from(n).map_err(|_| type_err(&key, expected, v))
            }
            Some((v, key)) => Err(type_err(&key, expected, v)),
        }
    }

    /// Keys ignored on purpose (no meaning on Linux).
    fn ignore(&mut self, k: &str) {
        let _ = self.get(k);
    }

    /// Record keys that were never read.
    fn finish(self, warnings: &mut Vec<String>) {
        if let Some(map) = self.map {
            for k in map.keys() {
                if !self.used.contains(k.as_str()) {
                    warnings.push(self.key(k));
                }
            }
        }
    }
}

fn as_i64(v: &Value, key: &str) -> Result<i64, ConfigJsonError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| type_err(key, "an integer", v)),
        // proto3 JSON writes 64-bit integers as strings.
        Value::String(s) => s.parse().map_err(|_| type_err(key, "an integer", v)),
        other => Err(type_err(key, "an integer", other)),
    }
}

/// `{"value": N}` wrapper (Int64Value); a bare number is accepted too.
fn int64_value(o: &mut Obj<'_>, k: &str) -> Result<Option<cri::Int64Value>, ConfigJsonError> {
    match o.get(k) {
        None => Ok(None),
        Some((v @ (Value::Number(_) | Value::String(_)), key)) => Ok(Some(cri::Int64Value {
            value: as_i64(v, &key)?,
        })),
        Some((v, key)) => {
            let mut wrapper = Obj::new(v, &key)?;
            Ok(Some(cri::Int64Value {
                value: wrapper.i64("value")?,
            }))
        }
    }
}

fn metadata_pod(
    o: Obj<'_>,
    w: &mut Vec<String>,
) -> Result<cri::PodSandboxMetadata, ConfigJsonError> {
    let mut o = o;
    let m = cri::PodSandboxMetadata {
        name: o.string("name")?,
        uid: o.string("uid")?,
        namespace: o.string("namespace")?,
        attempt: o.int("attempt")?,
    };
    o.finish(w);
    Ok(m)
}

fn ns_mode(s: &str) -> Option<i32> {
    cri::NamespaceMode::from_str_name(s).map(|m| m as i32)
}

fn namespace_options(
    mut o: Obj<'_>,
    w: &mut Vec<String>,
) -> Result<cri::NamespaceOption, ConfigJsonError> {
    const MODES: &str = "a namespace mode (POD, CONTAINER, NODE, TARGET or 0-3)";
    let n = cri::NamespaceOption {
        network: o.enumeration("network", MODES, ns_mode)?,
        pid: o.enumeration("pid", MODES, ns_mode)?,
        ipc: o.enumeration("ipc", MODES, ns_mode)?,
        target_id: o.string("target_id")?,
        userns_options: match o.obj("userns_options")? {
            None => None,
            Some(mut u) => {
                let ns = cri::UserNamespace {
                    mode: u.enumeration("mode", MODES, ns_mode)?,
                    uids: id_mappings(&mut u, "uids", w)?,
                    gids: id_mappings(&mut u, "gids", w)?,
                };
                u.finish(w);
                Some(ns)
            }
        },
    };
    o.finish(w);
    Ok(n)
}

fn id_mappings(
    o: &mut Obj<'_>,
    k: &str,
    w: &mut Vec<String>,
) -> Result<Vec<cri::IdMapping>, ConfigJsonError> {
    o.objs(k)?
        .into_iter()
        .map(|mut m| {
            let r = cri::IdMapping {
                host_id: m.int("host_id")?,
                container_id: m.int("container_id")?,
                length: m.int("length")?,
            };
            m.finish(w);
            Ok(r)
        })
        .collect()
}

fn selinux(
    o: &mut Obj<'_>,
    w: &mut Vec<String>,
) -> Result<Option<cri::SeLinuxOption>, ConfigJsonError> {
    let Some(mut s) = o.obj("selinux_options")? else {
        return Ok(None);
    };
    let r = cri::SeLinuxOption {
        user: s.string("user")?,
        role: s.string("role")?,
        r#type: s.string("type")?,
        level: s.string("level")?,
    };
    s.finish(w);
    Ok(Some(r))
}

fn profile(
    o: &mut Obj<'_>,
    k: &str,
    w: &mut Vec<String>,
) -> Result<Option<cri::SecurityProfile>, ConfigJsonError> {
    let Some(mut p) = o.obj(k)? else {
        return Ok(None);
    };
    let r = cri::SecurityProfile {
        profile_type: p.enumeration(
            "profile_type",
            "RuntimeDefault, Unconfined or Localhost",
            |s| {
                cri::security_profile::ProfileType::from_str_name(s)
                    .or(match s.to_ascii_lowercase().as_str() {
                        "runtimedefault" => {
                            Some(cri::security_profile::ProfileType::RuntimeDefault)
                        }
                        "unconfined" => Some(cri::security_profile::ProfileType::Unconfined),
                        "localhost" => Some(cri::security_profile::ProfileType::Localhost),
                        _ => None,
                    })
                    .map(|t| t as i32)
            },
        )?,
        localhost_ref: p.string("localhost_ref")?,
    };
    p.finish(w);
    Ok(Some(r))
}

/// `LinuxContainerResources` (also a pod's `overhead`/`resources`).
fn resources(
    mut o: Obj<'_>,
    w: &mut Vec<String>,
) -> Result<cri::LinuxContainerResources, ConfigJsonError> {
    let mut hugepage_limits = Vec::new();
    for mut h in o.objs("hugepage_limits")? {
        hugepage_limits.push(cri::HugepageLimit {
            page_size: h.string("page_size")?,
            limit: h.int("limit")?,
        });
        h.finish(w);
    }
    let r = cri::LinuxContainerResources {
        cpu_period: o.i64("cpu_period")?,
        cpu_quota: o.i64("cpu_quota")?,
        cpu_shares: o.i64("cpu_shares")?,
        memory_limit_in_bytes: o.i64("memory_limit_in_bytes")?,
        oom_score_adj: o.i64("oom_score_adj")?,
        cpuset_cpus: o.string("cpuset_cpus")?,
        cpuset_mems: o.string("cpuset_mems")?,
        hugepage_limits,
        unified: o.string_map("unified")?,
        memory_swap_limit_in_bytes: o.i64("memory_swap_limit_in_bytes")?,
    };
    o.finish(w);
    Ok(r)
}

fn supplemental_groups_policy(o: &mut Obj<'_>) -> Result<i32, ConfigJsonError> {
    o.enumeration("supplemental_groups_policy", "Merge or Strict", |s| {
        cri::SupplementalGroupsPolicy::from_str_name(s).map(|p| p as i32)
    })
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

    #[test]
    fn unknown_keys_are_warnings_with_paths() {
        let v = json!({
            "metadata": {"name": "x", "nmae": "typo"},
            "bogus": 1,
            "linux": {"security_context": {"privileged": false, "what": null}},
            "windows": {},
            "hostname": null
        });
        let mut w = pod_config(&v).unwrap().warnings;
        w.sort();
        assert_eq!(
            w,
            vec!["bogus", "linux.security_context.what", "metadata.nmae"]
        );
    }

    #[test]
    fn bad_types_name_the_key() {
        let cases = [
            (json!({"hostname": 5}), "hostname", "a string"),
            (
                json!({"metadata": {"attempt": -1}}),
                "metadata.attempt",
                "an integer in range",
            ),
            (json!({"metadata": "x"}), "metadata", "an object"),
            (json!({"labels": {"a": 1}}), "labels.a", "a string"),
            (
                json!({"linux": {"security_context": {"run_as_user": {"value": "abc"}}}}),
                "linux.security_context.run_as_user.value",
                "an integer",
            ),
            (
                json!({"linux": {"security_context": {"namespace_options": {"network": "HOSTY"}}}}),
                "linux.security_context.namespace_options.network",
                "a namespace mode (POD, CONTAINER, NODE, TARGET or 0-3)",
            ),
            (
                json!({"port_mappings": [{"host_port": 1.5}]}),
                "port_mappings[0].host_port",
                "an integer",
            ),
            (
                json!({"dns_config": {"servers": ["a", 1]}}),
                "dns_config.servers[1]",
                "a string",
            ),
            (json!([1]), "<top level>", "an object"),
        ];
        for (v, key, expected) in cases {
            match pod_config(&v) {
                Err(ConfigJsonError::Type {
                    key: k,
                    expected: e,
                    ..
                }) => {
                    assert_eq!((k.as_str(), e), (key, expected), "{v}");
                }
                other => panic!("{v}: {other:?}"),
            }
        }
        let e = container_config(&json!({"tty": "yes"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config key `tty`: expected true or false, found \"yes\""
        );
    }

    #[test]
    fn files_are_read_and_errors_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("pod.json");
        std::fs::write(&ok, r#"{"metadata": {"name": "p"}}"#).unwrap();
        let v = read_json(&ok).unwrap();
        assert_eq!(pod_config(&v).unwrap().config.metadata.unwrap().name, "p");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{").unwrap();
        assert!(matches!(
            read_json(&bad),
            Err(ConfigJsonError::Parse { .. })
        ));
        let missing = dir.path().join("missing.json");
        let e = read_json(&missing).unwrap_err();
        assert!(e.to_string().contains("missing.json"), "{e}");
    }
}
