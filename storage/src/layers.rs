//! Layers: streaming verification + unpack of a layer blob into a temp dir, then atomic
//! publication as `layers/<diffid-hex>` with an `l/<short>` link.
//!
//! Pipeline (OCI image spec layer.md: the manifest digest covers the compressed bytes, the
//! config `diff_ids` the uncompressed tar): stream -> DigestingReader (compressed digest and
//! size) -> decompressor -> DigestingReader (diff id) -> `unpack::unpack_layer`. After the tar
//! end, both streams are drained so the digests cover trailing padding too. One `syncfs`
//! makes the unpacked tree durable before `layer.json` and the rename publish it.
//!
//! Concurrency: applies of the same diff id are deduplicated through an in-flight table (the
//! followers wait, then reuse the published layer or retry if the leader failed); different
//! layers proceed in parallel with no store lock held while unpacking.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use crate::atomic::{fsync_dir, remove_all, write_atomic};
use crate::compression::Compression;
use crate::digest::{Digest, DigestingReader};
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
        compressed: &mut dyn Read,
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
        compressed: &mut dyn Read,
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
        let mut cdig = DigestingReader::new(compressed.take(limit));
        let (diff_digest, diff_size, unpacked) = {
            let decoder: Box<dyn Read + '_> = match req.compression {
                Compression::None => Box::new(&mut cdig),
                Compression::Gzip => Box::new(MultiGzDecoder::new(&mut cdig)),
                Compression::Zstd => Box::new(zstd::Decoder::new(&mut cdig).map_err(read_err)?),
            };
            let mut ddig = DigestingReader::new(decoder);
            let unpacked = unpack_layer(&mut ddig, &diff, &UnpackOptions::default());
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
        // One syncfs instead of an fsync per file: the tree must be durable before
        // layer.json and the rename make it visible as complete.
        let f = File::open(tmp).map_err(StoreError::io("open", tmp))?;
        rustix::fs::syncfs(&f).map_err(|e| StoreError::io("syncfs", tmp)(e.into()))?;
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
        write_atomic(&tmp.join("link"), rec.short.as_bytes())?;
        let json = serde_json::to_vec_pretty(&rec).map_err(|e| StoreError::Corrupt {
            path: tmp.join("layer.json"),
            reason: format!("cannot encode layer record: {e}"),
        })?;
        write_atomic(&tmp.join("layer.json"), &json)?;
        let dest = self.layer_dir(&rec.diff_id);
        fs::rename(tmp, &dest).map_err(StoreError::io("publish layer", &dest))?;
        fsync_dir(&self.layers_dir())?;
        self.ensure_link(&rec)?;
        let info = self.layer_info(&rec);
        tracing::info!(layer = %rec.diff_id, size = rec.size, short = %rec.short, "layer published");
        let mut layers = write(&self.layers);
        self.mark_fresh(&rec.diff_id);
        layers.insert(rec.diff_id.clone(), rec);
        Ok(info)
    }

    /// Create `l/<short>` -> `../layers/<hex>/diff` if missing.
    pub(crate) fn ensure_link(&self, rec: &LayerRecord) -> Result<(), StoreError> {
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
        fsync_dir(&self.links_dir())
    }
}
