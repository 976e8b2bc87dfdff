//! Offline consistency check of a store (`crust check`, and the daemon's start-up check
//! after an unclean shutdown).
//!
//! [`check`] only reads: it applies the rules `Store::open`'s crash recovery applies
//! (`recovery.rs`: temp leftovers, incomplete or unsynced layers, bad links, image records
//! whose layers or blobs are missing, container layers without a valid record) plus the
//! one recovery leaves to gc, layers no image or container references, and reports each
//! problem with its path. [`repair`] fixes them by running that same recovery
//! (`Store::open`) followed by a garbage collection without grace period, so the report
//! and the repair can never disagree on what "broken" means. This mirrors
//! containers/storage's `Store.Check()` / `Store.Repair()`, which CRI-O runs after an
//! unclean shutdown.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::atomic::TMP_PREFIX;
use crate::digest::{Digest, is_sha256_hex};
use crate::error::StoreError;
use crate::images::id_from_record_name;
use crate::layers::{UNSYNCED_MARKER, current_boot_id, unsynced_layer_trusted};
use crate::store::{ContainerRecord, ImageRecord, LayerRecord, Store};

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// A temp file or directory of an interrupted operation.
    TempLeftover,
    /// A layer directory with a bad name, no or invalid `layer.json`, or no `diff/`.
    IncompleteLayer,
    /// A layer published but never synced (its files may be torn after a power loss).
    UnsyncedLayer,
    /// A complete layer no image or container references.
    OrphanLayer,
    /// A `l/` link that is dangling, or missing for a layer.
    BadLink,
    /// A blob with a temp or non-digest name.
    BadBlob,
    /// An image record that is unreadable or references a missing layer or blob.
    BrokenImage,
    /// A container layer directory without a valid `container.json`.
    BrokenContainerLayer,
    /// A container layer whose image layers are missing (it cannot be mounted; repair
    /// leaves it to the container's removal).
    ContainerMissingLayer,
}

impl ProblemKind {
    /// A short stable name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TempLeftover => "temp-leftover",
            Self::IncompleteLayer => "incomplete-layer",
            Self::UnsyncedLayer => "unsynced-layer",
            Self::OrphanLayer => "orphan-layer",
            Self::BadLink => "bad-layer-link",
            Self::BadBlob => "bad-blob",
            Self::BrokenImage => "broken-image-record",
            Self::BrokenContainerLayer => "broken-container-layer",
            Self::ContainerMissingLayer => "container-missing-layer",
        }
    }

    /// Whether [`repair`] fixes this kind.
    pub fn repairable(self) -> bool {
        !matches!(self, Self::ContainerMissingLayer)
    }
}

/// One inconsistency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The file or directory concerned.
    pub path: PathBuf,
    /// Why it is a problem.
    pub detail: String,
}

fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("read directory", dir)(e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(StoreError::io("read directory", dir))?;
        out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    out.sort();
    Ok(out)
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T, String> {
    let data = fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    serde_json::from_slice(&data).map_err(|e| format!("invalid {}: {e}", p.display()))
}

/// The same validity rules as recovery's `load_layer`.
fn layer_problem(name: &str, dir: &Path) -> Result<LayerRecord, String> {
    if !is_sha256_hex(name) {
        return Err("not a layer directory name".into());
    }
    let rec: LayerRecord =
        read_json(&dir.join("layer.json")).map_err(|e| format!("{e}: incomplete unpack"))?;
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

/// Report every inconsistency of the store at `root` without changing anything. A
/// missing store is consistent (nothing was ever pulled).
pub fn check(root: &Path) -> Result<Vec<Problem>, StoreError> {
    let mut out = Vec::new();
    let mut push = |kind, path: &Path, detail: String| {
        out.push(Problem {
            kind,
            path: path.to_owned(),
            detail,
        })
    };
    for (_, p) in entries(&root.join("tmp"))? {
        push(
            ProblemKind::TempLeftover,
            &p,
            "left by an interrupted operation".into(),
        );
    }
    let mut layers: Vec<LayerRecord> = Vec::new();
    let boot = current_boot_id();
    for (name, p) in entries(&root.join("layers"))? {
        match layer_problem(&name, &p) {
            Ok(rec) => {
                // A marker of this boot is normal (the daemon syncs pulled layers in the
                // background, recovery finishes the job); one of an earlier boot means a
                // power loss may have torn the layer, and recovery drops it.
                let marker = p.join(UNSYNCED_MARKER);
                if fs::symlink_metadata(&marker).is_ok() {
                    let written_by = fs::read_to_string(&marker).unwrap_or_default();
                    if !unsynced_layer_trusted(&written_by, boot.as_deref()) {
                        push(
                            ProblemKind::UnsyncedLayer,
                            &p,
                            "published without a completed sync before the machine restarted"
                                .into(),
                        );
                    }
                }
                layers.push(rec);
            }
            Err(why) => push(ProblemKind::IncompleteLayer, &p, why),
        }
    }
    let known: HashSet<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
    let links = root.join("l");
    for (name, p) in entries(&links)? {
        let target_ok = layers.iter().any(|r| {
            r.short == name
                && fs::read_link(&p).ok().as_deref()
                    == Some(Path::new(&format!("../layers/{}/diff", r.diff_id.hex())))
        });
        if !target_ok {
            push(
                ProblemKind::BadLink,
                &p,
                "dangling or not pointing at its layer".into(),
            );
        }
    }
    for r in &layers {
        let link = links.join(&r.short);
        if fs::symlink_metadata(&link).is_err() {
            push(
                ProblemKind::BadLink,
                &link,
                format!("missing link of layer {}", r.diff_id),
            );
        }
    }
    let blobs = root.join("blobs/sha256");
    for (name, p) in entries(&blobs)? {
        if name.starts_with(TMP_PREFIX) || !is_sha256_hex(&name) {
            push(
                ProblemKind::BadBlob,
                &p,
                "temp file or not a digest name".into(),
            );
        }
    }
    let mut live: HashSet<Digest> = HashSet::new();
    for (name, p) in entries(&root.join("images"))? {
        let Some(id) = id_from_record_name(&name) else {
            push(
                ProblemKind::BrokenImage,
                &p,
                "temp file or not an image record name".into(),
            );
            continue;
        };
        let rec: ImageRecord = match read_json(&p) {
            Ok(r) => r,
            Err(e) => {
                push(ProblemKind::BrokenImage, &p, e);
                continue;
            }
        };
        if rec.id != id {
            push(
                ProblemKind::BrokenImage,
                &p,
                format!("names image {}", rec.id),
            );
            continue;
        }
        if let Some(l) = rec.layers.iter().find(|l| !known.contains(l)) {
            push(
                ProblemKind::BrokenImage,
                &p,
                format!("layer {l} is missing"),
            );
            continue;
        }
        if let Some(b) = [&rec.id, &rec.manifest_digest]
            .into_iter()
            .find(|b| !blobs.join(b.hex()).is_file())
        {
            push(ProblemKind::BrokenImage, &p, format!("blob {b} is missing"));
            continue;
        }
        live.extend(rec.layers);
    }
    for (name, p) in entries(&root.join("containers"))? {
        let rec = read_json::<ContainerRecord>(&p.join("container.json")).and_then(|r| {
            if r.id == name {
                Ok(r)
            } else {
                Err(format!("record names container {}", r.id))
            }
        });
        match rec {
            Ok(r) => {
                if let Some(l) = r.layers.iter().find(|l| !known.contains(l)) {
                    push(
                        ProblemKind::ContainerMissingLayer,
                        &p,
                        format!("image layer {l} is missing: the container cannot be mounted"),
                    );
                }
                for (n, tp) in entries(&p)? {
                    if n.starts_with(TMP_PREFIX) {
                        push(ProblemKind::TempLeftover, &tp, "interrupted write".into());
                    }
                }
                live.extend(r.layers);
            }
            Err(why) => push(ProblemKind::BrokenContainerLayer, &p, why),
        }
    }
    for r in &layers {
        if !live.contains(&r.diff_id) {
            push(
                ProblemKind::OrphanLayer,
                &root.join("layers").join(r.diff_id.hex()),
                "no image or container references it".into(),
            );
        }
    }
    Ok(out)
}

/// Fix what [`check`] reports: `Store::open`'s recovery, then a gc without grace period
/// (removes orphan layers and unreferenced blobs). Returns the problems found before the
/// repair and the store, open. Must not run while a daemon uses the store.
pub fn repair(root: &Path) -> Result<(Vec<Problem>, Store), StoreError> {
    let found = check(root)?;
    let store = Store::open(root)?;
    store.set_gc_grace(Duration::ZERO);
    let stats = store.gc()?;
    if stats.layers_removed + stats.blobs_removed > 0 {
        tracing::info!(
            layers = stats.layers_removed,
            blobs = stats.blobs_removed,
            "removed unreferenced layers and blobs"
        );
    }
    store.set_gc_grace(crate::store::DEFAULT_GC_GRACE);
    Ok((found, store))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kinds(p: &[Problem]) -> Vec<ProblemKind> {
        p.iter().map(|p| p.kind).collect()
    }

    #[test]
    fn empty_and_missing_stores_are_consistent() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check(&dir.path().join("nothing")).unwrap().is_empty());
        let _ = Store::open(dir.path()).unwrap();
        assert!(check(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn orphan_layers_and_links_found_and_repaired_images_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let store = Store::open(root).unwrap();
        let kept = crate::test_support::put_image(&store, "kept", &["base", "top"], &["k:1"]);
        let gone = crate::test_support::put_image(&store, "gone", &["base", "own"], &["g:1"]);
        drop(store);
        assert!(check(root).unwrap().is_empty());
        // Losing an image record orphans the layer only it used.
        fs::remove_file(root.join("images").join(format!("{}.json", gone.id.hex()))).unwrap();
        // And a removed short link is reported too.
        let top = &kept.layers[1];
        let rec: LayerRecord =
            read_json(&root.join("layers").join(top.hex()).join("layer.json")).unwrap();
        fs::remove_file(root.join("l").join(&rec.short)).unwrap();
        let found = check(root).unwrap();
        let orphans: Vec<&Problem> = found
            .iter()
            .filter(|p| p.kind == ProblemKind::OrphanLayer)
            .collect();
        assert_eq!(orphans.len(), 1, "{found:?}");
        assert!(orphans[0].path.ends_with(gone.layers[1].hex()));
        assert!(kinds(&found).contains(&ProblemKind::BadLink), "{found:?}");
        let (_, store) = repair(root).unwrap();
        assert_eq!(store.images().len(), 1);
        drop(store);
        assert!(check(root).unwrap().is_empty());
        assert!(root.join("layers").join(top.hex()).join("diff").is_dir());
    }

    #[test]
    fn reports_then_repairs_leftovers_and_broken_records() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        drop(Store::open(root).unwrap());
        let hex = "a".repeat(64);
        fs::create_dir_all(root.join("layers").join(&hex).join("diff")).unwrap();
        fs::create_dir_all(root.join("tmp/leftover")).unwrap();
        let missing = format!("sha256:{}", "b".repeat(64));
        let img_hex = "c".repeat(64);
        fs::write(
            root.join("images").join(format!("{img_hex}.json")),
            format!(
                r#"{{"id":"sha256:{img_hex}","manifest_digest":"{missing}","layers":["{missing}"]}}"#
            ),
        )
        .unwrap();
        let found = check(root).unwrap();
        let k = kinds(&found);
        assert!(k.contains(&ProblemKind::IncompleteLayer), "{found:?}");
        assert!(k.contains(&ProblemKind::TempLeftover), "{found:?}");
        assert!(k.contains(&ProblemKind::BrokenImage), "{found:?}");
        // check() changed nothing.
        assert_eq!(check(root).unwrap(), found);
        let (before, store) = repair(root).unwrap();
        assert_eq!(before, found);
        assert!(store.images().is_empty());
        drop(store);
        assert!(check(root).unwrap().is_empty());
        assert!(!root.join("layers").join(&hex).exists());
    }
}
