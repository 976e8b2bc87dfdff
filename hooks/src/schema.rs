//! One hook file, schema `1.0.0` of oci-hooks(5):
//!
//! ```json
//! { "version": "1.0.0",
//!   "hook": { "path": "/usr/libexec/oci/hooks.d/x", "args": ["x", "prestart"],
//!             "env": ["K=V"], "timeout": 5 },
//!   "when": { "always": true, "annotations": {"^key$": "value"},
//!             "commands": [".*/init$"], "hasBindMounts": true },
//!   "stages": ["prestart", "poststop"] }
//! ```
//!
//! Validation follows containers/common `pkg/hooks/1.0.0` (`Hook.Validate`): the version
//! must be `1.0.0`, `hook.path` must be set and exist, every `when` pattern must compile,
//! `stages` must be present and name known stages (crust has no extension stages, like
//! CRI-O). On top of that, from the documents both follow: `hook.path` must be absolute
//! and `hook.timeout` positive (OCI runtime spec, "POSIX-platform Hooks"), `stages` must
//! not be empty, and `when` must set at least one condition (oci-hooks(5): "at least one
//! must be specified"; upstream silently never matches such a hook, which hides the
//! mistake). Unknown fields are ignored, as Go's `encoding/json` does upstream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::HookError;
use crate::matching::When;

/// The only schema version read (the deprecated `0.1.0` schema is not supported).
pub const VERSION: &str = "1.0.0";

/// OCI runtime spec hook stages (runtime-spec `config.md`, "POSIX-platform Hooks").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// After the runtime environment is created, before pivot_root (deprecated in the
    /// spec, still run by runc; runtime namespace).
    Prestart,
    /// Same point as `prestart` (runtime namespace).
    CreateRuntime,
    /// Same point, but in the container's namespaces (before pivot_root).
    CreateContainer,
    /// In the container, right before the user process is executed.
    StartContainer,
    /// After the user process started (runtime namespace).
    Poststart,
    /// After the container is deleted (runtime namespace).
    Poststop,
}

impl Stage {
    /// Every stage, in lifecycle order.
    pub const ALL: [Stage; 6] = [
        Stage::Prestart,
        Stage::CreateRuntime,
        Stage::CreateContainer,
        Stage::StartContainer,
        Stage::Poststart,
        Stage::Poststop,
    ];

    /// The name used in hook files and in `config.json` `hooks`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prestart => "prestart",
            Stage::CreateRuntime => "createRuntime",
            Stage::CreateContainer => "createContainer",
            Stage::StartContainer => "startContainer",
            Stage::Poststart => "poststart",
            Stage::Poststop => "poststop",
        }
    }

    /// The stage named `name` (case-sensitive, as upstream).
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hook to inject: an OCI runtime spec hook entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Absolute path of the executable.
    pub path: PathBuf,
    /// argv, including argv[0] (empty: the runtime uses `path`).
    pub args: Vec<String>,
    /// Environment (`KEY=value`).
    pub env: Vec<String>,
    /// Seconds before the runtime aborts the hook.
    pub timeout: Option<i64>,
}

/// A validated hook file.
#[derive(Debug, Clone)]
pub struct HookFile {
    /// The hook.
    pub hook: Hook,
    /// When to inject it.
    pub when: When,
    /// Where to inject it, in file order.
    pub stages: Vec<Stage>,
}

#[derive(Deserialize)]
struct RawFile {
    version: Option<String>,
    hook: Option<RawHook>,
    when: Option<RawWhen>,
    stages: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawHook {
    path: Option<String>,
    args: Option<Vec<String>>,
    env: Option<Vec<String>>,
    timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawWhen {
    always: Option<bool>,
    annotations: Option<BTreeMap<String, String>>,
    commands: Option<Vec<String>>,
    has_bind_mounts: Option<bool>,
}

fn invalid(path: &Path, field: &str, value: impl Into<String>, reason: &str) -> HookError {
    HookError::Invalid {
        path: path.to_path_buf(),
        field: field.to_owned(),
        value: value.into(),
        reason: reason.to_owned(),
    }
}

fn compile(path: &Path, field: String, pattern: &str) -> Result<Regex, HookError> {
    Regex::new(pattern).map_err(|source| HookError::Regex {
        path: path.to_path_buf(),
        field,
        pattern: pattern.to_owned(),
        source,
    })
}

impl HookFile {
    /// Read and validate the hook file at `path`.
    pub fn read(path: &Path) -> Result<HookFile, HookError> {
        let data = std::fs::read(path).map_err(|source| HookError::Io {
            op: "read hook file",
            path: path.to_path_buf(),
            source,
        })?;
        HookFile::parse(path, &data)
    }

    /// Parse and validate `data`, the contents of `path` (named in errors; `hook.path`
    /// is checked to exist on this host).
    pub fn parse(path: &Path, data: &[u8]) -> Result<HookFile, HookError> {
        let parse_err = |source| HookError::Parse {
            path: path.to_path_buf(),
            source,
        };
        // The version decides the schema, so check it before the shape (upstream reads
        // `version` alone first, too).
        let value: serde_json::Value = serde_json::from_slice(data).map_err(parse_err)?;
        let version = value.get("version").and_then(|v| v.as_str()).unwrap_or("");
        if version != VERSION {
            return Err(HookError::Version {
                path: path.to_path_buf(),
                version: version.to_owned(),
            });
        }
        let raw: RawFile = serde_json::from_value(value).map_err(parse_err)?;
        debug_assert_eq!(raw.version.as_deref(), Some(VERSION));

        let rh = raw
            .hook
            .ok_or_else(|| invalid(path, "hook", "", "is required"))?;
        let hook_path = rh.path.unwrap_or_default();
        if hook_path.is_empty() {
            return Err(invalid(path, "hook.path", "", "is required"));
        }
        if !Path::new(&hook_path).is_absolute() {
            return Err(invalid(
                path,
                "hook.path",
                hook_path,
                "must be an absolute path",
            ));
        }
        if let Err(e) = std::fs::metadata(&hook_path) {
            return Err(invalid(
                path,
                "hook.path",
                hook_path,
                &format!("cannot be used: {e}"),
            ));
        }
        if let Some(t) = rh.timeout
            && t <= 0
        {
            return Err(invalid(
                path,
                "hook.timeout",
                t.to_string(),
                "must be greater than zero",
            ));
        }

        let rw = raw
            .when
            .ok_or_else(|| invalid(path, "when", "", "is required"))?;
        let mut annotations = Vec::new();
        for (k, v) in rw.annotations.unwrap_or_default() {
            let key = compile(path, format!("when.annotations key {k:?}"), &k)?;
            let value = compile(path, format!("when.annotations[{k:?}]"), &v)?;
            annotations.push((key, value));
        }
        let commands = rw
            .commands
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, c)| compile(path, format!("when.commands[{i}]"), c))
            .collect::<Result<Vec<_>, _>>()?;
        let when = When {
            always: rw.always,
            annotations,
            commands,
            has_bind_mounts: rw.has_bind_mounts,
        };
        if when.is_empty() {
            return Err(invalid(
                path,
                "when",
                "{}",
                "must set at least one of always, annotations, commands, hasBindMounts",
            ));
        }

        let names = raw
            .stages
            .ok_or_else(|| invalid(path, "stages", "", "is required"))?;
        if names.is_empty() {
            return Err(invalid(path, "stages", "[]", "must not be empty"));
        }
        let stages = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Stage::from_name(n).ok_or_else(|| {
                    invalid(
                        path,
                        &format!("stages[{i}]"),
                        n.as_str(),
                        "is not a known stage (prestart, createRuntime, createContainer, \
                         startContainer, poststart, poststop)",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(HookFile {
            hook: Hook {
                path: PathBuf::from(hook_path),
                args: rh.args.unwrap_or_default(),
                env: rh.env.unwrap_or_default(),
                timeout: rh.timeout,
            },
            when,
            stages,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<HookFile, HookError> {
        HookFile::parse(Path::new("/hooks.d/x.json"), json.as_bytes())
    }

    const OK: &str = r#"{"version":"1.0.0","hook":{"path":"/bin/sh","args":["sh","-c","true"],
        "env":["A=b"],"timeout":5},"when":{"always":true},"stages":["prestart","poststop"],
        "unknownField":1}"#;

    #[test]
    fn parses_full_file_and_ignores_unknown_fields() {
        let f = parse(OK).unwrap();
        assert_eq!(
            f.hook,
            Hook {
                path: "/bin/sh".into(),
                args: vec!["sh".into(), "-c".into(), "true".into()],
                env: vec!["A=b".into()],
                timeout: Some(5),
            }
        );
        assert_eq!(f.stages, [Stage::Prestart, Stage::Poststop]);
        assert_eq!(f.when.always, Some(true));
    }

    #[test]
    fn stage_names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::from_name(s.as_str()), Some(s));
        }
        assert_eq!(Stage::from_name("PreStart"), None);
    }

    #[test]
    fn validation_errors_name_file_field_and_value() {
        let cases: &[(&str, &str)] = &[
            ("{", "cannot parse hook file /hooks.d/x.json"),
            (
                r#"{"hook":{"path":"/bin/sh"},"when":{"always":true},"stages":["prestart"]}"#,
                "unsupported version \"\"",
            ),
            (
                r#"{"version":"0.1.0","hook":"/bin/sh","stages":["prestart"]}"#,
                "unsupported version \"0.1.0\"",
            ),
            (
                r#"{"version":"1.0.0","when":{"always":true},"stages":["prestart"]}"#,
                "hook \"\" is required",
            ),
            (
                r#"{"version":"1.0.0","hook":{},"when":{"always":true},"stages":["prestart"]}"#,
                "hook.path \"\" is required",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"sh"},"when":{"always":true},"stages":["prestart"]}"#,
                "hook.path \"sh\" must be an absolute path",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"/nonexistent/hook"},"when":{"always":true},"stages":["prestart"]}"#,
                "hook.path \"/nonexistent/hook\" cannot be used",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"/bin/sh","timeout":0},"when":{"always":true},"stages":["prestart"]}"#,
                "hook.timeout \"0\" must be greater than zero",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"/bin/sh"},"stages":["prestart"]}"#,
                "when \"\" is required",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"/bin/sh"},"when":{},"stages":["prestart"]}"#,
                "when \"{}\" must set at least one",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"/bin/sh"},"when":{"commands":["("]},"stages":["prestart"]}"#,
                "when.commands[0] \"(\" is not a valid regular expression",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"/bin/sh"},"when":{"annotations":{"[":"x"}},"stages":["prestart"]}"#,
                "is not a valid regular expression",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"/bin/sh"},"when":{"annotations":{"k":"*"}},"stages":["prestart"]}"#,
                "when.annotations[\"k\"] \"*\"",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"/bin/sh"},"when":{"always":true}}"#,
                "stages \"\" is required",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"/bin/sh"},"when":{"always":true},"stages":[]}"#,
                "stages \"[]\" must not be empty",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"/bin/sh"},"when":{"always":true},"stages":["prestart","precreate"]}"#,
                "stages[1] \"precreate\" is not a known stage",
            ),
            (
                r#"{"version":"1.0.0","hook":{"path":"/bin/sh"},"when":{"always":"yes"},"stages":["prestart"]}"#,
                "cannot parse hook file",
            ),
        ];
        for (json, want) in cases {
            let e = parse(json).unwrap_err();
            let msg = e.full_message();
            assert!(msg.contains(want), "{json}: {msg:?} lacks {want:?}");
            assert!(msg.contains("/hooks.d/x.json"), "{msg}");
        }
    }

    #[test]
    fn read_names_missing_file() {
        let e = HookFile::read(Path::new("/nonexistent/hooks.d/a.json")).unwrap_err();
        assert!(matches!(e, HookError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/hooks.d/a.json"), "{e}");
    }
}
