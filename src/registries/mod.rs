//! containers-registries.conf(5) v2 and registry credentials.
//!
//! - [`reference`]: the docker/distribution reference grammar and docker.io normalisation;
//! - [`conf`]: registries.conf v2 + `registries.conf.d` drop-ins;
//! - [`resolve`]: short-name expansion, aliases, mirrors, blocked/insecure registries;
//! - [`auth`]: auth.json lookup and CRI `AuthConfig` credentials.
//!
//! Pure logic, no network: the image service decides how to talk to each [`Endpoint`].

pub mod auth;
pub mod conf;
pub mod reference;
pub mod resolve;

use std::path::Path;
use std::sync::Arc;

pub use auth::{AuthFile, Credentials, credentials_from_fields};
pub use conf::{PullFromMirror, ShortNameMode};
pub use reference::{ImageReference, ReferenceError};
pub use resolve::{Candidate, Endpoint};

/// Errors of registries.conf, resolution and credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    /// A config file could not be read.
    #[error("cannot read {file}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A config file is not valid TOML or has unknown keys / wrong types.
    #[error("{file}: {reason}")]
    Parse {
        /// The file.
        file: String,
        /// The parser's message (names the key).
        reason: String,
    },
    /// A config entry breaks a rule of containers-registries.conf(5).
    #[error("{file}: {entry}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// The entry (`registry[0] (prefix ..)`, `aliases."x"`).
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// The image string is not a valid reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The registry an image would be pulled from is blocked.
    #[error("registry {registry} is blocked in registries.conf: refusing to pull `{image}`")]
    Blocked {
        /// The blocked registry prefix.
        registry: String,
        /// The image as requested.
        image: String,
    },
    /// A short name cannot be expanded.
    #[error("short name `{image}`: {reason}")]
    ShortName {
        /// The image as requested.
        image: String,
        /// Why.
        reason: String,
    },
    /// auth.json is malformed.
    #[error("auth file {file}: {reason}")]
    AuthFile {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A CRI `AuthConfig` field is malformed.
    #[error("auth config field `{field}`: {reason}")]
    AuthField {
        /// The field name.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// Parsed registries.conf (+ drop-ins). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Registries {
    conf: Arc<conf::ConfFile>,
}

impl Default for Registries {
    fn default() -> Self {
        Self::from_conf(conf::ConfFile::default())
    }
}

impl Registries {
    fn from_conf(c: conf::ConfFile) -> Self {
        Registries { conf: Arc::new(c) }
    }

    /// Load `path` and `<dir of path>/registries.conf.d/*.conf` (name order). A missing file
    /// means defaults: `unqualified-search-registries = ["docker.io"]`, no mirrors.
    pub fn load(path: &Path) -> Result<Registries, RegistriesError> {
        conf::load(path).map(Self::from_conf)
    }

    /// Parse one file's text; `origin` names it in errors.
    pub fn from_toml_str(s: &str, origin: &str) -> Result<Registries, RegistriesError> {
        conf::parse(s, origin).map(Self::from_conf)
    }

    /// Effective search registries (default `["docker.io"]` when the key is absent).
    pub fn search_registries(&self) -> Vec<String> {
        self.conf
            .unqualified_search_registries
            .clone()
            .unwrap_or_else(|| vec!["docker.io".to_string()])
    }

    /// Configured `short-name-mode` (informational: crust never prompts, see [`ShortNameMode`]).
    pub fn short_name_mode(&self) -> ShortNameMode {
        self.conf.short_name_mode.unwrap_or_default()
    }

    /// Registry hosts (`host[:port]`) a pull may contact without being named in full,
    /// with whether each is `insecure`: the search registries and every location and
    /// mirror of a `[[registry]]` that is not blocked, in that order, without duplicates.
    /// The image service prepares clients for them before the first pull needs one.
    pub fn known_endpoints(&self) -> Vec<(String, bool)> {
        let host = |location: &str| location.split('/').next().unwrap_or(location).to_string();
        let mut out: Vec<(String, bool)> = Vec::new();
        let mut push = |h: String, insecure: bool| {
            if !h.is_empty() && !h.starts_with('*') && !out.iter().any(|(o, _)| *o == h) {
                out.push((h, insecure));
            }
        };
        for name in self.search_registries() {
            match resolve::find_registry(&self.conf, &name) {
                Some(r) if r.blocked => {}
                Some(r) => push(host(&name), r.insecure),
                None => push(host(&name), false),
            }
        }
        for r in self.conf.registry.iter().filter(|r| !r.blocked) {
            for m in &r.mirror {
                push(host(&m.location), m.insecure);
            }
            let location = if r.location.is_empty() {
                &r.prefix
            } else {
                &r.location
            };
            push(host(location), r.insecure);
        }
        out
    }

    /// What to try, in order, for a user-supplied image string; see [`resolve`].
    pub fn resolve(&self, image: &str) -> Result<Vec<Candidate>, RegistriesError> {
        resolve::resolve(&self.conf, &self.search_registries(), image)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn known_endpoints_cover_search_registries_locations_and_mirrors() {
        let r = Registries::from_toml_str(
            "unqualified-search-registries = [\"local:5000\", \"docker.io\", \"bad.io\"]\n\
             [[registry]]\nlocation = \"local:5000\"\ninsecure = true\n\
             [[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n\
             [[registry.mirror]]\nlocation = \"mirror.example/dockerhub\"\n\
             [[registry]]\nprefix = \"bad.io\"\nblocked = true\n",
            "test.conf",
        )
        .unwrap();
        assert_eq!(
            r.known_endpoints(),
            vec![
                ("local:5000".to_string(), true),
                ("docker.io".to_string(), false),
                ("mirror.example".to_string(), false),
            ]
        );
        assert_eq!(
            Registries::default().known_endpoints(),
            vec![("docker.io".to_string(), false)]
        );
    }
}
