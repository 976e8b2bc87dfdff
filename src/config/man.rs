//! `crust.toml(5)`: the config file's man page, generated from the same walk that prints
//! `crust config` ([`super::print::to_commented_toml`]), so every key appears with its
//! default and its comment and the page cannot drift from the code.
//!
//! The page is built by reading the commented TOML back: `# ` lines are the doc of the
//! `[table]` or `key = value` line that follows them (the printer puts them directly
//! above), a blank line ends a comment block. Rendering is plain man(7) roff.

use std::fmt::Write as _;

use super::Config;
use super::print::to_commented_toml;

/// Where the packages install crust's own registries.conf (a conffile): the Debian/Fedora
/// `/etc/containers/registries.conf` belongs to containers-common / containers-image, so
/// the packaged `crust.toml` points `crust.image.registries_conf` here instead.
pub const PACKAGED_REGISTRIES_CONF: &str = "/etc/crust/registries.conf";

/// The configuration the packages ship as `/etc/crust/crust.toml`
/// (contrib/config/crust.toml): the built-in defaults with the packaged registries.conf,
/// i.e. the output of `crust --registries-conf /etc/crust/registries.conf config` on a
/// node without config files.
pub fn packaged_config() -> Config {
    let mut c = Config::default();
    c.crust.image.registries_conf = PACKAGED_REGISTRIES_CONF.into();
    c
}

/// One documented `key = default` or `[table]` of the printed config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Dotted table name (`crust.image`) or bare key (`max_concurrent_downloads`).
    pub key: String,
    /// The default as TOML (`None` for a table header).
    pub value: Option<String>,
    /// The comment printed above it, `#` removed, lines joined with spaces.
    pub doc: String,
}

/// A table with its own doc and keys, in printed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The table header entry.
    pub table: Entry,
    /// Its keys.
    pub keys: Vec<Entry>,
}

/// Read the commented TOML printed by `crust config` back into documented sections.
pub fn sections(printed: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut doc: Vec<&str> = Vec::new();
    for line in printed.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            doc.clear();
        } else if let Some(c) = trimmed.strip_prefix('#') {
            doc.push(c.trim());
        } else if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            out.push(Section {
                table: Entry {
                    key: name.to_owned(),
                    value: None,
                    doc: doc.join(" "),
                },
                keys: Vec::new(),
            });
            doc.clear();
        } else if let (Some((k, v)), Some(section)) = (trimmed.split_once(" = "), out.last_mut()) {
            section.keys.push(Entry {
                key: k.to_owned(),
                value: Some(v.to_owned()),
                doc: doc.join(" "),
            });
            doc.clear();
        } else if let Some(last) = out.last_mut().and_then(|s| s.keys.last_mut()) {
            // A value continued on the next line (multi-line string or array).
            if let Some(v) = &mut last.value {
                v.push('\n');
                v.push_str(line);
            }
        }
    }
    out
}

/// Escape text for a roff line: backslashes, hyphens (so they stay ASCII in copy/paste)
/// and a leading control character.
fn esc(text: &str) -> String {
    let mut s = text.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        s.insert_str(0, "\\&");
    }
    s
}

/// The `crust.toml(5)` page for `config` (normally `Config::default()`, so the defaults
/// shown are the built-in ones).
pub fn man_page(config: &Config, version: &str) -> Result<String, toml::ser::Error> {
    let printed = to_commented_toml(config)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        ".TH CRUST.TOML 5 \"\" \"crust {}\" \"File Formats\"",
        esc(version)
    );
    out.push_str(
        ".SH NAME\ncrust.toml \\- configuration file of the crust CRI container runtime\n\
         .SH SYNOPSIS\n\\fI/etc/crust/crust.toml\\fR, \\fI/etc/crust/crust.conf.d/*.toml\\fR\n\
         .SH DESCRIPTION\n\
         \\fBcrust\\fR(8) reads \\fI/etc/crust/crust.toml\\fR (or the file given with \\fB\\-\\-config\\fR), \
         then every \\fI*.toml\\fR drop\\-in of \\fI/etc/crust/crust.conf.d\\fR (or \\fB\\-\\-config\\-dir\\fR) \
         in name order, then its command\\-line flags. Later sources win key by key, so a drop\\-in \
         may set a single key. Unknown keys and bad values are errors that name the file and the key. \
         Without any file crust runs on the defaults shown below.\n\
         .PP\n\\fBcrust config\\fR prints the effective configuration in this format, with comments; \
         its output is itself a valid configuration file. Sending \\fBSIGHUP\\fR to the daemon \
         re\\-reads the files; keys whose description says so are applied, other changes are \
         logged and need a restart.\n\
         .SH TABLES AND KEYS\n\
         Each key is shown with its built\\-in default.\n",
    );
    for section in sections(&printed) {
        let _ = writeln!(out, ".SS \"[{}]\"", esc(&section.table.key));
        if !section.table.doc.is_empty() {
            let _ = writeln!(out, "{}", esc(&section.table.doc));
        }
        for key in &section.keys {
            let value = key.value.as_deref().unwrap_or_default();
            let _ = writeln!(out, ".TP\n\\fB{}\\fR = {}", esc(&key.key), esc(value));
            let doc = if key.doc.is_empty() {
                "(undocumented)"
            } else {
                &key.doc
            };
            let _ = writeln!(out, "{}", esc(doc));
        }
    }
    out.push_str(
        ".SH FILES\n\
         .TP\n\\fI/etc/crust/crust.toml\\fR\nThe main configuration file (a package conffile).\n\
         .TP\n\\fI/etc/crust/crust.conf.d/\\fR\nDrop\\-ins, applied in name order.\n\
         .TP\n\\fI/etc/crust/registries.conf\\fR\n\
         Registry settings, see \\fBcontainers\\-registries.conf\\fR(5).\n\
         .SH EXAMPLE\nA drop\\-in \\fI/etc/crust/crust.conf.d/10\\-systemd.toml\\fR switching the cgroup driver:\n\
         .PP\n.nf\n[crust.runtime]\ncgroup_manager = \"systemd\"\n.fi\n\
         .SH SEE ALSO\n\\fBcrust\\fR(8), \\fBcontainers\\-registries.conf\\fR(5), \\fBkubelet\\fR(1)\n",
    );
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::load::flatten;

    #[test]
    fn every_key_has_default_and_doc() {
        let c = Config::default();
        let printed = to_commented_toml(&c).unwrap();
        let secs = sections(&printed);
        let mut documented = Vec::new();
        for s in &secs {
            assert!(!s.table.doc.is_empty(), "no doc for [{}]", s.table.key);
            for k in &s.keys {
                assert!(!k.doc.is_empty(), "no doc for {}.{}", s.table.key, k.key);
                documented.push(format!("{}.{}", s.table.key, k.key));
            }
        }
        for key in flatten(&c).keys() {
            assert!(documented.contains(key), "{key} missing from the man page");
        }
        let page = man_page(&c, "0.1.0").unwrap();
        assert!(page.starts_with(".TH CRUST.TOML 5"));
        assert!(page.contains(".SS \"[crust.image]\""), "{page}");
        assert!(page.contains("\\fBroot\\fR = \"/var/lib/crust\""), "{page}");
        assert!(
            page.contains("\\fBmax_concurrent_downloads\\fR = "),
            "{page}"
        );
        assert!(!page.contains("(undocumented)"));
    }

    #[test]
    fn parser_handles_continuations_and_blank_lines() {
        let s =
            sections("# header\n\n# Table doc\n[t]\n\n# two\n# lines\nk = [\n  1,\n]\nbare = 1\n");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].table.doc, "Table doc");
        assert_eq!(s[0].keys[0].doc, "two lines");
        assert_eq!(s[0].keys[0].value.as_deref(), Some("[\n  1,\n]"));
        assert_eq!(s[0].keys[1].doc, "");
    }

    /// contrib/config/crust.toml (the packaged /etc/crust/crust.toml) is exactly what
    /// `crust --registries-conf /etc/crust/registries.conf config` prints without config
    /// files. `CRUST_BLESS=1` rewrites it.
    #[test]
    fn contrib_default_config_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/config/crust.toml");
        let flags = crate::config::ConfigFlags {
            registries_conf: Some(PACKAGED_REGISTRIES_CONF.into()),
            ..Default::default()
        };
        let loaded = crate::config::load::load_from(&[], &flags).unwrap();
        assert_eq!(loaded, packaged_config());
        let want = to_commented_toml(&loaded).unwrap();
        if std::env::var_os("CRUST_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} differs from `crust config` output; regenerate it with \
             `CRUST_BLESS=1 cargo test --lib config::man`",
            path.display()
        );
        let parsed: Config = toml::from_str(&have).unwrap();
        assert_eq!(parsed, packaged_config());
    }

    /// The other packaged files parse with the code that reads them.
    #[test]
    fn packaged_registries_conf_and_cni_network_are_valid() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
        let text = std::fs::read_to_string(root.join("config/registries.conf")).unwrap();
        let conf = crate::registries::conf::parse(&text, "contrib/config/registries.conf").unwrap();
        assert_eq!(
            conf.unqualified_search_registries.as_deref(),
            Some(&["docker.io".to_owned()][..])
        );
        let text = std::fs::read_to_string(root.join("cni/10-crust-bridge.conflist")).unwrap();
        let net: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(net["cniVersion"], "1.0.0");
        let types: Vec<_> = net["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert!(
            types.contains(&"bridge") && types.contains(&"portmap"),
            "{types:?}"
        );
    }

    #[test]
    fn escapes_roff() {
        assert_eq!(esc(".x-y\\z"), "\\&.x\\-y\\ez");
    }
}
