//! Loading CNI network configurations from a directory, the way libcni and CRI-O's ocicni
//! do: files ending in `.conf`, `.conflist` or `.json`, in lexical name order; a `.conflist`
//! is a network configuration list, anything else a single plugin config that becomes a
//! one-plugin list (libcni `ConfListFromConf`). Unusable files (bad JSON, no name or
//! plugins, unsupported `cniVersion`, a plugin binary that is not installed) are skipped
//! with a reason, as ocicni skips them; the reasons feed `Status` and errors.
//!
//! The default network follows CRI-O: the configured name if set, else the first usable
//! file in name order. A network name seen twice keeps its first file.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::version::Version;

/// One network configuration list, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    /// `name`.
    pub name: String,
    /// `cniVersion` as written (plugins get it back verbatim).
    pub cni_version: String,
    /// Parsed `cniVersion`.
    pub version: Version,
    /// `disableCheck` (1.0): never run CHECK.
    pub disable_check: bool,
    /// `disableGC` (1.1): never run GC.
    pub disable_gc: bool,
    /// The plugin config objects, in chain order.
    pub plugins: Vec<Map<String, Value>>,
    /// The file it came from.
    pub source: PathBuf,
    /// The file's exact content (cached with each attachment so DEL sees the same config).
    pub bytes: String,
    /// Whether the file was a list (`.conflist`) rather than a single config.
    pub is_list: bool,
}

impl NetworkList {
    /// Plugin `type`s in chain order.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
            .collect()
    }
}

/// Whether a plugin `type` is a plain binary name (no path tricks).
fn valid_type(t: &str) -> bool {
    !t.is_empty() && t != "." && t != ".." && !t.contains('/') && !t.contains('\0')
}

fn str_field(o: &Map<String, Value>, key: &str) -> Result<String, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(format!("{key:?} must be a string, got {v}")),
    }
}

fn check_plugin(p: &Map<String, Value>, i: usize) -> Result<(), String> {
    let t = str_field(p, "type")?;
    if t.is_empty() {
        return Err(format!("plugin {i} has no \"type\""));
    }
    if !valid_type(&t) {
        return Err(format!("plugin {i} has an invalid type {t:?}"));
    }
    Ok(())
}

/// Parse one file's content. `is_list` selects the conflist layout.
pub fn parse(source: &Path, bytes: &str, is_list: bool) -> Result<NetworkList, String> {
    let v: Value = serde_json::from_str(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("not a JSON object".to_owned());
    };
    let name = str_field(&obj, "name")?;
    if name.is_empty() {
        return Err("no network \"name\"".to_owned());
    }
    let cni_version = str_field(&obj, "cniVersion")?;
    let version = Version::parse(&cni_version)?;
    let flag = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
    let plugins = if is_list {
        match obj.get("plugins") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Value::Object(o) => Ok(o.clone()),
                    _ => Err(format!("plugin {i} is not a JSON object")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Array(_)) => return Err("\"plugins\" is empty".to_owned()),
            _ => return Err("no \"plugins\" array".to_owned()),
        }
    } else {
        vec![obj.clone()]
    };
    for (i, p) in plugins.iter().enumerate() {
        check_plugin(p, i)?;
    }
    Ok(NetworkList {
        name,
        cni_version,
        version,
        disable_check: flag("disableCheck"),
        disable_gc: flag("disableGC"),
        plugins,
        source: source.to_path_buf(),
        bytes: bytes.to_owned(),
        is_list,
    })
}

/// Find plugin `t` in `dirs` (first match wins, like `CNI_PATH` lookup in libcni).
pub fn find_plugin(dirs: &[PathBuf], t: &str) -> Option<PathBuf> {
    if !valid_type(t) {
        return None;
    }
    dirs.iter().map(|d| d.join(t)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Config file extensions libcni reads.
fn is_config_file(p: &Path) -> Option<bool> {
    match p.extension().and_then(OsStr::to_str) {
        Some("conflist") => Some(true),
        Some("conf") | Some("json") => Some(false),
        _ => None,
    }
}

/// What a directory scan found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The directory.
    pub dir: PathBuf,
    /// Usable networks in file-name order (first file of each name).
    pub networks: Vec<NetworkList>,
    /// Files skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Why no network can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// The directory has no config file at all.
    NoConfig(String),
    /// There are files but none usable, or the configured default is missing.
    Unusable(String),
}

impl NotReady {
    /// The human-readable reason.
    pub fn message(&self) -> &str {
        match self {
            Self::NoConfig(m) | Self::Unusable(m) => m,
        }
    }
}

impl Loaded {
    /// The network pods attach to (CRI-O's choice: the configured name, else the first).
    pub fn default_network(&self, configured: &str) -> Result<&NetworkList, NotReady> {
        let skipped = || {
            self.skipped
                .iter()
                .map(|(p, r)| format!("{}: {r}", p.display()))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !configured.is_empty() {
            return self
                .networks
                .iter()
                .find(|n| n.name == configured)
                .ok_or_else(|| {
                    let mut m = format!(
                        "default network {configured:?} not found in {}",
                        self.dir.display()
                    );
                    if !self.skipped.is_empty() {
                        m.push_str(&format!(" (skipped: {})", skipped()));
                    }
                    NotReady::Unusable(m)
                });
        }
        if let Some(n) = self.networks.first() {
            return Ok(n);
        }
        if self.skipped.is_empty() {
            Err(NotReady::NoConfig(format!(
                "no CNI configuration file in {}; has your network provider started?",
                self.dir.display()
            )))
        } else {
            Err(NotReady::Unusable(format!(
                "no usable CNI configuration in {}: {}",
                self.dir.display(),
                skipped()
            )))
        }
    }
}

/// Scan `dir`; plugins are looked up in `plugin_dirs`. A missing directory is empty.
pub fn load_dir(dir: &Path, plugin_dirs: &[PathBuf]) -> Loaded {
    let mut out = Loaded {
        dir: dir.to_path_buf(),
        ..Default::default()
    };
    let mut files: Vec<(PathBuf, bool)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter_map(|p| is_config_file(&p).map(|l| (p, l)))
            .collect(),
        Err(_) => return out,
    };
    files.sort();
    for (path, is_list) in files {
        let bytes = match std::fs::read_to_string(&path) {
            Ok(b) => b,
            // A directory or dangling link with a config-like name, or an unreadable
            // file: skipped like any unusable file.
            Err(e) => {
                out.skipped.push((path, format!("cannot read: {e}")));
                continue;
            }
        };
        let net = match parse(&path, &bytes, is_list) {
            Ok(n) => n,
            Err(reason) => {
                out.skipped.push((path, reason));
                continue;
            }
        };
        if let Some(missing) = net
            .plugin_types()
            .into_iter()
            .find(|t| find_plugin(plugin_dirs, t).is_none())
        {
            let dirs: Vec<String> = plugin_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            out.skipped.push((
                path,
                format!(
                    "network {}: plugin {missing:?} not found in {}",
                    net.name,
                    dirs.join(", ")
                ),
            ));
            continue;
        }
        if out.networks.iter().any(|n| n.name == net.name) {
            tracing::debug!(file = %path.display(), network = %net.name, "network name already defined by an earlier file; ignored");
            continue;
        }
        out.networks.push(net);
    }
    out
}

/// What a change of the config set looks like from outside: names, sizes and mtimes of
/// the config directory's entries and the plugin directories' mtimes (a plugin installed
/// after its config makes a skipped network usable).
pub fn signature(dir: &Path, plugin_dirs: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let stat = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| (m.len(), m.modified().ok()))
            .unwrap_or((0, None))
    };
    let mut sig = Vec::new();
    for d in std::iter::once(dir).chain(plugin_dirs.iter().map(PathBuf::as_path)) {
        let (len, mtime) = stat(d);
        sig.push((d.to_path_buf(), len, mtime));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut entries: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_config_file(p).is_some())
            .map(|p| {
                let (len, mtime) = stat(&p);
                (p, len, mtime)
            })
            .collect();
        entries.sort();
        sig.extend(entries);
    }
    sig
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plugins_dir(t: &tempfile::TempDir, names: &[&str]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let d = t.path().join("bin");
        std::fs::create_dir_all(&d).unwrap();
        for n in names {
            let p = d.join(n);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        d
    }

    #[test]
    fn conf_becomes_one_plugin_list_and_conflist_keeps_order() {
        let c = parse(
            Path::new("/x/10.conf"),
            r#"{"cniVersion":"0.4.0","name":"n1","type":"bridge","ipam":{"type":"host-local"}}"#,
            false,
        )
        .unwrap();
        assert_eq!(c.plugin_types(), ["bridge"]);
        assert_eq!(c.version, Version(0, 4, 0));
        assert!(!c.is_list);
        let l = parse(
            Path::new("/x/10.conflist"),
            r#"{"cniVersion":"1.0.0","name":"n2","disableCheck":true,"plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
            true,
        )
        .unwrap();
        assert_eq!(l.plugin_types(), ["bridge", "portmap"]);
        assert!(l.disable_check && !l.disable_gc);
    }

    #[test]
    fn invalid_configs_are_rejected_with_reasons() {
        let p = Path::new("/x");
        assert!(parse(p, "{", true).unwrap_err().contains("invalid JSON"));
        assert!(parse(p, "[]", true).unwrap_err().contains("object"));
        assert!(
            parse(
                p,
                r#"{"cniVersion":"1.0.0","plugins":[{"type":"a"}]}"#,
                true
            )
            .unwrap_err()
            .contains("name")
        );
        assert!(
            parse(p, r#"{"cniVersion":"1.0.0","name":"a","plugins":[]}"#, true)
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            parse(
                p,
                r#"{"cniVersion":"1.0.0","name":"a","plugins":[{}]}"#,
                true
            )
            .unwrap_err()
            .contains("type")
        );
        assert!(
            parse(
                p,
                r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"../sh"}]}"#,
                true
            )
            .unwrap_err()
            .contains("invalid type")
        );
        assert!(
            parse(p, r#"{"cniVersion":"9.0.0","name":"a","type":"x"}"#, false)
                .unwrap_err()
                .contains("newer")
        );
    }

    #[test]
    fn load_dir_orders_skips_and_chooses_default() {
        let t = tempfile::tempdir().unwrap();
        let bin = plugins_dir(&t, &["bridge", "portmap"]);
        let dir = t.path().join("net.d");
        assert_eq!(
            load_dir(&dir, std::slice::from_ref(&bin))
                .default_network("")
                .unwrap_err(),
            NotReady::NoConfig(format!(
                "no CNI configuration file in {}; has your network provider started?",
                dir.display()
            ))
        );
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("05-broken.conflist"), "{not json").unwrap();
        std::fs::write(
            dir.join("07-missing.conf"),
            r#"{"cniVersion":"1.0.0","name":"m","type":"nosuchplugin"}"#,
        )
        .unwrap();
        let l = load_dir(&dir, std::slice::from_ref(&bin));
        let e = l.default_network("").unwrap_err();
        assert!(matches!(e, NotReady::Unusable(_)), "{e:?}");
        assert!(
            e.message().contains("05-broken.conflist: invalid JSON"),
            "{e:?}"
        );
        assert!(e.message().contains("nosuchplugin"), "{e:?}");
        std::fs::write(
            dir.join("20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("10-a.conf"),
            r#"{"cniVersion":"0.3.1","name":"a","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("30-a-again.json"),
            r#"{"cniVersion":"0.3.1","name":"a","type":"portmap"}"#,
        )
        .unwrap();
        std::fs::write(dir.join("README"), "ignored").unwrap();
        let l = load_dir(&dir, std::slice::from_ref(&bin));
        let names: Vec<_> = l.networks.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(l.default_network("").unwrap().name, "a");
        assert_eq!(l.default_network("b").unwrap().name, "b");
        let e = l.default_network("zzz").unwrap_err();
        assert!(e.message().contains("\"zzz\" not found"), "{e:?}");
        assert_eq!(l.skipped.len(), 2);
    }

    #[test]
    fn signature_changes_when_a_file_appears_or_changes() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("net.d");
        let s0 = signature(&dir, &[]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.conf"), "{}").unwrap();
        let s1 = signature(&dir, &[]);
        assert_ne!(s0, s1);
        std::fs::write(dir.join("a.conf"), "{ }").unwrap();
        assert_ne!(s1, signature(&dir, &[]));
        assert_eq!(signature(&dir, &[]), signature(&dir, &[]));
    }
}
