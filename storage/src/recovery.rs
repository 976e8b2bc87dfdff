//! `Store::open`'s crash recovery: everything a crash can leave half-done is recognisable
//! (temp names, a layer dir without `layer.json`, a record referencing missing content) and
//! removed here, each logged at warn with what and why. Images whose layers are synced are
//! never removed. Layers published but not yet synced (`Store::sync_layers` runs in the
//! background after a pull) are kept after a daemon crash and removed after a kernel crash
//! or power loss (`recover_layers`), together with the image records using them.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::atomic::{TMP_PREFIX, remove_all};
use crate::digest::{Digest, is_sha256_hex};
use crate::error::StoreError;
use crate::images::{ImageIndex, id_from_record_name};
use crate::layers::{UNSYNCED_MARKER, current_boot_id, unsynced_layer_trusted};
use crate::store::{ContainerRecord, ImageRecord, LayerRecord, Store, write};

fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(StoreError::io("read directory", dir))? {
        let e = e.map_err(StoreError::io("read directory", dir))?;
        out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    out.sort();
    Ok(out)
}

fn discard(path: &Path, what: &str, why: &str) -> Result<(), StoreError> {
    tracing::warn!(path = %path.display(), what, why, "removing leftover from an earlier run");
    remove_all(path)
}

fn load_layer(name: &str, dir: &Path) -> Result<LayerRecord, String> {
    if !is_sha256_hex(name) {
        return Err("not a layer directory name".into());
    }
    let json = dir.join("layer.json");
    let data = fs::read(&json).map_err(|e| format!("no layer.json ({e}): incomplete unpack"))?;
    let rec: LayerRecord =
        serde_json::from_slice(&data).map_err(|e| format!("invalid layer.json: {e}"))?;
    if rec.diff_id.hex() != name {
        return Err(format!("layer.json names {}", rec.diff_id));
    }
    if rec.short.is_empty() || rec.short.contains('/') {
        return Err(format!("invalid short link name `{}`", rec.short));
    }
    if !dir.join("diff").is_dir() {
        return Err("diff directory missing".into());
    }
    Ok(rec)
}

impl Store {
    pub(crate) fn recover(&self) -> Result<(), StoreError> {
        for (_, p) in entries(&self.tmp_dir())? {
            discard(&p, "temp", "interrupted operation")?;
        }
        let layers = self.recover_layers()?;
        self.recover_links(&layers)?;
        for (name, p) in entries(&self.root.join("blobs/sha256"))? {
            if name.starts_with(TMP_PREFIX) || !is_sha256_hex(&name) {
                discard(&p, "blob", "temp file or not a digest name")?;
            }
        }
        let images = self.recover_images(&layers)?;
        let containers = self.recover_containers(&layers)?;
        let (index, changed) = ImageIndex::build(images);
        for r in changed {
            tracing::warn!(image = %r.id, "image lost names claimed by a newer image; rewriting");
            let path = self.image_path(&r.id);
            let data = serde_json::to_vec_pretty(&r).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            crate::atomic::write_atomic(&path, &data)?;
        }
        *write(&self.layers) = layers;
        let mut meta = write(&self.meta);
        meta.images = index;
        meta.containers = containers;
        Ok(())
    }

    /// Load every complete layer. A layer published with an `unsynced` marker (see
    /// `layers.rs`) is kept only if the marker was written under the running kernel: then
    /// no power loss or kernel crash happened since, and the page cache still holds exactly
    /// what the unpack wrote and verified, so it is synced now and the marker dropped.
    /// Otherwise its files may be torn and it is removed like an incomplete layer; image
    /// records using it are dropped below (the image is pulled again).
    fn recover_layers(&self) -> Result<HashMap<Digest, LayerRecord>, StoreError> {
        let boot = current_boot_id();
        let mut layers = HashMap::new();
        let mut resync = Vec::new();
        for (name, p) in entries(&self.layers_dir())? {
            let rec = match load_layer(&name, &p) {
                Ok(rec) => rec,
                Err(why) => {
                    discard(&p, "layer", &why)?;
                    continue;
                }
            };
            let marker = p.join(UNSYNCED_MARKER);
            if fs::symlink_metadata(&marker).is_ok() {
                let written_by = fs::read_to_string(&marker).unwrap_or_default();
                if !unsynced_layer_trusted(&written_by, boot.as_deref()) {
                    discard(
                        &p,
                        "layer",
                        "published without a completed sync and the machine restarted since: its files may be incomplete",
                    )?;
                    continue;
                }
                resync.push(p);
            }
            layers.insert(rec.diff_id.clone(), rec);
        }
        if !resync.is_empty() {
            tracing::info!(
                layers = resync.len(),
                "syncing layers an earlier run published but did not sync"
            );
            self.clear_unsynced(&resync)?;
        }
        Ok(layers)
    }

    fn recover_links(&self, layers: &HashMap<Digest, LayerRecord>) -> Result<(), StoreError> {
        let by_short: HashMap<&str, &LayerRecord> =
            layers.values().map(|r| (r.short.as_str(), r)).collect();
        for (name, p) in entries(&self.links_dir())? {
            let ok = match (fs::read_link(&p), by_short.get(name.as_str())) {
                (Ok(t), Some(r)) => t == Path::new(&format!("../layers/{}/diff", r.diff_id.hex())),
                _ => false,
            };
            if !ok {
                discard(&p, "layer link", "dangling or not pointing at its layer")?;
            }
        }
        for r in layers.values() {
            if fs::symlink_metadata(self.links_dir().join(&r.short)).is_err() {
                tracing::warn!(layer = %r.diff_id, short = %r.short, "recreating missing layer link");
                self.ensure_link(r, true)?;
            }
        }
        Ok(())
    }

    fn recover_images(
        &self,
        layers: &HashMap<Digest, LayerRecord>,
    ) -> Result<Vec<ImageRecord>, StoreError> {
        let mut out = Vec::new();
        for (name, p) in entries(&self.images_dir())? {
            let Some(id) = id_from_record_name(&name) else {
                discard(&p, "image record", "temp file or not an image record name")?;
                continue;
            };
            let rec = match fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|d| serde_json::from_slice::<ImageRecord>(&d).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(e) => {
                    discard(&p, "image record", &format!("unreadable: {e}"))?;
                    continue;
                }
            };
            if rec.id != id {
                discard(&p, "image record", &format!("names image {}", rec.id))?;
                continue;
            }
            if let Some(l) = rec.layers.iter().find(|l| !layers.contains_key(l)) {
                discard(&p, "image record", &format!("layer {l} is missing"))?;
                continue;
            }
            if let Some(b) = [&rec.id, &rec.manifest_digest]
                .into_iter()
                .find(|b| !self.blob_path(b).is_file())
            {
                discard(&p, "image record", &format!("blob {b} is missing"))?;
                continue;
            }
            out.push(rec);
        }
        Ok(out)
    }

    fn recover_containers(
        &self,
        layers: &HashMap<Digest, LayerRecord>,
    ) -> Result<std::collections::BTreeMap<String, ContainerRecord>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for (name, p) in entries(&self.containers_dir())? {
            let rec = fs::read(p.join("container.json"))
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    serde_json::from_slice::<ContainerRecord>(&d).map_err(|e| e.to_string())
                })
                .and_then(|r| {
                    if r.id == name {
                        Ok(r)
                    } else {
                        Err(format!("record names container {}", r.id))
                    }
                });
            match rec {
                Ok(r) => {
                    if let Some(l) = r.layers.iter().find(|l| !layers.contains_key(l)) {
                        tracing::warn!(container = %r.id, layer = %l, "container's layer is missing; it cannot be mounted");
                    }
                    for (n, tp) in entries(&p)? {
                        if n.starts_with(TMP_PREFIX) {
                            discard(&tp, "container temp file", "interrupted write")?;
                        }
                    }
                    out.insert(name, r);
                }
                Err(why) => {
                    if crate::mount::is_mounted(&p.join("merged")) {
                        tracing::warn!(path = %p.display(), why, "container without a valid record is mounted; leaving it");
                    } else {
                        discard(&p, "container", &format!("no valid container.json: {why}"))?;
                    }
                }
            }
        }
        Ok(out)
    }
}
