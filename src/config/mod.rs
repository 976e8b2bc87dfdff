//! Daemon configuration: `/etc/crust/crust.toml`, drop-ins `/etc/crust/crust.conf.d/*.toml`
//! (name order, later wins key by key), then command-line flags.
//!
//! The layout follows CRI-O's `crio.conf`: one top table `[crust]` with sub-tables per
//! subsystem (`[crust.api]`, `[crust.image]`, `[crust.runtime]`).
//! Adding a table is adding a field with its own struct: loading, merging, unknown-key
//! detection and printing ([`print`]) walk the serialized form and need no change.
//! Every struct denies unknown fields; errors name the file (or flag) and the dotted key.

pub mod duration;
pub mod flags;
pub mod load;
pub mod man;
pub mod metrics;
pub mod network;
pub mod print;
pub mod runtime;
pub mod streaming;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use flags::ConfigFlags;
pub use load::{ConfigError, load};

/// Default main config file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/crust/crust.toml";
/// Default drop-in directory.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/crust/crust.conf.d";

/// The effective configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The `[crust]` table.
    pub crust: CrustConfig,
}

/// `[crust]`: daemon-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrustConfig {
    /// Persistent state (image store below `<root>/storage`).
    pub root: PathBuf,
    /// Volatile state (sockets, mounts); lost on reboot.
    pub runroot: PathBuf,
    /// Storage driver; only overlay is supported.
    pub storage_driver: StorageDriver,
    /// Log level: error, warn, info, debug or trace.
    pub log_level: LogLevel,
    /// Log format: text or json.
    pub log_format: LogFormat,
    /// `[crust.api]`.
    pub api: ApiConfig,
    /// `[crust.image]`.
    pub image: ImageConfig,
    /// `[crust.runtime]`.
    pub runtime: runtime::RuntimeConfig,
    /// `[crust.network]`.
    pub network: network::NetworkConfig,
    /// `[crust.metrics]`.
    pub metrics: metrics::MetricsConfig,
    /// `[crust.stream]`.
    pub stream: streaming::StreamConfig,
}

impl Default for CrustConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/var/lib/crust"),
            runroot: PathBuf::from("/run/crust"),
            storage_driver: StorageDriver::Overlay,
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            api: ApiConfig::default(),
            image: ImageConfig::default(),
            runtime: runtime::RuntimeConfig::default(),
            network: network::NetworkConfig::default(),
            metrics: metrics::MetricsConfig::default(),
            stream: streaming::StreamConfig::default(),
        }
    }
}

/// `[crust.api]`: the CRI gRPC endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Unix socket path the CRI server listens on.
    pub listen: PathBuf,
    /// Largest gRPC message accepted, in bytes.
    pub grpc_max_recv_msg_size: usize,
    /// Largest gRPC message sent, in bytes.
    pub grpc_max_send_msg_size: usize,
}

/// 16 MiB, CRI-O's and containerd's default gRPC message limit.
pub const DEFAULT_GRPC_MSG_SIZE: usize = 16 * 1024 * 1024;

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: PathBuf::from("/run/crust/crust.sock"),
            grpc_max_recv_msg_size: DEFAULT_GRPC_MSG_SIZE,
            grpc_max_send_msg_size: DEFAULT_GRPC_MSG_SIZE,
        }
    }
}

/// `[crust.image]`: pulling and registries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    /// containers-registries.conf(5) file.
    pub registries_conf: PathBuf,
    /// Node-wide docker-style auth.json; empty means none.
    pub global_auth_file: PathBuf,
    /// Cancel a pull that makes no progress for this long; 0s disables.
    #[serde(with = "duration::serde_str")]
    pub pull_progress_timeout: Duration,
    /// Layers downloaded at once per pull.
    pub max_concurrent_downloads: usize,
    /// Make a pull's layers durable (`syncfs`) before PullImage returns, instead of in
    /// the background right after (containerd's `image_pull_with_sync_fs`).
    pub pull_sync_fs: bool,
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            registries_conf: PathBuf::from("/etc/containers/registries.conf"),
            global_auth_file: PathBuf::new(),
            pull_progress_timeout: Duration::from_secs(60),
            max_concurrent_downloads: 3,
            pull_sync_fs: false,
        }
    }
}

impl ImageConfig {
    /// The global auth file, if one is configured.
    pub fn auth_file(&self) -> Option<&Path> {
        (!self.global_auth_file.as_os_str().is_empty()).then_some(self.global_auth_file.as_path())
    }
}

/// Storage drivers. Only overlay exists; the enum rejects anything else at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageDriver {
    /// overlayfs.
    Overlay,
}

/// Log levels, lowest volume first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Normal operation.
    Info,
    /// Debugging.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The name used in config files and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Semantic checks that types alone do not express. Returns `(dotted key, reason)`.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errs = Vec::new();
        let c = &self.crust;
        let abs = |key: &'static str, p: &Path, errs: &mut Vec<(&'static str, String)>| {
            if !p.is_absolute() {
                errs.push((key, format!("must be an absolute path, got {p:?}")));
            }
        };
        abs("crust.root", &c.root, &mut errs);
        abs("crust.runroot", &c.runroot, &mut errs);
        abs("crust.api.listen", &c.api.listen, &mut errs);
        abs(
            "crust.image.registries_conf",
            &c.image.registries_conf,
            &mut errs,
        );
        if let Some(p) = c.image.auth_file() {
            abs("crust.image.global_auth_file", p, &mut errs);
        }
        for (key, v) in [
            (
                "crust.api.grpc_max_recv_msg_size",
                c.api.grpc_max_recv_msg_size,
            ),
            (
                "crust.api.grpc_max_send_msg_size",
                c.api.grpc_max_send_msg_size,
            ),
            (
                "crust.image.max_concurrent_downloads",
                c.image.max_concurrent_downloads,
            ),
        ] {
            if v == 0 {
                errs.push((key, "must be greater than 0".to_owned()));
            }
        }
        errs.extend(c.runtime.validate());
        errs.extend(c.network.validate());
        errs.extend(c.stream.validate());
        errs
    }

    /// The effective config as JSON (Status verbose info, `crust ctl info`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// The configuration shared with RPC handlers; replaced as a whole on SIGHUP.
pub type SharedConfig = Arc<RwLock<Arc<Config>>>;

/// Wrap a config for sharing.
pub fn shared(config: Config) -> SharedConfig {
    Arc::new(RwLock::new(Arc::new(config)))
}

/// The current config (a poisoned lock still holds a valid config: it is only ever
/// replaced whole).
pub fn current(shared: &SharedConfig) -> Arc<Config> {
    match shared.read() {
        Ok(g) => Arc::clone(&g),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

/// Replace the shared config.
pub fn replace(shared: &SharedConfig, config: Config) {
    let new = Arc::new(config);
    match shared.write() {
        Ok(mut g) => *g = new,
        Err(poisoned) => *poisoned.into_inner() = new,
    }
}
