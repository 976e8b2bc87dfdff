//! Garbage collection and disk usage.
//!
//! Reference counts are derived, not stored (so a crash can never leave a wrong count): a
//! layer or blob is live while an image record or container record references it. Blobs
//! named by a repo digest (`repo@sha256:..`, e.g. a multi-platform index) count as referenced.
//! Content written within the gc grace period and not yet referenced is kept: a pull stores
//! its layers and blobs before the image record that references them.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use crate::atomic::{fsync_dir, remove_all};
use crate::digest::Digest;
use crate::du::disk_usage;
use crate::error::StoreError;
use crate::store::{GcStats, Store, Usage, lock, read, write};

impl Store {
    /// Remove layers and blobs that no image or container references.
    pub fn gc(&self) -> Result<GcStats, StoreError> {
        let meta = read(&self.meta);
        let mut live_layers: HashSet<Digest> = HashSet::new();
        let mut live_blobs: HashSet<Digest> = HashSet::new();
        for img in meta.images.iter() {
            live_layers.extend(img.layers.iter().cloned());
            live_blobs.insert(img.id.clone());
            live_blobs.insert(img.manifest_digest.clone());
            for rd in &img.repo_digests {
                if let Some(d) = rd.rsplit_once('@').and_then(|(_, d)| Digest::parse(d).ok()) {
                    live_blobs.insert(d);
                }
            }
        }
        for c in meta.containers.values() {
            live_layers.extend(c.layers.iter().cloned());
            live_blobs.insert(c.image.clone());
        }
        let mut stats = GcStats::default();
        let mut trash: Vec<PathBuf> = Vec::new();
        {
            let mut layers = write(&self.layers);
            let grace = self.gc_grace();
            let mut fresh = lock(&self.fresh);
            let now = Instant::now();
            fresh.retain(|_, t| now.duration_since(*t) < grace);
            let victims: Vec<Digest> = layers
                .keys()
                .filter(|d| !live_layers.contains(*d) && !fresh.contains_key(*d))
                .cloned()
                .collect();
            for d in victims {
                let Some(rec) = layers.get(&d) else { continue };
                let link = self.links_dir().join(&rec.short);
                remove_all(&link)?;
                let dest = self.tmp_dir().join(crate::atomic::unique_name());
                let dir = self.layer_dir(&d);
                fs::rename(&dir, &dest).map_err(StoreError::io("remove layer", &dir))?;
                stats.layers_removed += 1;
                stats.bytes_freed += rec.disk_bytes;
                tracing::info!(layer = %d, bytes = rec.disk_bytes, "layer garbage-collected");
                trash.push(dest);
                layers.remove(&d);
            }
            if stats.layers_removed > 0 {
                fsync_dir(&self.links_dir())?;
                fsync_dir(&self.layers_dir())?;
            }
            let blobs = self.root.join("blobs/sha256");
            for e in fs::read_dir(&blobs).map_err(StoreError::io("read directory", &blobs))? {
                let e = e.map_err(StoreError::io("read directory", &blobs))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(d) = Digest::from_hex(&name) else {
                    continue;
                };
                if live_blobs.contains(&d) || fresh.contains_key(&d) {
                    continue;
                }
                let bytes = e.metadata().map(|m| m.blocks() * 512).unwrap_or_default();
                let p = e.path();
                remove_all(&p)?;
                stats.blobs_removed += 1;
                stats.bytes_freed += bytes;
                tracing::info!(blob = %d, "blob garbage-collected");
            }
            if stats.blobs_removed > 0 {
                fsync_dir(&blobs)?;
            }
        }
        drop(meta);
        for t in trash {
            // Already unreachable; tmp/ is emptied at the next open.
            if let Err(e) = remove_all(&t) {
                tracing::warn!(error = %e, "cannot delete garbage-collected layer files");
            }
        }
        Ok(stats)
    }

    /// Disk usage of the image store: bytes are st_blocks * 512 (allocated, like `du`),
    /// inodes count each inode once. Layer trees are measured once at unpack time and read
    /// from `layer.json`; blobs, records and links are measured now.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let mut bytes = 0u64;
        let mut inodes = 0u64;
        {
            let layers = read(&self.layers);
            for r in layers.values() {
                bytes += r.disk_bytes;
                inodes += r.inodes;
                let dir = self.layer_dir(&r.diff_id);
                for p in [dir.clone(), dir.join("layer.json"), dir.join("link")] {
                    if let Ok(m) = fs::symlink_metadata(&p) {
                        bytes += m.blocks() * 512;
                        inodes += 1;
                    }
                }
            }
        }
        for d in ["blobs", "images", "l"] {
            let p = self.root.join(d);
            let (b, i) = disk_usage(&p).map_err(StoreError::io("measure", &p))?;
            bytes += b;
            inodes += i;
        }
        Ok(Usage {
            bytes,
            inodes,
            mountpoint: self.root.clone(),
        })
    }
}
