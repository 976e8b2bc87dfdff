//! `[crust.network]`: where pod networking (CNI) finds its network configurations and
//! plugins, and where crust keeps what it needs to tear attachments down again.
//!
//! Names and defaults follow CRI-O's `[crio.network]` (`network_dir`, `plugin_dirs`,
//! `cni_default_network`): configs in `/etc/cni/net.d`, plugins in `/opt/cni/bin` then
//! `/usr/lib/cni` (where Debian's `containernetworking-plugins` installs them). The
//! attachment cache defaults to `<root>/cni` rather than a runroot path: host-local IP
//! allocations (`/var/lib/cni/networks`) survive a reboot, so the cached config and result
//! that let a later `DEL` release them must survive it too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// `[crust.network]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Directory of CNI network configurations (`*.conf`, `*.conflist`, `*.json`).
    pub network_dir: PathBuf,
    /// Directories searched, in order, for plugin binaries (also given as `CNI_PATH`).
    pub plugin_dirs: Vec<PathBuf>,
    /// Name of the network pods attach to; empty = the first valid file in name order.
    pub default_network: String,
    /// Attachment cache (config, args and result of each pod's ADD); empty = `<root>/cni`.
    pub cache_dir: PathBuf,
    /// A plugin invocation running longer than this is killed and fails.
    #[serde(with = "duration::serde_str")]
    pub plugin_timeout: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            network_dir: PathBuf::from("/etc/cni/net.d"),
            plugin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            default_network: String::new(),
            cache_dir: PathBuf::new(),
            plugin_timeout: Duration::from_secs(60),
        }
    }
}

impl NetworkConfig {
    /// The attachment cache directory, resolving the empty default against `root`.
    pub fn cache_dir_for(&self, root: &Path) -> PathBuf {
        if self.cache_dir.as_os_str().is_empty() {
            root.join("cni")
        } else {
            self.cache_dir.clone()
        }
    }

    /// Semantic checks (called from `Config::validate`). Returns `(dotted key, reason)`.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errs = Vec::new();
        if !self.network_dir.is_absolute() {
            errs.push((
                "crust.network.network_dir",
                format!("must be an absolute path, got {:?}", self.network_dir),
            ));
        }
        if self.plugin_dirs.is_empty() {
            errs.push((
                "crust.network.plugin_dirs",
                "must name at least one directory".to_owned(),
            ));
        }
        for p in &self.plugin_dirs {
            if !p.is_absolute() {
                errs.push((
                    "crust.network.plugin_dirs",
                    format!("must be absolute paths, got {p:?}"),
                ));
            }
        }
        if !self.cache_dir.as_os_str().is_empty() && !self.cache_dir.is_absolute() {
            errs.push((
                "crust.network.cache_dir",
                format!("must be an absolute path or \"\", got {:?}", self.cache_dir),
            ));
        }
        if self.plugin_timeout.is_zero() {
            errs.push((
                "crust.network.plugin_timeout",
                "must be greater than 0s".to_owned(),
            ));
        }
        errs
    }
}

/// Comments printed by `crust config` for the `[crust.network]` keys.
pub fn doc(key: &str) -> Option<&'static str> {
    Some(match key {
        "crust.network" => "Pod networking through CNI plugins.",
        "crust.network.network_dir" => {
            "CNI network configurations (*.conf, *.conflist, *.json), watched for changes."
        }
        "crust.network.plugin_dirs" => "Directories searched in order for CNI plugin binaries.",
        "crust.network.default_network" => {
            "Network pods attach to; \"\" = the first valid file of network_dir in name order."
        }
        "crust.network.cache_dir" => {
            "Attachment cache (what DEL needs after a restart or reboot); \"\" = <root>/cni."
        }
        "crust.network.plugin_timeout" => {
            "Kill a CNI plugin that runs longer than this (e.g. \"60s\")."
        }
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_cache_resolves_against_root() {
        let c = NetworkConfig::default();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(
            c.cache_dir_for(Path::new("/var/lib/crust")),
            PathBuf::from("/var/lib/crust/cni")
        );
        let c = NetworkConfig {
            cache_dir: "/x".into(),
            ..c
        };
        assert_eq!(c.cache_dir_for(Path::new("/r")), PathBuf::from("/x"));
    }

    #[test]
    fn validate_rejects_relative_paths_and_zero_timeout() {
        let c = NetworkConfig {
            network_dir: "net.d".into(),
            plugin_dirs: vec![],
            cache_dir: "cache".into(),
            plugin_timeout: Duration::ZERO,
            ..Default::default()
        };
        let keys: Vec<_> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "crust.network.network_dir",
                "crust.network.plugin_dirs",
                "crust.network.cache_dir",
                "crust.network.plugin_timeout"
            ]
        );
    }

    #[test]
    fn parses_from_toml() {
        let c: NetworkConfig = toml::from_str(
            "network_dir = \"/tmp/n\"\nplugin_dirs = [\"/p\"]\nplugin_timeout = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(c.network_dir, PathBuf::from("/tmp/n"));
        assert_eq!(c.plugin_timeout, Duration::from_secs(5));
        assert!(toml::from_str::<NetworkConfig>("bogus = 1").is_err());
    }
}
