//! The store: on-disk layout, shared in-memory state, public record types and `Store::open`.
//!
//! Layout below the root `R` (modelled on containers/storage's overlay driver):
//! - `blobs/sha256/<hex>`: manifests, configs, indexes (content addressed, verified on write).
//! - `layers/<diffid-hex>/{diff/,layer.json,link}`: one unpacked layer, shared by every image
//!   that uses it. A layer directory without a valid `layer.json` is incomplete (never
//!   published: publication is a rename of a finished temp dir) and removed at open.
//! - `l/<short>` -> `../layers/<hex>/diff`: short names so an overlay `lowerdir=` list of
//!   150 layers fits the one-page limit on mount data (containers/storage does the same).
//! - `images/<id-hex>.json`: image records (id = config digest).
//! - `containers/<id>/{upper,work,merged,container.json}`: writable container layers.
//! - `tmp/`: work in progress; emptied at open.
//! - `empty/`: an empty lower directory for images without layers.
//!
//! Reference counts are derived, never stored: a layer or blob is live while an image or
//! container record references it (or it was written in the last `gc_grace`, which protects
//! a pull in progress whose image record is not written yet).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::compression::Compression;
use crate::digest::Digest;
use crate::error::StoreError;
use crate::images::ImageIndex;

/// How long freshly written, still unreferenced layers and blobs are kept by `gc` by default.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(3600);

/// What `apply_layer` needs to know about a layer (from the manifest and image config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyLayer {
    /// Expected uncompressed digest (image config `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Expected digest of the bytes read (the manifest's layer descriptor digest).
    pub compressed_digest: Digest,
    /// How the stream is compressed.
    pub compression: Compression,
    /// Expected length of the stream (manifest descriptor size); a longer or shorter stream
    /// is an error.
    pub compressed_size: Option<u64>,
    /// Start each file's writeback while unpacking (`UnpackOptions::start_writeback`):
    /// set it when the layer is synced as soon as it is stored (`Store::sync_layers`).
    pub start_writeback: bool,
}

/// A published layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer's diff id (its key).
    pub diff_id: Digest,
    /// The digest of the compressed blob it was unpacked from.
    pub compressed_digest: Digest,
    /// Uncompressed size: the length of the layer tar stream (what CRI-O reports as a
    /// layer's uncompressed size).
    pub size: u64,
    /// `<R>/layers/<hex>/diff`.
    pub path: PathBuf,
}

/// An image record (`images/<id-hex>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest.
    pub id: Digest,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    /// Repo tags, "docker.io/library/busybox:latest"; each names exactly one image.
    #[serde(default)]
    pub repo_tags: Vec<String>,
    /// Repo digests, "docker.io/library/busybox@sha256:..".
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// Diff ids, bottom layer first.
    #[serde(default)]
    pub layers: Vec<Digest>,
    /// Sum of the layers' uncompressed sizes.
    #[serde(default)]
    pub size: u64,
    /// When it was stored.
    #[serde(default)]
    pub created_unix_nanos: i64,
    /// Pinned images are exempt from kubelet image GC (CRI `Image.pinned`).
    #[serde(default)]
    pub pinned: bool,
}

/// Result of [`Store::untag_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untagged {
    /// The name was removed; the image remains.
    Untagged {
        /// The image that held the name.
        image: Digest,
    },
    /// The name was the image's last tag: the image was removed.
    Removed {
        /// The removed image.
        image: Digest,
    },
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Layer directories removed.
    pub layers_removed: usize,
    /// Blobs removed.
    pub blobs_removed: usize,
    /// Disk bytes (st_blocks * 512) freed.
    pub bytes_freed: u64,
}

/// Disk usage (CRI `FilesystemUsage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated on disk (st_blocks * 512), each inode counted once.
    pub bytes: u64,
    /// Inodes, each counted once (hardlinks are one inode).
    pub inodes: u64,
    /// The directory whose filesystem holds the data.
    pub mountpoint: PathBuf,
}

/// A container's writable layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLayer {
    /// The container id.
    pub id: String,
    /// The image it was created from.
    pub image: Digest,
    /// `<R>/containers/<id>`.
    pub dir: PathBuf,
    /// Whether `<dir>/merged` is currently a mount point.
    pub mounted: bool,
}

/// `layers/<hex>/layer.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    pub diff_id: Digest,
    pub compressed_digest: Digest,
    /// Length of the uncompressed tar stream.
    pub size: u64,
    /// st_blocks * 512 of the unpacked tree, each inode once (measured at publish time).
    pub disk_bytes: u64,
    /// Inodes of the unpacked tree, each once.
    pub inodes: u64,
    /// Name of the `l/` link.
    pub short: String,
    pub created_unix_nanos: i64,
}

/// `containers/<id>/container.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub id: String,
    pub image: Digest,
    /// The image's layers at creation, bottom first (kept so the layers stay referenced).
    pub layers: Vec<Digest>,
    pub created_unix_nanos: i64,
}

/// Image and container records; one lock so "is this image in use" and "remove it" agree.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    pub images: ImageIndex,
    pub containers: BTreeMap<String, ContainerRecord>,
}

/// One in-progress layer unpack others may wait for.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    pub done: Mutex<bool>,
    pub cond: Condvar,
}

/// The image and layer store. `Send + Sync`; share it in an `Arc`.
#[derive(Debug)]
pub struct Store {
    pub(crate) root: PathBuf,
    /// Lock order: meta -> layers -> fresh. `inflight` and `mount_lock` are never held
    /// while taking another lock except as documented at their use.
    pub(crate) meta: RwLock<Meta>,
    pub(crate) layers: RwLock<HashMap<Digest, LayerRecord>>,
    pub(crate) inflight: Mutex<HashMap<Digest, Arc<InFlight>>>,
    /// Layers and blobs written (or reused by `apply_layer`) recently: protected from gc
    /// until an image references them or the grace period passes.
    pub(crate) fresh: Mutex<HashMap<Digest, Instant>>,
    pub(crate) mount_lock: Mutex<()>,
    gc_grace_ms: AtomicU64,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Directories below the storage root, created by [`Store::open`].
const LAYOUT_DIRS: [&str; 7] = [
    "blobs/sha256",
    "layers",
    "l",
    "images",
    "containers",
    "tmp",
    "empty",
];

impl Store {
    /// Create or open the store at `root`, removing what a crash left behind (temp dirs,
    /// incomplete layers, dangling links, image records whose layers or blobs are missing)
    /// and loading the records. Mounts are not touched.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for d in LAYOUT_DIRS {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(StoreError::io("create directory", &p))?;
        }
        let root = fs::canonicalize(root).map_err(StoreError::io("resolve", root))?;
        let store = Store {
            root,
            meta: RwLock::new(Meta::default()),
            layers: RwLock::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            fresh: Mutex::new(HashMap::new()),
            mount_lock: Mutex::new(()),
            gc_grace_ms: AtomicU64::new(DEFAULT_GC_GRACE.as_millis() as u64),
        };
        store.recover()?;
        Ok(store)
    }

    /// The storage root (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How long `gc` keeps freshly written layers and blobs that no image references yet
    /// (protects a pull between its `apply_layer` calls and its `put_image`).
    pub fn set_gc_grace(&self, grace: Duration) {
        self.gc_grace_ms
            .store(grace.as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn gc_grace(&self) -> Duration {
        Duration::from_millis(self.gc_grace_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn mark_fresh(&self, d: &Digest) {
        lock(&self.fresh).insert(d.clone(), Instant::now());
    }

    pub(crate) fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }
    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }
    pub(crate) fn layer_dir(&self, d: &Digest) -> PathBuf {
        self.layers_dir().join(d.hex())
    }
    pub(crate) fn links_dir(&self) -> PathBuf {
        self.root.join("l")
    }
    pub(crate) fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
    pub(crate) fn image_path(&self, d: &Digest) -> PathBuf {
        self.images_dir().join(format!("{}.json", d.hex()))
    }
    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh, empty directory under `tmp/`.
    pub(crate) fn new_tmp_dir(&self) -> Result<PathBuf, StoreError> {
        let p = self.tmp_dir().join(crate::atomic::unique_name());
        fs::create_dir(&p).map_err(StoreError::io("create directory", &p))?;
        Ok(p)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("root")).unwrap();
        for d in LAYOUT_DIRS {
            assert!(s.root().join(d).is_dir(), "{d}");
        }
        // Reopen is fine.
        drop(s);
        Store::open(&dir.path().join("root")).unwrap();
    }
}
