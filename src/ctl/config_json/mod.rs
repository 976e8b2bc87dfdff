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
//! demand every field and know only snake_case. This file holds the reader and the parts
//! both messages share; [`pod`] and [`container`] map the two top-level messages.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crust_proto::cri;
use serde_json::{Map, Value};

mod container;
mod pod;

pub use container::container_config;
pub use pod::pod_config;

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
pub(crate) fn camel(snake: &str) -> String {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

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
