//! The image service: pull images from registries into `crust-storage`, list, inspect and
//! remove them. CRI-free: `server/*_image*.rs` convert to and from CRI types.
//!
//! Layout: `pull.rs` (registry side: manifests, configs, streamed parallel layers),
//! `local.rs` (list/status/remove/usage against the store), `manifest.rs` (documents and
//! platform choice), `clients.rs` (cached oci-client clients, credentials mapping),
//! `bridge.rs` (async download -> `Read` for the unpacker), `inflight.rs` (sharing
//! concurrent identical work), `user.rs` (CRI uid/username), `error.rs`.
//!
//! All storage calls go through [`crate::blocking::run`].

mod bridge;
mod clients;
mod error;
mod inflight;
mod local;
pub mod manifest;
mod pull;
mod syncer;
pub mod user;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crust_storage::{ImageRecord, Store};
use tracing::Instrument;

pub use error::{ErrorKind, ImageError, store_kind};
pub use local::ImageDetails;
pub use syncer::LayerSyncer;
pub use user::ImageUser;

use crate::registries::{AuthFile, Credentials, ImageReference, Registries};

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
    /// Sync layers before PullImage returns rather than in the background.
    pub pull_sync_fs: bool,
}

/// The outcome of a pull.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The stored image record (its id is the CRI `image_ref`).
    pub record: ImageRecord,
    /// Compressed bytes downloaded by this pull (0 when every layer was present).
    pub downloaded: u64,
}

/// State shared with the background tasks of pulls.
pub(crate) struct Inner {
    store: Arc<Store>,
    registries: RwLock<Registries>,
    auth: RwLock<Arc<AuthFile>>,
    clients: clients::Clients,
    pulls: inflight::InFlight<String, Result<PulledImage, Arc<ImageError>>>,
    layer_pulls: inflight::InFlight<String, Result<(u64, u64), Arc<ImageError>>>,
    pull_progress_timeout: Duration,
    max_concurrent_downloads: usize,
    pull_sync_fs: bool,
    /// Makes pulled layers durable in the background (`syncer.rs`).
    syncer: Arc<LayerSyncer>,
}

impl Inner {
    fn registries(&self) -> Registries {
        match self.registries.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn auth_file(&self) -> Arc<AuthFile> {
        match self.auth.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// Build the clients of the configured registries in the background, so that the first
/// pull after start-up or a reload does not spend its first milliseconds on it
/// (`clients.rs`).
fn prewarm_clients(inner: &Arc<Inner>) {
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let endpoints = inner.registries().known_endpoints();
        let task = move || inner.clients.prewarm(&endpoints);
        if let Err(e) = crate::blocking::run("prepare registry clients", task).await {
            tracing::debug!(error = %e, "registry clients not prepared");
        }
    });
}

/// The image service. Cheap to share behind the server's `Arc<Context>`.
pub struct ImageService {
    opts: ImageServiceOptions,
    inner: Arc<Inner>,
}

fn load_auth(path: Option<&Path>) -> Result<AuthFile, ImageError> {
    match path {
        Some(p) => AuthFile::load(p).map_err(|source| ImageError::Config {
            source: Box::new(source),
        }),
        None => Ok(AuthFile::empty()),
    }
}

impl ImageService {
    /// Open the store below `opts.storage_root`, cleaning up what a crash left behind, and
    /// load registries.conf and auth.json.
    pub async fn open(opts: ImageServiceOptions) -> Result<Self, ImageError> {
        clients::install_crypto_provider();
        let root = opts.storage_root.clone();
        let store = crate::blocking::run("open store", move || {
            Store::open(&root).map_err(|e| ImageError::store(format!("open {}", root.display()), e))
        })
        .await??;
        let registries =
            Registries::load(&opts.registries_conf).map_err(|source| ImageError::Config {
                source: Box::new(source),
            })?;
        let auth = load_auth(opts.auth_file.as_deref())?;
        let inner = Arc::new(Inner {
            store: Arc::new(store),
            registries: RwLock::new(registries),
            auth: RwLock::new(Arc::new(auth)),
            clients: clients::Clients::default(),
            pulls: inflight::InFlight::default(),
            layer_pulls: inflight::InFlight::default(),
            pull_progress_timeout: opts.pull_progress_timeout,
            max_concurrent_downloads: opts.max_concurrent_downloads.max(1),
            pull_sync_fs: opts.pull_sync_fs,
            syncer: Arc::new(LayerSyncer::default()),
        });
        prewarm_clients(&inner);
        Ok(Self { opts, inner })
    }

    /// The options the service was opened with.
    pub fn options(&self) -> &ImageServiceOptions {
        &self.opts
    }

    /// The underlying store (for the container side of the runtime).
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// Wait until every pulled layer has reached the disk (graceful shutdown).
    pub async fn flush(&self) {
        self.inner.syncer.flush().await;
    }

    /// Re-read registries.conf and auth.json (SIGHUP). On error nothing changes.
    pub async fn reload(
        &self,
        registries_conf: PathBuf,
        auth_file: Option<PathBuf>,
    ) -> Result<(), ImageError> {
        let registries =
            Registries::load(&registries_conf).map_err(|source| ImageError::Config {
                source: Box::new(source),
            })?;
        let auth = load_auth(auth_file.as_deref())?;
        match self.inner.registries.write() {
            Ok(mut g) => *g = registries,
            Err(poisoned) => *poisoned.into_inner() = registries,
        }
        match self.inner.auth.write() {
            Ok(mut g) => *g = Arc::new(auth),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(auth),
        }
        // Clients hold credentials and tokens obtained with the old configuration.
        self.inner.clients.clear();
        prewarm_clients(&self.inner);
        tracing::info!(registries_conf = %registries_conf.display(), "registry configuration reloaded");
        Ok(())
    }

    /// Pull `image` (any form CRI accepts: short name, tag, digest). `creds` are the
    /// request's credentials; `None` means "use the node's auth.json, else anonymous".
    ///
    /// Concurrent pulls resolving to the same references with the same credentials share
    /// one download and all get the same answer.
    pub async fn pull(
        &self,
        image: &str,
        creds: Option<Credentials>,
    ) -> Result<PulledImage, ImageError> {
        ImageReference::parse(image).map_err(|source| ImageError::InvalidReference {
            image: image.to_string(),
            source: Box::new(source),
        })?;
        let candidates =
            self.inner
                .registries()
                .resolve(image)
                .map_err(|source| ImageError::Resolve {
                    image: image.to_string(),
                    source: Box::new(source),
                })?;
        let auth_key = creds
            .as_ref()
            .map(|c| clients::fingerprint(&clients::registry_auth(c)))
            .unwrap_or_default();
        let key = format!(
            "{}|{auth_key}",
            candidates
                .iter()
                .map(|c| c.reference.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let inner = Arc::clone(&self.inner);
        let image_owned = image.to_string();
        let span = tracing::info_span!("pull", image = %image);
        let result = self
            .inner
            .pulls
            .run(key, move || {
                async move {
                    let started = Instant::now();
                    tracing::info!("pull started");
                    let res = pull::pull_candidates(inner, image_owned, candidates, creds).await;
                    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    match &res {
                        Ok(p) => tracing::info!(id = %p.record.id, bytes = p.downloaded, size = p.record.size, ms, "pull finished"),
                        Err(e) => tracing::warn!(ms, error = %e.full_message(), "pull failed"),
                    }
                    crate::metrics::record_pull(res.as_ref().ok().map(|p| p.downloaded));
                    res.map_err(Arc::new)
                }
                .instrument(span)
            })
            .await;
        match result {
            Some(Ok(p)) => Ok(p),
            Some(Err(e)) => Err(ImageError::Shared(e)),
            None => Err(ImageError::Aborted {
                image: image.to_string(),
            }),
        }
    }

    /// Images matching `filter` (id, id prefix, tag or digest reference, normalised like a
    /// pull), or all images when `filter` is `None`.
    pub async fn list(&self, filter: Option<&str>) -> Result<Vec<ImageRecord>, ImageError> {
        local::list(&self.inner, filter).await
    }

    /// The image `name_or_id` refers to, with its config; `None` when unknown.
    pub async fn status(&self, name_or_id: &str) -> Result<Option<ImageDetails>, ImageError> {
        local::status(&self.inner, name_or_id).await
    }

    /// Remove `name_or_id`: by id or digest reference the whole image, by tag only that tag
    /// (the image goes when its last tag does). Unknown images are not an error (CRI
    /// RemoveImage is idempotent). Returns whether something was removed.
    pub async fn remove(&self, name_or_id: &str) -> Result<bool, ImageError> {
        local::remove(&self.inner, name_or_id).await
    }

    /// Usage of the image store, for ImageFsInfo.
    pub async fn usage(&self) -> Result<crust_storage::Usage, ImageError> {
        local::usage(&self.inner).await
    }
}
