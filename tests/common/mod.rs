//! Shared end-to-end harness: a throw-away registry, an in-memory image builder and a
//! real `crust` daemon on temp dirs. Used by `tests/*.rs` and `benches/bench.rs`.
#![allow(dead_code, unused_imports)]

pub mod cri;
pub mod daemon;
pub mod image;
pub mod leftovers;
pub mod net;
pub mod registry;
pub mod stream;

use std::path::Path;

use anyhow::Result;

pub use cri::*;
pub use daemon::{Daemon, connect, registries_conf};
pub use image::*;
pub use registry::Registry;

/// One test's world: a registry, a temp dir and a daemon trusting that registry.
/// Field order matters: the daemon is dropped (and unmounted) before the temp dir.
pub struct Env {
    pub daemon: Daemon,
    pub registry: Registry,
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub async fn new() -> Result<Self> {
        Self::with_registries_extra("").await
    }

    /// Like [`Env::new`] with extra registries.conf text (`{HOST}` is replaced by the
    /// registry's `127.0.0.1:<port>`).
    pub async fn with_registries_extra(extra: &str) -> Result<Self> {
        let registry = Registry::start()?;
        let tmp = tempfile::Builder::new().prefix("crust-e2e-").tempdir()?;
        let conf = registries_conf(&registry.host, &extra.replace("{HOST}", &registry.host));
        let daemon = Daemon::start(&tmp.path().join("d"), &conf).await?;
        Ok(Self {
            daemon,
            registry,
            tmp,
        })
    }

    /// Fully qualified reference `127.0.0.1:<port>/<repo_tag>`.
    pub fn r(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.host)
    }

    pub fn base(&self) -> &Path {
        self.tmp.path()
    }
}
