//! The image service: pull images from registries into `crust-storage`, list, inspect and
//! remove them. CRI-free: `server/*_image*.rs` convert to and from CRI types.
//!
//! SKELETON: the helper owning `src/image/` replaces the bodies below; the signatures of
//! [`ImageServiceOptions`] and the public methods are the contract with `daemon.rs` and
//! `server/`.

use std::path::PathBuf;
use std::time::Duration;

/// What the daemon passes to [`ImageService::open`], derived from the config.
#[derive(Debug, Clone)]
pub struct ImageServiceOptions {
    /// Storage root (`<root>/storage` is created below `config.root`).
    pub storage_root: PathBuf,
    /// containers-registries.conf(5) v2 file; missing file means built-in defaults.
    pub registries_conf: PathBuf,
    /// Node-wide docker-style `auth.json`, when present.
    pub auth_file: Option<PathBuf>,
    /// A pull that receives no bytes for this long is cancelled.
    pub pull_progress_timeout: Duration,
    /// Layers downloaded at once per pull.
    pub max_concurrent_downloads: usize,
}

/// Errors of the image service.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Placeholder until the image service lands.
    #[error("image service is not implemented yet")]
    NotImplemented,
}

/// The image service. Cheap to share behind the server's `Arc<Context>`.
pub struct ImageService {
    opts: ImageServiceOptions,
}

impl ImageService {
    /// Open the store below `opts.storage_root`, cleaning up what a crash left behind.
    pub async fn open(opts: ImageServiceOptions) -> Result<Self, ImageError> {
        Ok(Self { opts })
    }

    /// The options the service was opened with.
    pub fn options(&self) -> &ImageServiceOptions {
        &self.opts
    }

    /// Re-read registries.conf and auth.json (SIGHUP).
    pub async fn reload(&self, registries_conf: PathBuf, auth_file: Option<PathBuf>) -> Result<(), ImageError> {
        let _ = (registries_conf, auth_file);
        Err(ImageError::NotImplemented)
    }
}
