//! registries.conf v2 parsing (containers-registries.conf(5)) with `registries.conf.d` drop-ins.
//!
//! Only the v2 format is supported; a v1 file (`[registries.search]` ...) is refused with a
//! clear error. Drop-ins are merged as containers/image does: files in name order, later
//! files override scalars and aliases, and `[[registry]]` entries replace earlier ones with
//! the same prefix or are appended.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::RegistriesError;

/// `pull-from-mirror`: which references a mirror may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullFromMirror {
    /// Tags and digests (the default).
    #[default]
    All,
    /// Only digest references: a tag could resolve to different content on a mirror.
    DigestOnly,
    /// Only tag references.
    TagOnly,
}

/// `short-name-mode`. crust never prompts, so every mode tries ambiguous short names in
/// search-registry order (what "permissive" does without a TTY); "disabled" likewise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShortNameMode {
    /// Upstream would refuse ambiguous names without a TTY; crust tries them in order.
    Enforcing,
    /// Try in order.
    #[default]
    Permissive,
    /// Try in order.
    Disabled,
}

/// One `[[registry.mirror]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MirrorConf {
    /// Mirror location `host[:port][/path]` (required).
    #[serde(default)]
    pub location: String,
    /// Plain HTTP / unverified TLS allowed.
    #[serde(default)]
    pub insecure: bool,
    /// Which references this mirror serves (defaults to the registry's setting, then all).
    #[serde(default)]
    pub pull_from_mirror: Option<PullFromMirror>,
}

/// One `[[registry]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistryConf {
    /// Names this entry applies to; defaults to `location`.
    #[serde(default)]
    pub prefix: String,
    /// Where to pull from; defaults to `prefix`.
    #[serde(default)]
    pub location: String,
    /// Plain HTTP / unverified TLS allowed.
    #[serde(default)]
    pub insecure: bool,
    /// Pulls from this registry are refused.
    #[serde(default)]
    pub blocked: bool,
    /// Default `pull-from-mirror` for this entry's mirrors.
    #[serde(default)]
    pub pull_from_mirror: Option<PullFromMirror>,
    /// Mirrors, tried in order before the primary location.
    #[serde(default)]
    pub mirror: Vec<MirrorConf>,
}

/// One parsed file (or the merge of several).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfFile {
    /// Registries to try for short names, in order.
    pub unqualified_search_registries: Option<Vec<String>>,
    /// See [`ShortNameMode`].
    pub short_name_mode: Option<ShortNameMode>,
    /// `[[registry]]` entries.
    #[serde(default)]
    pub registry: Vec<RegistryConf>,
    /// `[aliases]`: short name -> fully-qualified name.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Accepted and ignored (`credential-helpers` is a known v2 key; crust reads auth.json).
    #[serde(default)]
    pub credential_helpers: Option<Vec<String>>,
    /// v1 tables: present only to give a clear error.
    #[serde(default)]
    pub registries: Option<toml::Value>,
}

/// Parse and validate one file's text. `origin` names the file in errors.
pub fn parse(s: &str, origin: &str) -> Result<ConfFile, RegistriesError> {
    let mut f: ConfFile = toml::from_str(s).map_err(|e| RegistriesError::Parse {
        file: origin.to_string(),
        reason: e.message().to_string(),
    })?;
    if f.registries.is_some() {
        return Err(RegistriesError::Invalid {
            file: origin.to_string(),
            entry: "registries".into(),
            reason: "the v1 format ([registries.search] ...) is not supported, use the v2 format"
                .into(),
        });
    }
    for (i, r) in f.registry.iter_mut().enumerate() {
        let entry = format!(
            "registry[{i}] (prefix `{}`, location `{}`)",
            r.prefix, r.location
        );
        let err = |reason: &str| RegistriesError::Invalid {
            file: origin.to_string(),
            entry: entry.clone(),
            reason: reason.to_string(),
        };
        if r.prefix.is_empty() && r.location.is_empty() {
            return Err(err("needs a prefix or a location"));
        }
        if r.prefix.starts_with("*.") {
            if !r.location.is_empty() {
                return Err(err("a wildcard prefix must not have a location"));
            }
        } else if r.prefix.contains('*') {
            return Err(err(
                "wildcards are only allowed as a leading `*.` in prefix",
            ));
        }
        if r.prefix.is_empty() {
            r.prefix = r.location.clone();
        }
        if r.location.is_empty() && !r.prefix.starts_with("*.") {
            r.location = r.prefix.clone();
        }
        r.prefix = r.prefix.trim_end_matches('/').to_string();
        r.location = r.location.trim_end_matches('/').to_string();
        for (j, m) in r.mirror.iter_mut().enumerate() {
            if m.location.is_empty() {
                return Err(err(&format!("mirror[{j}] has no location")));
            }
            m.location = m.location.trim_end_matches('/').to_string();
        }
    }
    // containers/image: keys are short names, values fully-qualified names, neither with a
    // tag or digest (the request's tag/digest is appended at resolution).
    for (k, v) in &f.aliases {
        use super::reference::ImageReference;
        let err = |reason: String| RegistriesError::Invalid {
            file: origin.to_string(),
            entry: format!("aliases.\"{k}\""),
            reason,
        };
        let key_ok = ImageReference::parse(k).is_ok_and(|r| r.tag.is_none() && r.digest.is_none())
            && !ImageReference::is_fully_qualified_input(k);
        if !key_ok {
            return Err(err(format!(
                "key `{k}` must be a short name without tag or digest"
            )));
        }
        let value_ok = ImageReference::parse(v)
            .is_ok_and(|r| r.tag.is_none() && r.digest.is_none())
            && ImageReference::is_fully_qualified_input(v);
        if !value_ok {
            return Err(err(format!(
                "value `{v}` must be a fully-qualified name without tag or digest"
            )));
        }
    }
    Ok(f)
}

/// Merge `over` into `base` as a later drop-in.
pub fn merge(base: &mut ConfFile, over: ConfFile) {
    if over.unqualified_search_registries.is_some() {
        base.unqualified_search_registries = over.unqualified_search_registries;
    }
    if over.short_name_mode.is_some() {
        base.short_name_mode = over.short_name_mode;
    }
    for r in over.registry {
        match base.registry.iter_mut().find(|b| b.prefix == r.prefix) {
            Some(b) => *b = r,
            None => base.registry.push(r),
        }
    }
    base.aliases.extend(over.aliases);
}

/// Load `path` (missing => defaults) then `<dir>/registries.conf.d/*.conf` in name order.
pub fn load(path: &Path) -> Result<ConfFile, RegistriesError> {
    let mut conf = read_one(path)?.unwrap_or_default();
    let dir = path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("registries.conf.d");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(conf),
        Err(source) => {
            return Err(RegistriesError::Io {
                file: dir.display().to_string(),
                source,
            });
        }
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    for f in files {
        if let Some(c) = read_one(&f)? {
            tracing::debug!(file = %f.display(), "registries.conf drop-in");
            merge(&mut conf, c);
        }
    }
    Ok(conf)
}

fn read_one(path: &Path) -> Result<Option<ConfFile>, RegistriesError> {
    match std::fs::read_to_string(path) {
        Ok(s) => parse(&s, &path.display().to_string()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RegistriesError::Io {
            file: path.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = parse("bogus-key = 1\n", "/etc/r.conf")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/r.conf") && e.contains("bogus-key"), "{e}");
        let e = parse("[[registry]]\nlocation = \"a.io\"\nfoo = true\n", "f.conf")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.conf") && e.contains("foo"), "{e}");
    }

    #[test]
    fn validation_errors_name_entry() {
        let e = parse(
            "[[registry]]\nprefix = \"*.a.io\"\nlocation = \"b.io\"\n",
            "x.conf",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("x.conf") && e.contains("*.a.io") && e.contains("wildcard"),
            "{e}"
        );
        let e = parse(
            "[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\ninsecure = true\n",
            "y.conf",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("y.conf") && e.contains("mirror[0] has no location"),
            "{e}"
        );
        let e = parse("[registries.search]\nregistries = [\"a.io\"]\n", "v1.conf")
            .unwrap_err()
            .to_string();
        assert!(e.contains("v1") && e.contains("v2"), "{e}");
        let e = parse("short-name-mode = \"bogus\"\n", "m.conf")
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.conf"), "{e}");
    }

    #[test]
    fn alias_rules() {
        for (toml, want) in [
            ("[aliases]\n\"x\" = \"short\"\n", "fully-qualified"),
            ("[aliases]\n\"x\" = \"q.io/x:1\"\n", "without tag"),
            ("[aliases]\n\"q.io/x\" = \"q.io/x\"\n", "short name"),
            ("[aliases]\n\"X\" = \"q.io/x\"\n", "short name"),
        ] {
            let e = parse(toml, "al.conf").unwrap_err().to_string();
            assert!(
                e.contains("al.conf") && e.contains("aliases.") && e.contains(want),
                "{e}"
            );
        }
        parse("[aliases]\n\"foo/bar\" = \"q.io/foo/bar\"\n", "ok.conf").unwrap();
    }

    #[test]
    fn defaults_fill_prefix_and_location() {
        let f = parse(
            "[[registry]]\nlocation = \"a.io/x\"\n[[registry]]\nprefix = \"b.io\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(f.registry[0].prefix, "a.io/x");
        assert_eq!(f.registry[1].location, "b.io");
        for m in ["enforcing", "permissive", "disabled"] {
            parse(&format!("short-name-mode = \"{m}\"\n"), "t").unwrap();
        }
    }
}
