//! Layers: streaming verification + unpack of a layer blob into a temp dir, then atomic
//! publication as `layers/<diffid-hex>` with an `l/<short>` link.
//!
//! Pipeline (OCI image spec layer.md: the manifest digest covers the compressed bytes, the
//! config `diff_ids` the uncompressed tar): buffered stream -> DigestingBufReader (compressed
//! digest and size; the decoder reads the caller's buffers in place) -> decompressor ->
//! DigestingReader (diff id) -> `unpack::unpack_layer`. After the tar end, both streams are
//! drained so the digests cover trailing padding too.
//!
//! Durability (one `syncfs` per image, not per layer): a layer is published (renamed into
//! `layers/`) as soon as it is unpacked and verified, *without* waiting for its files to
//! reach the disk, but carrying an `unsynced` marker file that holds the kernel boot id.
//! When the caller syncs right away (`ApplyLayer::start_writeback`) the unpacker starts
//! writeback of every file as it closes it, so the disk works while the pull goes on.
//! [`Store::sync_layers`] (called before an image record referencing
//! the layers is written) runs one `syncfs`, then removes the markers and fsyncs their
//! directories; the daemon calls it in the background after a pull, not before the
//! image record is written. Why this is crash safe:
//! - a daemon that dies (SIGKILL, panic) without the kernel going down loses nothing that
//!   was written: the page cache holds the complete, verified tree. Recovery sees the
//!   marker with the *current* boot id and keeps the layer (and syncs it once).
//! - after a kernel crash or power loss (the boot id changed), a layer still carrying its
//!   marker may have torn or zero-length files (ext4 delayed allocation), so recovery
//!   removes it; an image record referencing it is then dropped as incomplete, and the
//!   image is pulled again (so an image record may be durable before its layers are).
//!   A marker that exists at all is durable before the layer is visible: it is created
//!   in the temp dir with `link` and `layer.json`, that directory is fsynced (the one
//!   sync of a publish), then the rename moves it along. The rename itself, `link`,
//!   `layer.json` and the `l/` link are made durable by the later `syncfs`; a power loss
//!   before it loses the rename (the layer is absent) or leaves the marker (the layer is
//!   dropped). An empty or unreadable marker (its content was not synced) counts as
//!   "another boot", and a torn `layer.json` or a dangling `l/` link is discarded too.
//! - the worst case of a power loss between the `syncfs` and the marker removal is a
//!   good layer (and its images) thrown away and downloaded again.
//!
//! Concurrency: applies of the same diff id are deduplicated through an in-flight table (the
//! followers wait, then reuse the published layer or retry if the leader failed); different
//! layers proceed in parallel with no store lock held while unpacking.

use std::fs::{self, DirBuilder, File};
use std::io::{self, BufRead, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;

use crate::atomic::{fsync_dir, remove_all};
use crate::compression::Compression;
use crate::digest::{Digest, DigestingBufReader, DigestingReader};
use crate::error::StoreError;
use crate::store::{
    ApplyLayer, InFlight, LayerInfo, LayerRecord, Store, lock, now_nanos, read, write,
};
use crate::unpack::{UnpackOptions, unpack_layer};

/// Removes the in-flight entry and wakes waiters when the leader finishes (or panics).
struct InFlightGuard<'a> {
    store: &'a Store,
    diff_id: Digest,
    flight: Arc<InFlight>,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        lock(&self.store.inflight).remove(&self.diff_id);
        *lock(&self.flight.done) = true;
        self.flight.cond.notify_all();
    }
}

/// File in a layer directory published before its content was synced; holds the boot id
/// of the kernel that wrote it (see the module docs).
pub(crate) const UNSYNCED_MARKER: &str = "unsynced";

/// Where the kernel exposes a random id that changes at every boot (proc(5)).
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The current boot id; `None` when /proc is not readable (markers then never match, so
/// unsynced layers are distrusted after any restart: safe, only slower).
pub(crate) fn current_boot_id() -> Option<String> {
    boot_id_from(Path::new(BOOT_ID_PATH))
}

fn boot_id_from(path: &Path) -> Option<String> {
    let id = fs::read_to_string(path).ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// Whether a layer carrying an `unsynced` marker with content `marker` can be trusted by a
/// process running under boot `current`: only if no kernel restart happened since it was
/// written, i.e. the page cache that holds its files is still the one the unpack wrote.
pub(crate) fn unsynced_layer_trusted(marker: &str, current: Option<&str>) -> bool {
    let marker = marker.trim();
    !marker.is_empty() && current == Some(marker)
}

/// Length of the deterministic short link name (hex prefix of the diff id). 16 characters
/// keep 150 lower layers at ~2.6 KiB of mount data; a prefix collision takes a longer one.
const SHORT_LEN: usize = 16;

impl Store {
    pub(crate) fn layer_info(&self, r: &LayerRecord) -> LayerInfo {
        LayerInfo {
            diff_id: r.diff_id.clone(),
            compressed_digest: r.compressed_digest.clone(),
            size: r.size,
            path: self.layer_dir(&r.diff_id).join("diff"),
        }
    }

    /// The published layer with this diff id, if any.
    pub fn layer(&self, diff_id: &Digest) -> Option<LayerInfo> {
        read(&self.layers).get(diff_id).map(|r| self.layer_info(r))
    }

    /// The stored layer that was unpacked from the compressed blob `digest`, if any: a
    /// re-pull recognises its layers before it knows their diff ids.
    pub fn layer_by_compressed(&self, digest: &Digest) -> Option<LayerInfo> {
        read(&self.layers)
            .values()
            .find(|r| r.compressed_digest == *digest)
            .map(|r| self.layer_info(r))
    }

    /// The existing layer, protected from gc for the grace period (a pull will reference it).
    fn reuse_layer(&self, diff_id: &Digest) -> Option<LayerInfo> {
        let layers = read(&self.layers);
        let r = layers.get(diff_id)?;
        self.mark_fresh(diff_id);
        Some(self.layer_info(r))
    }

    /// Verify, unpack and publish one layer (see the module docs). Returns the existing
    /// layer without reading `compressed` if it is already stored.
    pub fn apply_layer(
        &self,
        req: &ApplyLayer,
        compressed: &mut dyn BufRead,
    ) -> Result<LayerInfo, StoreError> {
        loop {
            if let Some(info) = self.reuse_layer(&req.diff_id) {
                return Ok(info);
            }
            let (flight, leader) = {
                let mut map = lock(&self.inflight);
                match map.get(&req.diff_id) {
                    Some(f) => (f.clone(), false),
                    None => {
                        let f = Arc::new(InFlight::default());
                        map.insert(req.diff_id.clone(), f.clone());
                        (f, true)
                    }
                }
            };
            if !leader {
                tracing::debug!(layer = %req.diff_id, "waiting for a concurrent unpack of the same layer");
                let mut done = lock(&flight.done);
                while !*done {
                    done = flight.cond.wait(done).unwrap_or_else(|e| e.into_inner());
                }
                continue;
            }
            let _guard = InFlightGuard {
                store: self,
                diff_id: req.diff_id.clone(),
                flight,
            };
            if let Some(info) = self.reuse_layer(&req.diff_id) {
                return Ok(info);
            }
            let tmp = self.new_tmp_dir()?;
            let result = self
                .unpack_into(req, compressed, &tmp)
                .and_then(|rec| self.publish(&tmp, rec));
            if result.is_err()
                && let Err(e) = remove_all(&tmp)
            {
                tracing::warn!(path = %tmp.display(), error = %e, "cannot remove failed layer temp dir");
            }
            return result;
        }
    }

    fn unpack_into(
        &self,
        req: &ApplyLayer,
        compressed: &mut dyn BufRead,
        tmp: &Path,
    ) -> Result<LayerRecord, StoreError> {
        let diff = tmp.join("diff");
        DirBuilder::new()
            .mode(0o755)
            .create(&diff)
            .map_err(StoreError::io("create directory", &diff))?;
        let what = format!("layer {}", req.diff_id);
        let read_err = |source: io::Error| StoreError::Io {
            op: "read layer stream of",
            path: diff.clone(),
            source,
        };
        let limit = req
            .compressed_size
            .map_or(u64::MAX, |s| s.saturating_add(1));
        let mut cdig = DigestingBufReader::new(compressed.take(limit));
        let (diff_digest, diff_size, unpacked) = {
            let decoder: Box<dyn Read + '_> = match req.compression {
                Compression::None => Box::new(&mut cdig),
                Compression::Gzip => Box::new(MultiGzDecoder::new(&mut cdig)),
                Compression::Zstd => {
                    Box::new(zstd::Decoder::with_buffer(&mut cdig).map_err(read_err)?)
                }
            };
            let mut ddig = DigestingReader::new(decoder);
            let unpacked = unpack_layer(
                &mut ddig,
                &diff,
                &UnpackOptions {
                    start_writeback: req.start_writeback,
                    ..UnpackOptions::default()
                },
            );
            let drained = io::copy(&mut ddig, &mut io::sink());
            let (d, n) = ddig.finish();
            match (unpacked, drained) {
                (Ok(_), Ok(_)) => (d, n, Ok(())),
                (Err(e), _) => (
                    d,
                    n,
                    Err(StoreError::Unpack {
                        layer: req.diff_id.clone(),
                        source: e,
                    }),
                ),
                (Ok(_), Err(e)) => (d, n, Err(read_err(e))),
            }
        };
        let drained = io::copy(&mut cdig, &mut io::sink());
        let (cdigest, csize) = cdig.finish();
        if let Err(e) = drained {
            // The stream itself failed: the digests are incomplete.
            unpacked?;
            return Err(read_err(e));
        }
        // A wrong stream explains an unpack failure better than the unpack error itself.
        if let Some(expected) = req.compressed_size
            && csize != expected
        {
            return Err(StoreError::SizeMismatch {
                what,
                expected,
                actual: csize,
            });
        }
        if cdigest != req.compressed_digest {
            return Err(StoreError::DigestMismatch {
                what: format!("{what} (compressed)"),
                expected: req.compressed_digest.clone(),
                actual: cdigest,
            });
        }
        unpacked?;
        if diff_digest != req.diff_id {
            return Err(StoreError::DigestMismatch {
                what: format!("{what} (diff id)"),
                expected: req.diff_id.clone(),
                actual: diff_digest,
            });
        }
        // No sync here: the layer is published with an `unsynced` marker and synced
        // together with the image's other layers (module docs, `sync_layers`).
        let (disk_bytes, inodes) =
            crate::du::disk_usage(&diff).map_err(StoreError::io("measure", &diff))?;
        Ok(LayerRecord {
            diff_id: req.diff_id.clone(),
            compressed_digest: req.compressed_digest.clone(),
            size: diff_size,
            disk_bytes,
            inodes,
            short: String::new(),
            created_unix_nanos: now_nanos(),
        })
    }

    /// A short link name not used by another layer: a hex prefix of the diff id.
    fn pick_short(&self, diff_id: &Digest) -> String {
        let layers = read(&self.layers);
        let links = self.links_dir();
        let mut len = SHORT_LEN;
        loop {
            let cand = &diff_id.hex()[..len];
            let taken = layers.values().any(|r| r.short == cand)
                || fs::symlink_metadata(links.join(cand)).is_ok();
            if !taken || len >= 64 {
                return cand.to_string();
            }
            len = (len + 8).min(64);
        }
    }

    fn publish(&self, tmp: &Path, mut rec: LayerRecord) -> Result<LayerInfo, StoreError> {
        rec.short = self.pick_short(&rec.diff_id);
        // One fsync, of the temp dir, after the marker, `link` and `layer.json` exist: it
        // makes the marker's name durable before the rename below can be (module docs).
        // Nothing else is synced here. Until `sync_layers` runs, a power loss either loses
        // the rename (the layer is just absent) or finds the marker and drops the layer;
        // either way image records using it are dropped too. A daemon crash loses nothing.
        let marker = tmp.join(UNSYNCED_MARKER);
        fs::write(&marker, current_boot_id().unwrap_or_default())
            .map_err(StoreError::io("write", &marker))?;
        let link = tmp.join("link");
        fs::write(&link, rec.short.as_bytes()).map_err(StoreError::io("write", &link))?;
        let json = serde_json::to_vec_pretty(&rec).map_err(|e| StoreError::Corrupt {
            path: tmp.join("layer.json"),
            reason: format!("cannot encode layer record: {e}"),
        })?;
        let record = tmp.join("layer.json");
        fs::write(&record, &json).map_err(StoreError::io("write", &record))?;
        fsync_dir(tmp)?;
        let dest = self.layer_dir(&rec.diff_id);
        fs::rename(tmp, &dest).map_err(StoreError::io("publish layer", &dest))?;
        self.ensure_link(&rec, false)?;
        let info = self.layer_info(&rec);
        tracing::info!(layer = %rec.diff_id, size = rec.size, short = %rec.short, "layer published");
        let mut layers = write(&self.layers);
        self.mark_fresh(&rec.diff_id);
        layers.insert(rec.diff_id.clone(), rec);
        Ok(info)
    }

    /// Make the named layers durable before something durable (an image record) comes
    /// to depend on them: if any still carries its `unsynced` marker, one `syncfs` of the
    /// store's filesystem, then the markers are removed and their directories fsynced.
    /// Layers that are not stored are ignored (the caller's own checks report them).
    ///
    /// `syncfs` rather than an fsync per file: one call covers every file of every layer
    /// (and waits for the writeback the unpacker already started), where per-file fsyncs
    /// would be thousands of journal commits.
    pub fn sync_layers(&self, diff_ids: &[Digest]) -> Result<(), StoreError> {
        let mut dirs: Vec<PathBuf> = diff_ids
            .iter()
            .map(|d| self.layer_dir(d))
            .filter(|d| fs::symlink_metadata(d.join(UNSYNCED_MARKER)).is_ok())
            .collect();
        dirs.sort();
        dirs.dedup();
        self.clear_unsynced(&dirs)
    }

    /// `syncfs`, then remove the `unsynced` markers of `dirs` (layer directories) and
    /// fsync each directory so the removal is durable too.
    pub(crate) fn clear_unsynced(&self, dirs: &[PathBuf]) -> Result<(), StoreError> {
        if dirs.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let layers_dir = self.layers_dir();
        let f = File::open(&layers_dir).map_err(StoreError::io("open", &layers_dir))?;
        rustix::fs::syncfs(&f).map_err(|e| StoreError::io("syncfs", &layers_dir)(e.into()))?;
        for d in dirs {
            let marker = d.join(UNSYNCED_MARKER);
            match fs::remove_file(&marker) {
                Ok(()) => {}
                // A concurrent sync of the same layer removed it after its own syncfs.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove", &marker)(e)),
            }
            match fsync_dir(d) {
                Ok(()) => {}
                // Removed meanwhile (image removal, GC): nothing left to make durable.
                Err(_) if fs::symlink_metadata(d).is_err() => {}
                Err(e) => return Err(e),
            }
        }
        tracing::debug!(
            layers = dirs.len(),
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "layers synced"
        );
        Ok(())
    }

    /// Create `l/<short>` -> `../layers/<hex>/diff` if missing.
    /// Create the `l/<short>` link of `rec` if missing; `sync` fsyncs the links directory
    /// (recovery), a fresh publish leaves that to the layer's `syncfs`.
    pub(crate) fn ensure_link(&self, rec: &LayerRecord, sync: bool) -> Result<(), StoreError> {
        let link = self.links_dir().join(&rec.short);
        let target = format!("../layers/{}/diff", rec.diff_id.hex());
        match fs::read_link(&link) {
            Ok(t) if t == Path::new(&target) => return Ok(()),
            Ok(_) => {
                return Err(StoreError::Corrupt {
                    path: link,
                    reason: format!("link name taken by another layer, wanted {target}"),
                });
            }
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&target, &link).map_err(StoreError::io("create link", &link))?;
        if sync {
            fsync_dir(&self.links_dir())?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::{layer, put_image};

    fn marker_of(s: &Store, d: &Digest) -> PathBuf {
        s.layer_dir(d).join(UNSYNCED_MARKER)
    }

    #[test]
    fn marker_trust_needs_the_same_boot() {
        assert!(unsynced_layer_trusted("abc\n", Some("abc")));
        assert!(!unsynced_layer_trusted("abc", Some("def")));
        assert!(!unsynced_layer_trusted("", Some("")));
        assert!(!unsynced_layer_trusted("abc", None));
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("boot_id");
        assert_eq!(boot_id_from(&p), None);
        fs::write(&p, "1234-5678\n").unwrap();
        assert_eq!(boot_id_from(&p).as_deref(), Some("1234-5678"));
    }

    #[test]
    fn layers_are_found_by_compressed_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path()).unwrap();
        let (req, blob) = layer("a.txt", b"a", Compression::Gzip);
        assert!(s.layer_by_compressed(&req.compressed_digest).is_none());
        s.apply_layer(&req, &mut &blob[..]).unwrap();
        let info = s.layer_by_compressed(&req.compressed_digest).unwrap();
        assert_eq!(info.diff_id, req.diff_id);
        assert!(s.layer_by_compressed(&req.diff_id).is_none());
    }

    #[test]
    fn published_layers_are_marked_until_synced() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path()).unwrap();
        let (req, blob) = layer("a.txt", b"a", Compression::Gzip);
        s.apply_layer(&req, &mut &blob[..]).unwrap();
        let marker = marker_of(&s, &req.diff_id);
        let boot = fs::read_to_string(&marker).unwrap();
        assert_eq!(Some(boot), current_boot_id());
        s.sync_layers(std::slice::from_ref(&req.diff_id)).unwrap();
        assert!(!marker.exists());
        // Idempotent, and unknown layers are ignored.
        let other = Digest::sha256_of(b"not stored");
        s.sync_layers(&[req.diff_id.clone(), other]).unwrap();
    }

    #[test]
    fn recovery_keeps_unsynced_layers_of_this_boot_and_syncs_them() {
        let tmp = tempfile::tempdir().unwrap();
        let diff_id = {
            let s = Store::open(tmp.path()).unwrap();
            let (req, blob) = layer("a.txt", b"a", Compression::Gzip);
            s.apply_layer(&req, &mut &blob[..]).unwrap();
            assert!(marker_of(&s, &req.diff_id).exists());
            req.diff_id
        };
        let s = Store::open(tmp.path()).unwrap();
        assert!(s.layer(&diff_id).is_some());
        assert!(!marker_of(&s, &diff_id).exists());
        // put_image does not sync (the daemon does that in the background); sync_layers does.
        let img = put_image(&s, "one", &["l1", "l2"], &["x/one:1"]);
        s.sync_layers(&img.layers).unwrap();
        for d in &img.layers {
            assert!(!marker_of(&s, d).exists());
        }
    }

    #[test]
    fn recovery_drops_unsynced_layers_of_another_boot_and_their_images() {
        let tmp = tempfile::tempdir().unwrap();
        let (img, synced) = {
            let s = Store::open(tmp.path()).unwrap();
            let (req, blob) = layer("base.txt", b"base", Compression::Gzip);
            s.apply_layer(&req, &mut &blob[..]).unwrap();
            s.sync_layers(std::slice::from_ref(&req.diff_id)).unwrap();
            // An image whose layers were not synced yet, then "a power loss".
            let img = put_image(&s, "two", &["l3"], &["x/two:1"]);
            for d in &img.layers {
                fs::write(marker_of(&s, d), "some-earlier-boot").unwrap();
            }
            (img, req.diff_id)
        };
        // A marker whose content never reached the disk counts as another boot.
        let (req, blob) = layer("torn.txt", b"torn", Compression::Gzip);
        {
            let s = Store::open(tmp.path()).unwrap();
            s.apply_layer(&req, &mut &blob[..]).unwrap();
            fs::write(marker_of(&s, &req.diff_id), "").unwrap();
        }
        let s = Store::open(tmp.path()).unwrap();
        assert!(s.layer(&synced).is_some());
        assert!(s.layer(&req.diff_id).is_none());
        for d in &img.layers {
            assert!(s.layer(d).is_none());
            assert!(!tmp.path().join("layers").join(d.hex()).exists());
        }
        assert!(s.images().is_empty());
    }
}
