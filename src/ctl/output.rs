//! Output helpers shared by the pod and container commands of `crust ctl`: crictl-shaped
//! tables, "N minutes ago" times (docker/go-units `HumanDuration`, which crictl uses), RFC 3339
//! timestamps, short ids, id-prefix resolution and a CRI -> JSON rendering for `inspect`.
//!
//! The JSON rendering follows what `crictl inspect` prints (protobuf JSON): lowerCamelCase
//! keys, enums by name, timestamps as RFC 3339 strings; user maps (labels, annotations,
//! sysctls, unified) keep their keys untouched.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crust_proto::cri;
use serde_json::{Map, Value};

use super::CtlError;
use super::config_json::camel;

/// crictl truncates ids to 13 characters in tables.
pub const SHORT_ID: usize = 13;

/// The first 13 characters of an id (without a `sha256:` prefix).
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..SHORT_ID).unwrap_or(id)
}

/// Render rows as left-aligned columns separated by three spaces (crictl's tabwriter look).
pub fn render_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let w = widths.get(i).copied().unwrap_or(0);
                let pad = w.saturating_sub(cell.chars().count()) + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// docker/go-units `HumanDuration`: "Less than a second", "5 seconds", "About a minute", ...
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let hours = ((d.as_secs_f64() / 3600.0) + 0.5) as u64;
    if secs < 1 {
        "Less than a second".to_owned()
    } else if secs == 1 {
        "1 second".to_owned()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if secs / 60 == 1 {
        "About a minute".to_owned()
    } else if secs / 60 < 60 {
        format!("{} minutes", secs / 60)
    } else if hours == 1 {
        "About an hour".to_owned()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// "5 seconds ago" for a CRI timestamp (nanoseconds since the epoch).
pub fn ago(created_ns: i64, now: SystemTime) -> String {
    let created = UNIX_EPOCH + Duration::from_nanos(u64::try_from(created_ns).unwrap_or(0));
    let d = now.duration_since(created).unwrap_or(Duration::ZERO);
    format!("{} ago", human_duration(d))
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's civil-from-days algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// RFC 3339 with nanoseconds (trailing zeros trimmed, like Go's `RFC3339Nano`), UTC.
pub fn rfc3339_nano(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Pick the one id that `prefix` names: an exact match wins, else the single id starting
/// with it. `what` names the kind of object in errors ("container", "pod sandbox").
pub fn resolve_prefix<'a>(
    what: &'static str,
    prefix: &str,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<String, CtlError> {
    if prefix.is_empty() {
        return Err(CtlError::NotFound {
            what,
            id: prefix.to_owned(),
        });
    }
    let mut matches: Vec<&str> = Vec::new();
    for id in ids {
        if id == prefix {
            return Ok(id.to_owned());
        }
        if id.starts_with(prefix) && !matches.contains(&id) {
            matches.push(id);
        }
    }
    match matches.as_slice() {
        [] => Err(CtlError::NotFound {
            what,
            id: prefix.to_owned(),
        }),
        [one] => Ok((*one).to_owned()),
        many => Err(CtlError::Ambiguous {
            what,
            prefix: prefix.to_owned(),
            matches: many.iter().map(|m| short_id(m).to_owned()).collect(),
        }),
    }
}

/// Newest first (crictl's order), keeping the first `last` when given.
pub fn newest<T>(mut items: Vec<T>, created: fn(&T) -> i64, last: Option<usize>) -> Vec<T> {
    items.sort_by_key(|i| std::cmp::Reverse(created(i)));
    if let Some(n) = last {
        items.truncate(n);
    }
    items
}

/// crictl's state words for tables.
pub fn container_state(state: i32) -> &'static str {
    match cri::ContainerState::try_from(state) {
        Ok(cri::ContainerState::ContainerCreated) => "Created",
        Ok(cri::ContainerState::ContainerRunning) => "Running",
        Ok(cri::ContainerState::ContainerExited) => "Exited",
        _ => "Unknown",
    }
}

/// crictl's state words for pod tables.
pub fn pod_state(state: i32) -> &'static str {
    match cri::PodSandboxState::try_from(state) {
        Ok(cri::PodSandboxState::SandboxReady) => "Ready",
        Ok(cri::PodSandboxState::SandboxNotready) => "NotReady",
        Err(_) => "Unknown",
    }
}

/// Which enum a `state` field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Container messages (`ContainerState`).
    Container,
    /// Pod sandbox messages (`PodSandboxState`).
    Pod,
}

/// Keys whose object values are user maps: their keys are data, not field names.
const USER_MAPS: &[&str] = &[
    "labels",
    "annotations",
    "sysctls",
    "unified",
    "label_selector",
];
/// Nanosecond timestamps.
const TIMES: &[&str] = &["created_at", "started_at", "finished_at", "timestamp"];

fn enum_name(kind: Kind, parent: &str, key: &str, n: i32) -> Option<&'static str> {
    let ns = parent == "options" || parent == "namespace_options" || parent == "userns_options";
    match key {
        "state" if kind == Kind::Container => cri::ContainerState::try_from(n)
            .ok()
            .map(|s| s.as_str_name()),
        "state" => cri::PodSandboxState::try_from(n)
            .ok()
            .map(|s| s.as_str_name()),
        "network" | "pid" | "ipc" | "mode" if ns => cri::NamespaceMode::try_from(n)
            .ok()
            .map(|s| s.as_str_name()),
        "propagation" => cri::MountPropagation::try_from(n)
            .ok()
            .map(|s| s.as_str_name()),
        "protocol" => cri::Protocol::try_from(n).ok().map(|s| s.as_str_name()),
        "profile_type" => cri::security_profile::ProfileType::try_from(n)
            .ok()
            .map(|s| s.as_str_name()),
        "supplemental_groups_policy" => cri::SupplementalGroupsPolicy::try_from(n)
            .ok()
            .map(|s| s.as_str_name()),
        _ => None,
    }
}

fn transform(kind: Kind, parent: &str, v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let v = if USER_MAPS.contains(&k.as_str()) {
                    v
                } else if TIMES.contains(&k.as_str()) {
                    match v.as_i64() {
                        Some(ns) => Value::String(rfc3339_nano(ns)),
                        None => v,
                    }
                } else if let Some(name) = v
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .and_then(|n| enum_name(kind, parent, &k, n))
                {
                    Value::String(name.to_owned())
                } else {
                    transform(kind, &k, v)
                };
                out.insert(camel(&k), v);
            }
            Value::Object(out)
        }
        Value::Array(a) => {
            Value::Array(a.into_iter().map(|v| transform(kind, parent, v)).collect())
        }
        other => other,
    }
}

/// A CRI message as crictl-style JSON.
pub fn cri_json<T: serde::Serialize>(v: &T, kind: Kind) -> Result<Value, CtlError> {
    let raw = serde_json::to_value(v).map_err(CtlError::Json)?;
    Ok(transform(kind, "", raw))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let ids = ["abc123", "abd456", "ff00"];
        assert_eq!(resolve_prefix("container", "abc", ids).unwrap(), "abc123");
        assert_eq!(resolve_prefix("container", "ff00", ids).unwrap(), "ff00");
        match resolve_prefix("container", "ab", ids) {
            Err(CtlError::Ambiguous { matches, .. }) => assert_eq!(matches, ["abc123", "abd456"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolve_prefix("pod sandbox", "zz", ids),
            Err(CtlError::NotFound { .. })
        ));
        assert!(matches!(
            resolve_prefix("pod sandbox", "", ids),
            Err(CtlError::NotFound { .. })
        ));
        // An exact id wins even if it is also a prefix of another id.
        assert_eq!(
            resolve_prefix("container", "ab", ["ab", "abc"]).unwrap(),
            "ab"
        );
        let e = resolve_prefix("container", "a", ["a1", "a2"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "container id prefix \"a\" is ambiguous: matches a1, a2"
        );
    }

    #[test]
    fn newest_first_and_last_n() {
        let v = newest(vec![1i64, 5, 3], |x| *x, None);
        assert_eq!(v, [5, 3, 1]);
        assert_eq!(newest(vec![1i64, 5, 3], |x| *x, Some(2)), [5, 3]);
        assert!(newest(vec![1i64], |x| *x, Some(0)).is_empty());
    }

    #[test]
    fn durations_like_go_units() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(42)), "42 seconds");
        assert_eq!(human_duration(s(90)), "About a minute");
        assert_eq!(human_duration(s(600)), "10 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86_400)), "3 days");
        assert_eq!(human_duration(s(21 * 86_400)), "3 weeks");
        assert_eq!(human_duration(s(90 * 86_400)), "3 months");
        assert_eq!(human_duration(s(800 * 86_400)), "2 years");
        let now = UNIX_EPOCH + s(100);
        assert_eq!(ago(95_000_000_000, now), "5 seconds ago");
        // A clock skew (created in the future) is not an error.
        assert_eq!(ago(200_000_000_000, now), "Less than a second ago");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            rfc3339_nano(951_782_400_500_000_000),
            "2000-02-29T00:00:00.5Z"
        );
        assert_eq!(rfc3339_nano(-1_000_000_000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn tables_align() {
        let rows = vec![
            vec!["A".to_owned(), "BB".to_owned(), "C".to_owned()],
            vec!["long".to_owned(), "x".to_owned(), String::new()],
        ];
        assert_eq!(render_table(&rows), "A      BB   C\nlong   x\n");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789abc");
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn status_json_is_crictl_shaped() {
        let st = cri::ContainerStatus {
            id: "c1".to_owned(),
            state: cri::ContainerState::ContainerExited as i32,
            created_at: 1_700_000_000_000_000_000,
            exit_code: 2,
            labels: [("my_label".to_owned(), "v".to_owned())].into(),
            mounts: vec![cri::Mount {
                container_path: "/data".to_owned(),
                propagation: cri::MountPropagation::PropagationHostToContainer as i32,
                ..Default::default()
            }],
            log_path: "/var/log/c1.log".to_owned(),
            ..Default::default()
        };
        let v = cri_json(&st, Kind::Container).unwrap();
        assert_eq!(v["state"], "CONTAINER_EXITED");
        assert_eq!(v["createdAt"], "2023-11-14T22:13:20Z");
        assert_eq!(v["exitCode"], 2);
        assert_eq!(v["logPath"], "/var/log/c1.log");
        assert_eq!(v["labels"]["my_label"], "v");
        assert_eq!(v["mounts"][0]["containerPath"], "/data");
        assert_eq!(
            v["mounts"][0]["propagation"],
            "PROPAGATION_HOST_TO_CONTAINER"
        );

        let pod = cri::PodSandboxStatus {
            state: cri::PodSandboxState::SandboxNotready as i32,
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Node as i32,
                        ..Default::default()
                    }),
                }),
            }),
            ..Default::default()
        };
        let v = cri_json(&pod, Kind::Pod).unwrap();
        assert_eq!(v["state"], "SANDBOX_NOTREADY");
        assert_eq!(v["linux"]["namespaces"]["options"]["network"], "NODE");
        assert_eq!(v["linux"]["namespaces"]["options"]["pid"], "POD");
    }
}
