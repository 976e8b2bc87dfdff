//! Loading: defaults, then the main file, then drop-ins in name order, then flags.
//!
//! Merging is key by key (CRI-O drop-in semantics): a drop-in that sets only
//! `crust.image.max_concurrent_downloads` leaves every other key as earlier sources set it.
//! Each file is first cut into "units" (leaf keys, or whole sub-trees the defaults do not
//! know), and every unit is checked alone against the typed [`Config`] on top of the
//! defaults; so an error always names the file (or flag) and the dotted key at fault,
//! while the structs themselves stay plain serde with `deny_unknown_fields`.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use super::{Config, ConfigFlags, DEFAULT_CONFIG_DIR, DEFAULT_CONFIG_FILE};

/// Errors loading the configuration. Messages name the file (or flag) and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config` named a file that does not exist.
    #[error("config file {path:?} (given with --config) does not exist")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A config file or drop-in directory could not be read.
    #[error("cannot read {path:?}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file is not valid TOML.
    #[error("{}: invalid TOML", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A key no table of the config has.
    #[error("{origin}: unknown key `{key}`")]
    UnknownKey {
        /// The file path, or `flag --x`.
        origin: String,
        /// Dotted key.
        key: String,
    },
    /// A known key with a bad value.
    #[error("{origin}: `{key}`: {reason}")]
    BadValue {
        /// The file path, or `flag --x`, or `default`.
        origin: String,
        /// Dotted key.
        key: String,
        /// Why the value is rejected.
        reason: String,
    },
    /// The merged config failed to (de)serialize although each key passed alone.
    #[error("invalid configuration: {reason}")]
    Invalid {
        /// serde's message.
        reason: String,
    },
}

type Path_ = Vec<String>;

fn dotted(path: &[String]) -> String {
    path.join(".")
}

/// The files read, in application order.
pub fn config_files(flags: &ConfigFlags) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    match &flags.config {
        Some(p) => {
            if !p.exists() {
                return Err(ConfigError::Missing { path: p.clone() });
            }
            files.push(p.clone());
        }
        None => {
            let p = PathBuf::from(DEFAULT_CONFIG_FILE);
            if p.exists() {
                files.push(p);
            }
        }
    }
    let dir = flags
        .config_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR));
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut dropins = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|source| ConfigError::Read {
                    path: dir.clone(),
                    source,
                })?;
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                    dropins.push(path);
                }
            }
            dropins.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
            files.extend(dropins);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(ConfigError::Read { path: dir, source }),
    }
    Ok(files)
}

/// Load the effective configuration for `flags`.
pub fn load(flags: &ConfigFlags) -> Result<Config, ConfigError> {
    let mut sources = Vec::new();
    for path in config_files(flags)? {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        sources.push((path, text));
    }
    load_from(&sources, flags)
}

/// [`load`] on already-read files (`(path, contents)`, in order); for tests and SIGHUP.
pub fn load_from(files: &[(PathBuf, String)], flags: &ConfigFlags) -> Result<Config, ConfigError> {
    let defaults = toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Invalid {
        reason: e.to_string(),
    })?;
    let mut merged = defaults.clone();
    let mut origins: BTreeMap<String, String> = BTreeMap::new();
    for (path, text) in files {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.clone(),
            source: Box::new(e),
        })?;
        let origin = path.display().to_string();
        let mut units = Vec::new();
        split_units(Some(&defaults), &table, &mut Vec::new(), &mut units);
        for (key, value) in units {
            apply(&defaults, &mut merged, &mut origins, &origin, key, value)?;
        }
    }
    for (flag, key, value) in flags.overlays() {
        let key: Path_ = key.split('.').map(str::to_owned).collect();
        apply(
            &defaults,
            &mut merged,
            &mut origins,
            &format!("flag {flag}"),
            key,
            value,
        )?;
    }
    let config: Config = merged
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid {
            reason: e.message().to_owned(),
        })?;
    if let Some((key, reason)) = config.validate().into_iter().next() {
        let origin = origins
            .get(key)
            .cloned()
            .unwrap_or_else(|| "default".to_owned());
        return Err(ConfigError::BadValue {
            origin,
            key: key.to_owned(),
            reason,
        });
    }
    Ok(config)
}

/// Cut `table` into units: leaves where the schema has a table are descended into;
/// anything else (leaves, or sub-trees the schema does not know) is one unit.
fn split_units(
    schema: Option<&toml::Table>,
    table: &toml::Table,
    prefix: &mut Path_,
    out: &mut Vec<(Path_, toml::Value)>,
) {
    for (k, v) in table {
        prefix.push(k.clone());
        let sub_schema = schema
            .and_then(|s| s.get(k))
            .and_then(toml::Value::as_table);
        match (v, sub_schema) {
            (toml::Value::Table(t), Some(s)) => split_units(Some(s), t, prefix, out),
            _ => out.push((prefix.clone(), v.clone())),
        }
        prefix.pop();
    }
}

fn set(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(t) = entry else { return };
        cur = t;
    }
    match (cur.get_mut(last), value) {
        (Some(toml::Value::Table(old)), toml::Value::Table(new)) => {
            for (k, v) in new {
                set(old, &[k], v);
            }
        }
        (_, value) => {
            cur.insert(last.clone(), value);
        }
    }
}

fn known(table: &toml::Table, path: &[String]) -> bool {
    let mut cur = table;
    for (i, p) in path.iter().enumerate() {
        match cur.get(p) {
            Some(toml::Value::Table(t)) => cur = t,
            Some(_) => return i + 1 == path.len(),
            None => return false,
        }
    }
    true
}

/// Check one unit alone on top of the defaults, then merge it.
fn apply(
    defaults: &toml::Table,
    merged: &mut toml::Table,
    origins: &mut BTreeMap<String, String>,
    origin: &str,
    key: Path_,
    value: toml::Value,
) -> Result<(), ConfigError> {
    let mut probe = defaults.clone();
    set(&mut probe, &key, value.clone());
    if let Err(e) = probe.try_into::<Config>() {
        return Err(if known(defaults, &key) {
            ConfigError::BadValue {
                origin: origin.to_owned(),
                key: dotted(&key),
                reason: e.message().to_owned(),
            }
        } else {
            ConfigError::UnknownKey {
                origin: origin.to_owned(),
                key: dotted(&key),
            }
        });
    }
    set(merged, &key, value);
    origins.insert(dotted(&key), origin.to_owned());
    Ok(())
}

/// Flattened `dotted key -> value` view, for diffs on reload.
pub fn flatten(config: &Config) -> BTreeMap<String, String> {
    fn walk(t: &toml::Table, prefix: &str, out: &mut BTreeMap<String, String>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(sub) => walk(sub, &key, out),
                toml::Value::String(s) => {
                    out.insert(key, s.clone());
                }
                other => {
                    out.insert(key, other.to_string());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(t) = toml::Table::try_from(config) {
        walk(&t, "", &mut out);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{LogFormat, LogLevel};

    fn files(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
        list.iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = load_from(&[], &ConfigFlags::default()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.crust.root, PathBuf::from("/var/lib/crust"));
        assert_eq!(c.crust.runroot, PathBuf::from("/run/crust"));
        assert_eq!(c.crust.api.listen, PathBuf::from("/run/crust/crust.sock"));
        assert_eq!(c.crust.api.grpc_max_recv_msg_size, 16 << 20);
        assert_eq!(c.crust.image.pull_progress_timeout, Duration::from_secs(60));
        assert_eq!(c.crust.image.max_concurrent_downloads, 3);
        assert_eq!(c.crust.image.auth_file(), None);
        assert_eq!(c.crust.log_level, LogLevel::Info);
    }

    #[test]
    fn merge_order_and_flags() {
        let f = files(&[
            (
                "/etc/crust/crust.toml",
                "[crust]\nroot = \"/a\"\nlog_level = \"debug\"\n[crust.image]\nmax_concurrent_downloads = 5\n",
            ),
            (
                "/d/10-x.toml",
                "[crust]\nroot = \"/b\"\n[crust.image]\npull_progress_timeout = \"5m\"\n",
            ),
            (
                "/d/20-y.toml",
                "crust.root = \"/c\"\ncrust.log_format = \"json\"\n",
            ),
        ]);
        let c = load_from(&f, &ConfigFlags::default()).unwrap();
        assert_eq!(c.crust.root, PathBuf::from("/c"));
        assert_eq!(c.crust.log_level, LogLevel::Debug);
        assert_eq!(c.crust.log_format, LogFormat::Json);
        assert_eq!(c.crust.image.max_concurrent_downloads, 5);
        assert_eq!(
            c.crust.image.pull_progress_timeout,
            Duration::from_secs(300)
        );
        assert_eq!(c.crust.runroot, PathBuf::from("/run/crust"));

        let flags = ConfigFlags {
            root: Some("/flag".into()),
            log_level: Some(LogLevel::Trace),
            max_concurrent_downloads: Some(7),
            pull_progress_timeout: Some("0s".into()),
            ..Default::default()
        };
        let c = load_from(&f, &flags).unwrap();
        assert_eq!(c.crust.root, PathBuf::from("/flag"));
        assert_eq!(c.crust.log_level, LogLevel::Trace);
        assert_eq!(c.crust.image.max_concurrent_downloads, 7);
        assert_eq!(c.crust.image.pull_progress_timeout, Duration::ZERO);
        assert_eq!(c.crust.log_format, LogFormat::Json);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let f = files(&[(
            "/etc/crust/crust.conf.d/10-x.toml",
            "[crust.image]\nfoo = 1\n",
        )]);
        let e = load_from(&f, &ConfigFlags::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/crust/crust.conf.d/10-x.toml: unknown key `crust.image.foo`"
        );
        let f = files(&[("/x.toml", "[other]\na = 1\n")]);
        let e = load_from(&f, &ConfigFlags::default())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/x.toml: unknown key `other`");
        let f = files(&[("/x.toml", "[crust.runtime.x]\na = 1\n")]);
        let e = load_from(&f, &ConfigFlags::default())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/x.toml: unknown key `crust.runtime.x`");
    }

    #[test]
    fn bad_values_name_key() {
        let cases = [
            ("crust.log_level = \"loud\"", "`crust.log_level`"),
            ("crust.storage_driver = \"vfs\"", "`crust.storage_driver`"),
            (
                "crust.image.pull_progress_timeout = \"5 parsecs\"",
                "`crust.image.pull_progress_timeout`",
            ),
            (
                "crust.image.max_concurrent_downloads = \"3\"",
                "`crust.image.max_concurrent_downloads`",
            ),
            (
                "crust.image.max_concurrent_downloads = 0",
                "`crust.image.max_concurrent_downloads`",
            ),
            ("crust.api.listen = \"relative.sock\"", "`crust.api.listen`"),
            ("crust.api = 5", "`crust.api`"),
        ];
        for (text, want) in cases {
            let f = files(&[("/f.toml", text)]);
            let e = load_from(&f, &ConfigFlags::default())
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("/f.toml: "), "{text}: {e}");
            assert!(e.contains(want), "{text}: {e}");
        }
        let flags = ConfigFlags {
            pull_progress_timeout: Some("soon".into()),
            ..Default::default()
        };
        let e = load_from(&[], &flags).unwrap_err().to_string();
        assert!(
            e.starts_with("flag --pull-progress-timeout: `crust.image.pull_progress_timeout`"),
            "{e}"
        );
        let f = files(&[("/f.toml", "crust = [")]);
        assert!(matches!(
            load_from(&f, &ConfigFlags::default()),
            Err(ConfigError::Syntax { .. })
        ));
    }

    #[test]
    fn explicit_missing_config_is_error() {
        let flags = ConfigFlags {
            config: Some("/nonexistent/crust-test.toml".into()),
            config_dir: Some("/nonexistent/crust-test.d".into()),
            ..Default::default()
        };
        assert!(matches!(load(&flags), Err(ConfigError::Missing { .. })));
    }

    #[test]
    fn dropin_dir_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.toml");
        std::fs::write(&main, "crust.root = \"/main\"\n").unwrap();
        let d = dir.path().join("conf.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("20-b.toml"), "crust.root = \"/b\"\n").unwrap();
        std::fs::write(
            d.join("10-a.toml"),
            "crust.root = \"/a\"\ncrust.runroot = \"/ra\"\n",
        )
        .unwrap();
        std::fs::write(d.join("30-c.conf"), "garbage").unwrap();
        let flags = ConfigFlags {
            config: Some(main),
            config_dir: Some(d),
            ..Default::default()
        };
        let c = load(&flags).unwrap();
        assert_eq!(c.crust.root, PathBuf::from("/b"));
        assert_eq!(c.crust.runroot, PathBuf::from("/ra"));
    }
}
