//! `NetworkError`: everything that can go wrong attaching pods to CNI networks, naming the
//! network, the plugin and the CNI verb concerned, classified into CRI error kinds by
//! [`NetworkError::kind`] (mapped to gRPC codes only in `server/error.rs`).

use std::path::PathBuf;
use std::time::Duration;

use crate::image::ErrorKind;

/// A pod network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No usable network: no config, none valid, or the configured default is missing.
    #[error("pod network not ready: {reason}")]
    NotReady {
        /// Why (the same text `Status` reports).
        reason: String,
    },
    /// A plugin answered with a CNI error (spec "Error" result, non-zero exit).
    #[error(
        "network {network}: plugin {plugin} failed on {command}: {msg}{}",
        details_suffix(details)
    )]
    Plugin {
        /// Network name.
        network: String,
        /// Plugin `type`.
        plugin: String,
        /// CNI verb (`ADD`, `DEL`, ...).
        command: &'static str,
        /// CNI error code (0 when the plugin printed no error JSON).
        code: u32,
        /// `msg`.
        msg: String,
        /// `details`.
        details: String,
    },
    /// The plugin binary is in none of the plugin directories.
    #[error("network {network}: plugin {plugin} not found in {}", dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))]
    PluginNotFound {
        /// Network name.
        network: String,
        /// Plugin `type`.
        plugin: String,
        /// Directories searched.
        dirs: Vec<PathBuf>,
    },
    /// The plugin could not be started or its pipes failed.
    #[error("network {network}: run plugin {path} for {command}")]
    Spawn {
        /// Network name.
        network: String,
        /// Binary.
        path: PathBuf,
        /// CNI verb.
        command: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The plugin ran longer than `plugin_timeout` and was killed.
    #[error("network {network}: plugin {plugin} timed out on {command} after {timeout:?}")]
    Timeout {
        /// Network name.
        network: String,
        /// Plugin `type`.
        plugin: String,
        /// CNI verb.
        command: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// The plugin succeeded but printed something that is not a CNI result.
    #[error("network {network}: plugin {plugin} printed an invalid {command} result: {reason}")]
    BadResult {
        /// Network name.
        network: String,
        /// Plugin `type`.
        plugin: String,
        /// CNI verb.
        command: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A pod annotation or field that feeds a runtime capability is malformed.
    #[error("{field} {value:?}: {reason}")]
    InvalidArgument {
        /// Annotation key or CRI field.
        field: String,
        /// Its value.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// Reading or removing an attachment cache file failed.
    #[error("{op} network attachment cache {path}")]
    Cache {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing an attachment cache file failed.
    #[error("write network attachment cache")]
    CacheWrite(#[from] crate::atomic_file::AtomicWriteError),
    /// A cache file exists but cannot be used.
    #[error("network attachment cache {path} is unusable: {reason}")]
    CacheCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A cached network config no longer parses (it parsed when ADD ran).
    #[error("cached config of network {network}: {reason}")]
    CachedConfig {
        /// Network name.
        network: String,
        /// What is wrong.
        reason: String,
    },
    /// A blocking task failed to complete.
    #[error(transparent)]
    Blocking(#[from] crate::blocking::JoinError),
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}

impl NetworkError {
    /// The CRI error kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotReady { .. } => ErrorKind::FailedPrecondition,
            Self::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        }
    }

    /// The error and all its sources, for the gRPC message and logs.
    pub fn full_message(&self) -> String {
        crate::errfmt::full_message(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_error_names_network_plugin_and_message() {
        let e = NetworkError::Plugin {
            network: "net1".into(),
            plugin: "bridge".into(),
            command: "ADD",
            code: 11,
            msg: "failed to allocate".into(),
            details: "range full".into(),
        };
        assert_eq!(
            e.to_string(),
            "network net1: plugin bridge failed on ADD: failed to allocate (range full)"
        );
        assert_eq!(e.kind(), ErrorKind::Internal);
        let e = NetworkError::NotReady { reason: "x".into() };
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    }
}
