//! `crust-hooks`: OCI hooks configured by `hooks.d` JSON files, injected into containers'
//! `config.json`.
//!
//! This follows the oci-hooks(5) format and the semantics of containers/common `pkg/hooks`
//! (what CRI-O and Podman use), schema `1.0.0` only:
//! - [`schema`]: reading and validating one hook file (`version`, `hook`, `when`, `stages`);
//! - [`matching`]: the `when` conditions (`always`, `annotations`, `commands`,
//!   `hasBindMounts`), all of which must match;
//! - [`manager`]: the hook directories (later directories mask same-named files of earlier
//!   ones, hooks ordered by file name), reloaded when they change, and the per-stage hook
//!   lists for one container.
//!
//! The crate is synchronous and knows nothing about CRI or tokio: the daemon calls it
//! through `crate::blocking::run` and converts [`StageHooks`] into OCI spec hooks.

pub mod manager;
pub mod matching;
pub mod schema;

use std::path::PathBuf;

pub use manager::{DEFAULT_HOOK_DIRS, HookManager, LoadedHook, StageHooks};
pub use matching::MatchInput;
pub use schema::{Hook, HookFile, Stage};

/// Why a hook file could not be used. A file with such an error is skipped (and logged);
/// the other hooks keep working.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The file (or its directory) could not be read.
    #[error("cannot {op} {path}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid JSON for the hook schema.
    #[error("cannot parse hook file {path}")]
    Parse {
        /// The hook file.
        path: PathBuf,
        /// The JSON error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// `version` is not a schema crust supports.
    #[error("hook file {path}: unsupported version {version:?} (expected \"1.0.0\")")]
    Version {
        /// The hook file.
        path: PathBuf,
        /// The version found ("" when missing).
        version: String,
    },
    /// A field is missing or has a bad value.
    #[error("hook file {path}: {field} {value:?} {reason}")]
    Invalid {
        /// The hook file.
        path: PathBuf,
        /// Dotted field name, e.g. `hook.path` or `stages[1]`.
        field: String,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `when.annotations` or `when.commands` entry is not a valid regular expression.
    #[error("hook file {path}: {field} {pattern:?} is not a valid regular expression")]
    Regex {
        /// The hook file.
        path: PathBuf,
        /// Dotted field name, e.g. `when.commands[0]`.
        field: String,
        /// The pattern.
        pattern: String,
        /// The regex compile error.
        #[source]
        source: regex::Error,
    },
}

impl HookError {
    /// The message with every source, `a: b: c`, for one-line logs.
    pub fn full_message(&self) -> String {
        let mut msg = self.to_string();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            msg.push_str(": ");
            msg.push_str(&e.to_string());
            cur = e.source();
        }
        msg
    }
}
