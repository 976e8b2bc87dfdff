//! Command-line flags: one per config key, applied on top of the files.
//!
//! Flags are turned into `(key, value)` overlays and go through the same per-key checks as
//! file values, so a bad flag value is reported as `flag --x: key: reason`.

use std::path::PathBuf;

use super::runtime::CgroupManager;
use super::{LogFormat, LogLevel, StorageDriver};

/// Config file locations and per-key overrides (global flags of `crust`).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Daemon configuration (also for `crust config`)")]
pub struct ConfigFlags {
    /// Main config file [default: /etc/crust/crust.toml; must exist when given]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Drop-in directory; *.toml files applied in name order [default: /etc/crust/crust.conf.d]
    #[arg(long, global = true, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// crust.root: persistent state directory
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// crust.runroot: volatile state directory
    #[arg(long, global = true, value_name = "DIR")]
    pub runroot: Option<PathBuf>,
    /// crust.storage_driver
    #[arg(long, global = true, value_enum)]
    pub storage_driver: Option<StorageDriver>,
    /// crust.log_level
    #[arg(long, global = true, value_enum)]
    pub log_level: Option<LogLevel>,
    /// crust.log_format
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// crust.api.listen: CRI unix socket path
    #[arg(long, global = true, value_name = "PATH")]
    pub listen: Option<PathBuf>,
    /// crust.api.grpc_max_recv_msg_size (bytes)
    #[arg(long, global = true, value_name = "BYTES")]
    pub grpc_max_recv_msg_size: Option<usize>,
    /// crust.api.grpc_max_send_msg_size (bytes)
    #[arg(long, global = true, value_name = "BYTES")]
    pub grpc_max_send_msg_size: Option<usize>,
    /// crust.image.registries_conf: containers-registries.conf(5) file
    #[arg(long, global = true, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    /// crust.image.global_auth_file: node-wide auth.json ("" = none)
    #[arg(long, global = true, value_name = "FILE")]
    pub global_auth_file: Option<PathBuf>,
    /// crust.image.pull_progress_timeout (e.g. 60s, 5m; 0s disables)
    #[arg(long, global = true, value_name = "DURATION")]
    pub pull_progress_timeout: Option<String>,
    /// crust.image.max_concurrent_downloads
    #[arg(long, global = true, value_name = "N")]
    pub max_concurrent_downloads: Option<usize>,
    /// crust.runtime.default_runtime: handler for pods that name none
    #[arg(long, global = true, value_name = "HANDLER")]
    pub default_runtime: Option<String>,
    /// crust.runtime.cgroup_manager
    #[arg(long, global = true, value_enum)]
    pub cgroup_manager: Option<CgroupManager>,
}

fn path_value(p: &std::path::Path) -> toml::Value {
    toml::Value::String(p.to_string_lossy().into_owned())
}

fn int_value(n: usize) -> toml::Value {
    toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

impl ConfigFlags {
    /// The overrides given, as `(flag, dotted key, value)`.
    pub fn overlays(&self) -> Vec<(&'static str, &'static str, toml::Value)> {
        let mut out = Vec::new();
        let s = |v: &str| toml::Value::String(v.to_owned());
        if let Some(p) = &self.root {
            out.push(("--root", "crust.root", path_value(p)));
        }
        if let Some(p) = &self.runroot {
            out.push(("--runroot", "crust.runroot", path_value(p)));
        }
        if self.storage_driver.is_some() {
            out.push(("--storage-driver", "crust.storage_driver", s("overlay")));
        }
        if let Some(l) = self.log_level {
            out.push(("--log-level", "crust.log_level", s(l.as_str())));
        }
        if let Some(f) = self.log_format {
            let v = match f {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            };
            out.push(("--log-format", "crust.log_format", s(v)));
        }
        if let Some(p) = &self.listen {
            out.push(("--listen", "crust.api.listen", path_value(p)));
        }
        if let Some(n) = self.grpc_max_recv_msg_size {
            out.push((
                "--grpc-max-recv-msg-size",
                "crust.api.grpc_max_recv_msg_size",
                int_value(n),
            ));
        }
        if let Some(n) = self.grpc_max_send_msg_size {
            out.push((
                "--grpc-max-send-msg-size",
                "crust.api.grpc_max_send_msg_size",
                int_value(n),
            ));
        }
        if let Some(p) = &self.registries_conf {
            out.push((
                "--registries-conf",
                "crust.image.registries_conf",
                path_value(p),
            ));
        }
        if let Some(p) = &self.global_auth_file {
            out.push((
                "--global-auth-file",
                "crust.image.global_auth_file",
                path_value(p),
            ));
        }
        if let Some(d) = &self.pull_progress_timeout {
            out.push((
                "--pull-progress-timeout",
                "crust.image.pull_progress_timeout",
                s(d),
            ));
        }
        if let Some(n) = self.max_concurrent_downloads {
            out.push((
                "--max-concurrent-downloads",
                "crust.image.max_concurrent_downloads",
                int_value(n),
            ));
        }
        if let Some(h) = &self.default_runtime {
            out.push(("--default-runtime", "crust.runtime.default_runtime", s(h)));
        }
        if let Some(m) = self.cgroup_manager {
            out.push((
                "--cgroup-manager",
                "crust.runtime.cgroup_manager",
                s(m.as_str()),
            ));
        }
        out
    }
}
