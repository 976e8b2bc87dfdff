//! Image records: the in-memory index (by id and by name) and the `Store` image operations.
//!
//! Names follow the CRI/containerd model: a repo tag or repo digest names exactly one image,
//! so storing an image under a name another image holds moves the name (the old image stays,
//! "dangling", like CRI-O and containerd keep it). Untagging an image's last tag removes it
//! (CRI-O `RemoveImage` by tag). Records are rewritten atomically; a crash between rewriting
//! the new holder of a tag and the old one leaves two claims, resolved at open: the newest
//! `created_unix_nanos` wins and the other record is rewritten.

use std::collections::{BTreeMap, HashMap};
use std::fs;

use crate::atomic::{fsync_dir, write_atomic};
use crate::digest::{Digest, is_sha256_hex};
use crate::error::StoreError;
use crate::store::{ImageRecord, Store, Untagged, lock, read, write};

/// Image records by id, plus a name -> id map over repo tags and repo digests.
#[derive(Debug, Default)]
pub(crate) struct ImageIndex {
    by_id: BTreeMap<Digest, ImageRecord>,
    names: HashMap<String, Digest>,
}

fn names_of(r: &ImageRecord) -> impl Iterator<Item = &String> {
    r.repo_tags.iter().chain(r.repo_digests.iter())
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

impl ImageIndex {
    /// Build from records loaded at open. Returns the records that lost a name to a newer
    /// record (they must be rewritten on disk).
    pub(crate) fn build(mut records: Vec<ImageRecord>) -> (ImageIndex, Vec<ImageRecord>) {
        records.sort_by(|a, b| {
            b.created_unix_nanos
                .cmp(&a.created_unix_nanos)
                .then_with(|| a.id.cmp(&b.id))
        });
        let mut idx = ImageIndex::default();
        let mut changed = Vec::new();
        for mut r in records {
            let before = r.repo_tags.len() + r.repo_digests.len();
            let held = |n: &String| idx.names.contains_key(n);
            r.repo_tags.retain(|n| !held(n));
            r.repo_digests.retain(|n| !held(n));
            if r.repo_tags.len() + r.repo_digests.len() != before {
                changed.push(r.clone());
            }
            idx.insert(r);
        }
        (idx, changed)
    }

    /// Insert or replace; the caller has already taken conflicting names away from others.
    pub(crate) fn insert(&mut self, r: ImageRecord) {
        self.remove(&r.id);
        for n in names_of(&r) {
            self.names.insert(n.clone(), r.id.clone());
        }
        self.by_id.insert(r.id.clone(), r);
    }

    pub(crate) fn remove(&mut self, id: &Digest) -> Option<ImageRecord> {
        let r = self.by_id.remove(id)?;
        for n in names_of(&r) {
            if self.names.get(n) == Some(id) {
                self.names.remove(n);
            }
        }
        Some(r)
    }

    pub(crate) fn get(&self, id: &Digest) -> Option<&ImageRecord> {
        self.by_id.get(id)
    }

    pub(crate) fn holder(&self, name: &str) -> Option<&Digest> {
        self.names.get(name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &ImageRecord> {
        self.by_id.values()
    }

    /// Exact id (with or without `sha256:`), repo tag or digest, then unique id prefix (>= 3).
    pub(crate) fn find(&self, s: &str) -> Option<&ImageRecord> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if let Some(d) = Digest::from_hex(hex)
            && let Some(r) = self.by_id.get(&d)
        {
            return Some(r);
        }
        if let Some(id) = self.names.get(s) {
            return self.by_id.get(id);
        }
        let is_hex = hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() < 3 || hex.len() >= 64 || !is_hex {
            return None;
        }
        let mut hits = self.by_id.values().filter(|r| r.id.hex().starts_with(hex));
        match (hits.next(), hits.next()) {
            (Some(r), None) => Some(r),
            _ => None,
        }
    }
}

impl Store {
    fn write_image(&self, r: &ImageRecord) -> Result<(), StoreError> {
        let path = self.image_path(&r.id);
        let data = serde_json::to_vec_pretty(r).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: format!("cannot encode image record: {e}"),
        })?;
        write_atomic(&path, &data)
    }

    /// Insert or update an image (see the module docs for how names move). Every layer and
    /// the config and manifest blobs must already be stored.
    pub fn put_image(&self, record: ImageRecord) -> Result<ImageRecord, StoreError> {
        for n in names_of(&record) {
            if n.is_empty() {
                return Err(StoreError::InvalidArgument {
                    field: "image name",
                    value: n.clone(),
                    reason: "empty name".into(),
                });
            }
        }
        // No sync here: the record may reference layers that still carry their `unsynced`
        // marker (the daemon syncs them in the background, `Store::sync_layers`). That is
        // consistent: after a power loss recovery drops such layers and every image record
        // using them, so a torn layer is never served; after a daemon crash the page cache
        // still holds them and recovery syncs them.
        let mut meta = write(&self.meta);
        {
            let layers = read(&self.layers);
            if let Some(missing) = record.layers.iter().find(|l| !layers.contains_key(l)) {
                return Err(StoreError::NotFound {
                    kind: "layer",
                    id: missing.to_string(),
                });
            }
        }
        for b in [&record.id, &record.manifest_digest] {
            if !self.blob_path(b).is_file() {
                return Err(StoreError::NotFound {
                    kind: "blob",
                    id: b.to_string(),
                });
            }
        }
        let mut merged = match meta.images.get(&record.id) {
            Some(old) => {
                let mut m = record.clone();
                m.repo_tags = old.repo_tags.clone();
                m.repo_tags.extend(record.repo_tags.iter().cloned());
                m.repo_digests = old.repo_digests.clone();
                m.repo_digests.extend(record.repo_digests.iter().cloned());
                m
            }
            None => record.clone(),
        };
        dedup(&mut merged.repo_tags);
        dedup(&mut merged.repo_digests);

        // Take the names away from other holders.
        let mut losers: BTreeMap<Digest, ImageRecord> = BTreeMap::new();
        for n in names_of(&merged) {
            if let Some(other) = meta.images.holder(n).filter(|o| **o != merged.id) {
                let entry = losers.entry(other.clone()).or_insert_with(|| {
                    meta.images
                        .get(other)
                        .cloned()
                        .unwrap_or_else(|| merged.clone())
                });
                entry.repo_tags.retain(|t| t != n);
                entry.repo_digests.retain(|t| t != n);
            }
        }
        // New holder first: a crash before the losers are rewritten leaves duplicate claims
        // that open() resolves in favour of the newest record.
        self.write_image(&merged)?;
        meta.images.insert(merged.clone());
        for (_, l) in losers {
            self.write_image(&l)?;
            tracing::info!(image = %l.id, to = %merged.id, "image names moved to another image");
            meta.images.insert(l);
        }
        let mut fresh = lock(&self.fresh);
        for d in merged
            .layers
            .iter()
            .chain([&merged.id, &merged.manifest_digest])
        {
            fresh.remove(d);
        }
        Ok(merged)
    }

    /// All image records, ordered by id.
    pub fn images(&self) -> Vec<ImageRecord> {
        read(&self.meta).images.iter().cloned().collect()
    }

    /// Look an image up by id, id prefix, repo tag or repo digest (exact strings).
    pub fn find_image(&self, name_or_id: &str) -> Option<ImageRecord> {
        read(&self.meta).images.find(name_or_id).cloned()
    }

    /// Remove one name; remove the image if it has no repo tags left.
    pub fn untag_image(&self, name: &str) -> Result<Untagged, StoreError> {
        let outcome = {
            let mut guard = write(&self.meta);
            let meta = &mut *guard;
            let Some(id) = meta.images.holder(name).cloned() else {
                return Err(StoreError::NotFound {
                    kind: "image",
                    id: name.to_string(),
                });
            };
            let Some(mut rec) = meta.images.get(&id).cloned() else {
                return Err(StoreError::NotFound {
                    kind: "image",
                    id: name.to_string(),
                });
            };
            rec.repo_tags.retain(|t| t != name);
            rec.repo_digests.retain(|t| t != name);
            if rec.repo_tags.is_empty() {
                self.delete_image_locked(&mut meta.images, &meta.containers, &id)?;
                Untagged::Removed { image: id }
            } else {
                self.write_image(&rec)?;
                meta.images.insert(rec);
                Untagged::Untagged { image: id }
            }
        };
        if matches!(outcome, Untagged::Removed { .. }) {
            self.gc()?;
        }
        Ok(outcome)
    }

    /// Delete an image record (unless a container uses it), then garbage-collect.
    pub fn remove_image(&self, id: &Digest) -> Result<(), StoreError> {
        {
            let mut meta = write(&self.meta);
            let meta = &mut *meta;
            if meta.images.get(id).is_none() {
                return Err(StoreError::NotFound {
                    kind: "image",
                    id: id.to_string(),
                });
            }
            self.delete_image_locked(&mut meta.images, &meta.containers, id)?;
        }
        self.gc()?;
        Ok(())
    }

    fn delete_image_locked(
        &self,
        images: &mut ImageIndex,
        containers: &BTreeMap<String, crate::store::ContainerRecord>,
        id: &Digest,
    ) -> Result<(), StoreError> {
        if let Some(c) = containers.values().find(|c| &c.image == id) {
            return Err(StoreError::ImageInUse {
                image: id.to_string(),
                container: c.id.clone(),
            });
        }
        let path = self.image_path(id);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::io("remove", &path)(e));
            }
            _ => {}
        }
        fsync_dir(&self.images_dir())?;
        images.remove(id);
        tracing::info!(image = %id, "image removed");
        Ok(())
    }
}

/// Is `s` a plausible record file name (`<64 hex>.json`)? Returns the id.
pub(crate) fn id_from_record_name(name: &str) -> Option<Digest> {
    name.strip_suffix(".json")
        .filter(|h| is_sha256_hex(h))
        .and_then(Digest::from_hex)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(seed: &str, tags: &[&str], created: i64) -> ImageRecord {
        ImageRecord {
            id: Digest::sha256_of(seed.as_bytes()),
            manifest_digest: Digest::sha256_of(b"m"),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: vec![],
            layers: vec![],
            size: 0,
            created_unix_nanos: created,
            pinned: false,
        }
    }

    #[test]
    fn build_resolves_duplicate_claims_newest_wins() {
        let old = rec("old", &["a:1", "b:1"], 1);
        let new = rec("new", &["a:1"], 2);
        let (idx, changed) = ImageIndex::build(vec![old.clone(), new.clone()]);
        assert_eq!(idx.find("a:1").unwrap().id, new.id);
        assert_eq!(idx.find("b:1").unwrap().id, old.id);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].repo_tags, vec!["b:1".to_string()]);
    }

    #[test]
    fn find_variants() {
        let a = rec("a", &["docker.io/library/a:latest"], 1);
        let mut b = rec("b", &[], 1);
        b.repo_digests = vec!["docker.io/library/b@sha256:00".into()];
        let (idx, _) = ImageIndex::build(vec![a.clone(), b.clone()]);
        assert_eq!(idx.find(&a.id.to_string()).unwrap().id, a.id);
        assert_eq!(idx.find(a.id.hex()).unwrap().id, a.id);
        assert_eq!(idx.find(&a.id.hex()[..5]).unwrap().id, a.id);
        assert_eq!(
            idx.find(&format!("sha256:{}", &a.id.hex()[..5]))
                .unwrap()
                .id,
            a.id
        );
        assert!(idx.find(&a.id.hex()[..2]).is_none());
        assert_eq!(idx.find("docker.io/library/a:latest").unwrap().id, a.id);
        assert_eq!(idx.find("docker.io/library/b@sha256:00").unwrap().id, b.id);
        assert!(idx.find("docker.io/library/c:latest").is_none());
        assert!(idx.find("xyz").is_none());
    }

    #[test]
    fn ambiguous_prefix_is_none() {
        // Find two ids sharing a 3-char prefix.
        let mut seen: HashMap<String, ImageRecord> = HashMap::new();
        let mut pair = None;
        for i in 0..20000 {
            let r = rec(&i.to_string(), &[], 0);
            let p = r.id.hex()[..3].to_string();
            if let Some(o) = seen.get(&p) {
                pair = Some((o.clone(), r));
                break;
            }
            seen.insert(p, r);
        }
        let (a, b) = pair.unwrap();
        let (idx, _) = ImageIndex::build(vec![a.clone(), b]);
        assert!(idx.find(&a.id.hex()[..3]).is_none());
        assert_eq!(idx.find(&a.id.hex()[..10]).unwrap().id, a.id);
    }

    #[test]
    fn record_names() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(id_from_record_name(&format!("{}.json", d.hex())), Some(d));
        assert_eq!(id_from_record_name("x.json"), None);
        assert_eq!(id_from_record_name(".tmp-abc"), None);
    }
}
