//! Store-level tests across modules: layer application, crash recovery, image names, gc,
//! usage and real overlay mounts (these need root, as the team's test machine runs).
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::compression::Compression;
use crate::digest::Digest;
use crate::error::StoreError;
use crate::store::{ApplyLayer, ImageRecord, Store, Untagged};
use crate::test_support::{layer, put_image, tar_of};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    s.set_gc_grace(std::time::Duration::ZERO);
    (dir, s)
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn apply_layer_all_compressions() {
    let (_d, s) = open();
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let content = format!("hello {c:?}");
        let (req, blob) = layer("etc/hello", content.as_bytes(), c);
        let info = s.apply_layer(&req, &mut &blob[..]).unwrap();
        assert_eq!(
            fs::read_to_string(info.path.join("etc/hello")).unwrap(),
            content
        );
        assert_eq!(s.layer(&req.diff_id).unwrap(), info);
        assert!(info.size >= 1024, "tar length {}", info.size);
        // Already present: the stream is not read.
        let again = s.apply_layer(&req, &mut std::io::empty()).unwrap();
        assert_eq!(again, info);
        let link = s.root().join("l").join(&req.diff_id.hex()[..16]);
        assert_eq!(fs::canonicalize(link).unwrap(), info.path);
    }
    assert_eq!(count(&s.root().join("tmp")), 0);
}

#[test]
fn mismatches_leave_nothing_behind() {
    let (_d, s) = open();
    let (good, blob) = layer("a", b"a", Compression::Gzip);
    let wrong = Digest::sha256_of(b"wrong");
    let bad_compressed = ApplyLayer {
        compressed_digest: wrong.clone(),
        ..good.clone()
    };
    let bad_diff = ApplyLayer {
        diff_id: wrong.clone(),
        ..good.clone()
    };
    let bad_size = ApplyLayer {
        compressed_size: Some(blob.len() as u64 - 1),
        ..good.clone()
    };
    let e = s.apply_layer(&bad_compressed, &mut &blob[..]).unwrap_err();
    assert!(matches!(e, StoreError::DigestMismatch { .. }), "{e}");
    let e = s.apply_layer(&bad_diff, &mut &blob[..]).unwrap_err();
    assert!(matches!(e, StoreError::DigestMismatch { .. }), "{e}");
    let e = s.apply_layer(&bad_size, &mut &blob[..]).unwrap_err();
    assert!(matches!(e, StoreError::SizeMismatch { .. }), "{e}");
    // Trailing garbage after the gzip stream is counted (and here rejected).
    let mut longer = blob.clone();
    longer.extend_from_slice(&[0u8; 10]);
    assert!(s.apply_layer(&good, &mut &longer[..]).is_err());
    // Truncated stream.
    assert!(s.apply_layer(&good, &mut &blob[..blob.len() / 2]).is_err());
    assert_eq!(count(&s.root().join("tmp")), 0);
    assert_eq!(count(&s.root().join("layers")), 0);
    assert_eq!(count(&s.root().join("l")), 0);
    assert!(s.layer(&good.diff_id).is_none());
    s.apply_layer(&good, &mut &blob[..]).unwrap();
}

#[test]
fn unsafe_entry_fails_and_leaves_nothing() {
    let (_d, s) = open();
    let mut h = tar::Header::new_gnu();
    let name = b"../escape";
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.push(b'x');
    tar.resize(512 * 2, 0);
    tar.resize(512 * 4, 0);
    let req = ApplyLayer {
        diff_id: Digest::sha256_of(&tar),
        compressed_digest: Digest::sha256_of(&tar),
        compression: Compression::None,
        compressed_size: Some(tar.len() as u64),
        start_writeback: false,
    };
    let e = s.apply_layer(&req, &mut &tar[..]).unwrap_err();
    assert!(matches!(e, StoreError::Unpack { .. }), "{e}");
    assert_eq!(count(&s.root().join("tmp")), 0);
    assert_eq!(count(&s.root().join("layers")), 0);
    assert!(!s.root().join("escape").exists());
}

/// A slow reader that records that it was read from.
struct Slow<'a> {
    data: &'a [u8],
    readers: &'a AtomicUsize,
    counted: bool,
}

impl Read for Slow<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.counted {
            self.counted = true;
            self.readers.fetch_add(1, Ordering::SeqCst);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        let n = buf.len().min(self.data.len()).min(64);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn concurrent_apply_of_one_layer_unpacks_once() {
    let (_d, s) = open();
    let s = Arc::new(s);
    let (req, blob) = layer("big", &vec![7u8; 8192], Compression::None);
    let readers = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (s, req, blob, readers) = (s.clone(), req.clone(), blob.clone(), readers.clone());
            std::thread::spawn(move || {
                let mut r = Slow {
                    data: &blob,
                    readers: &readers,
                    counted: false,
                };
                s.apply_layer(&req, &mut std::io::BufReader::with_capacity(64, &mut r))
                    .unwrap()
            })
        })
        .collect();
    let infos: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(infos.iter().all(|i| *i == infos[0]));
    assert_eq!(readers.load(Ordering::SeqCst), 1);
}

#[test]
fn crash_leftovers_are_cleaned_and_complete_images_survive() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let img = {
        let s = Store::open(root).unwrap();
        put_image(&s, "keep", &["l1", "l2"], &["docker.io/library/keep:1"])
    };
    // A crash mid-unpack, an unpublished layer, a garbage record, a record whose layer is
    // gone, a half-written temp record, a dangling link.
    fs::create_dir_all(root.join("tmp/123-4-5/diff/etc")).unwrap();
    let half = Digest::sha256_of(b"half");
    fs::create_dir_all(root.join("layers").join(half.hex()).join("diff")).unwrap();
    let garbage = Digest::sha256_of(b"garbage");
    fs::write(
        root.join("images").join(format!("{}.json", garbage.hex())),
        b"{not json",
    )
    .unwrap();
    let orphan = ImageRecord {
        id: Digest::sha256_of(b"orphan"),
        layers: vec![half.clone()],
        ..img.clone()
    };
    fs::write(
        root.join("images")
            .join(format!("{}.json", orphan.id.hex())),
        serde_json::to_vec(&orphan).unwrap(),
    )
    .unwrap();
    fs::write(root.join("images/.tmp-x.json-1-2-3"), b"{").unwrap();
    std::os::unix::fs::symlink("../layers/nope/diff", root.join("l/DANGLING")).unwrap();
    // A layer link lost after publish is recreated.
    let l1 = img.layers[0].clone();
    let short = fs::read_to_string(root.join("layers").join(l1.hex()).join("link")).unwrap();
    fs::remove_file(root.join("l").join(&short)).unwrap();

    let s = Store::open(root).unwrap();
    assert_eq!(count(&root.join("tmp")), 0);
    assert!(!root.join("layers").join(half.hex()).exists());
    assert_eq!(s.images(), vec![img.clone()]);
    assert!(!root.join("l/DANGLING").exists());
    assert!(root.join("l").join(&short).join("l1.txt").is_file());
    assert_eq!(count(&root.join("images")), 1);
    assert_eq!(s.find_image("docker.io/library/keep:1").unwrap().id, img.id);
}

#[test]
fn duplicate_tag_claims_after_crash_newest_wins() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (a, b) = {
        let s = Store::open(root).unwrap();
        let a = put_image(&s, "a", &["x"], &["t:1"]);
        let b = put_image(&s, "b", &["y"], &["t:2"]);
        (a, b)
    };
    // Simulate the crash window: b claims t:1 but a was not rewritten.
    let mut b2 = b.clone();
    b2.repo_tags.push("t:1".into());
    b2.created_unix_nanos = a.created_unix_nanos + 1;
    fs::write(
        root.join("images").join(format!("{}.json", b.id.hex())),
        serde_json::to_vec(&b2).unwrap(),
    )
    .unwrap();
    let s = Store::open(root).unwrap();
    assert_eq!(s.find_image("t:1").unwrap().id, b.id);
    assert!(
        s.find_image(&a.id.to_string())
            .unwrap()
            .repo_tags
            .is_empty()
    );
    let on_disk: ImageRecord = serde_json::from_slice(
        &fs::read(root.join("images").join(format!("{}.json", a.id.hex()))).unwrap(),
    )
    .unwrap();
    assert!(on_disk.repo_tags.is_empty());
}

#[test]
fn tags_move_and_untag_remove_gc() {
    let (_d, s) = open();
    let a = put_image(&s, "a", &["shared", "only-a"], &["r/x:1", "r/x:latest"]);
    let b = put_image(&s, "b", &["shared", "only-b"], &["r/x:latest"]);
    assert_eq!(s.find_image("r/x:latest").unwrap().id, b.id);
    assert_eq!(s.find_image("r/x:1").unwrap().id, a.id);
    assert_eq!(
        s.find_image(&a.id.to_string()).unwrap().repo_tags,
        vec!["r/x:1"]
    );
    // Merge on re-put of the same id.
    let mut again = s.find_image("r/x:1").unwrap();
    again.repo_tags = vec!["r/x:2".into()];
    again.repo_digests = vec![format!("r/x@{}", again.manifest_digest)];
    let merged = s.put_image(again).unwrap();
    assert_eq!(merged.repo_tags, vec!["r/x:1", "r/x:2"]);
    assert_eq!(s.find_image(&merged.repo_digests[0]).unwrap().id, a.id);
    // Moving the last tag away leaves a dangling image.
    let c = put_image(&s, "c", &[], &["r/x:1", "r/x:2"]);
    let dangling = s.find_image(&a.id.to_string()).unwrap();
    assert!(dangling.repo_tags.is_empty());
    assert_eq!(s.images().len(), 3);
    // Untag: not last tag keeps the image, last tag removes it.
    assert_eq!(
        s.untag_image("r/x:1").unwrap(),
        Untagged::Untagged {
            image: c.id.clone()
        }
    );
    assert_eq!(
        s.untag_image("r/x:2").unwrap(),
        Untagged::Removed {
            image: c.id.clone()
        }
    );
    assert!(matches!(
        s.untag_image("r/x:2"),
        Err(StoreError::NotFound { .. })
    ));
    // remove + gc: shared layer survives while b uses it, only-a goes.
    s.remove_image(&a.id).unwrap();
    assert!(s.layer(&a.layers[0]).is_some());
    assert!(s.layer(&a.layers[1]).is_none());
    assert!(!s.has_blob(&a.id));
    s.remove_image(&b.id).unwrap();
    assert_eq!(count(&s.root().join("layers")), 0);
    assert_eq!(count(&s.root().join("l")), 0);
    assert_eq!(count(&s.root().join("blobs/sha256")), 0);
    assert_eq!(count(&s.root().join("tmp")), 0);
    assert!(matches!(
        s.remove_image(&b.id),
        Err(StoreError::NotFound { .. })
    ));
    assert!(s.images().is_empty());
}

#[test]
fn put_image_requires_content_and_gc_grace_protects_pulls() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let (req, blob) = layer("a", b"a", Compression::Gzip);
    s.apply_layer(&req, &mut &blob[..]).unwrap();
    // Default grace: an unreferenced fresh layer survives gc.
    assert_eq!(s.gc().unwrap().layers_removed, 0);
    let rec = ImageRecord {
        id: Digest::sha256_of(b"cfg"),
        manifest_digest: Digest::sha256_of(b"m"),
        repo_tags: vec![],
        repo_digests: vec![],
        layers: vec![req.diff_id.clone()],
        size: 0,
        created_unix_nanos: 0,
        pinned: false,
    };
    assert!(matches!(
        s.put_image(rec),
        Err(StoreError::NotFound { kind: "blob", .. })
    ));
    s.set_gc_grace(std::time::Duration::ZERO);
    let st = s.gc().unwrap();
    assert_eq!(st.layers_removed, 1);
    assert!(st.bytes_freed > 0);
}

#[test]
fn find_image_variants() {
    let (_d, s) = open();
    let a = put_image(&s, "a", &["x"], &["docker.io/library/a:latest"]);
    assert_eq!(s.find_image(&a.id.to_string()).unwrap().id, a.id);
    assert_eq!(s.find_image(a.id.hex()).unwrap().id, a.id);
    assert_eq!(s.find_image(&a.id.hex()[..4]).unwrap().id, a.id);
    assert_eq!(s.find_image("docker.io/library/a:latest").unwrap().id, a.id);
    assert!(s.find_image("a:latest").is_none());
    assert!(s.find_image(&a.id.hex()[..2]).is_none());
}

#[test]
fn usage_counts_hardlinks_once() {
    let (_d, s) = open();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(50_000);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "a", &vec![1u8; 50_000][..]).unwrap();
    for name in ["b", "c"] {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Link);
        b.append_link(&mut h, name, "a").unwrap();
    }
    let tar = b.into_inner().unwrap();
    let req = ApplyLayer {
        diff_id: Digest::sha256_of(&tar),
        compressed_digest: Digest::sha256_of(&tar),
        compression: Compression::None,
        compressed_size: None,
        start_writeback: false,
    };
    let before = s.usage().unwrap();
    s.apply_layer(&req, &mut &tar[..]).unwrap();
    let after = s.usage().unwrap();
    let rec = crate::store::read(&s.layers)
        .get(&req.diff_id)
        .cloned()
        .unwrap();
    assert_eq!(rec.inodes, 2, "diff dir + one file inode");
    assert!(rec.disk_bytes >= 50_000 && rec.disk_bytes < 100_000);
    // + diff tree (2) + layer dir, layer.json, link (3) + l/ link (1)
    assert_eq!(after.inodes - before.inodes, 6);
    assert_eq!(after.mountpoint, s.root());
}

/// Unmounts every container of the store when dropped, even if the test failed.
struct Unmounter<'a>(&'a Store);

impl Drop for Unmounter<'_> {
    fn drop(&mut self) {
        for c in self.0.containers() {
            let merged = c.dir.join("merged");
            let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

#[test]
fn container_overlay_lifecycle() {
    let (_d, s) = open();
    let _guard = Unmounter(&s);
    let img = put_image(&s, "c", &["bottom", "top"], &["c:1"]);
    let c = s.create_container("ctr1", &img.id).unwrap();
    assert!(!c.mounted);
    assert!(matches!(
        s.create_container("ctr1", &img.id),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        s.create_container("ctr2", &Digest::sha256_of(b"none")),
        Err(StoreError::NotFound { kind: "image", .. })
    ));
    let merged = s.mount_container("ctr1").unwrap();
    assert_eq!(s.mount_container("ctr1").unwrap(), merged);
    assert!(s.containers()[0].mounted);
    assert_eq!(
        fs::read_to_string(merged.join("bottom.txt")).unwrap(),
        "bottom"
    );
    assert_eq!(fs::read_to_string(merged.join("top.txt")).unwrap(), "top");
    fs::write(merged.join("new"), b"written").unwrap();
    assert_eq!(fs::read(c.dir.join("upper/new")).unwrap(), b"written");
    assert!(s.container_usage("ctr1").unwrap().inodes >= 2);
    match s.remove_image(&img.id) {
        Err(StoreError::ImageInUse { container, .. }) => assert_eq!(container, "ctr1"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.untag_image("c:1"),
        Err(StoreError::ImageInUse { .. })
    ));
    assert_eq!(s.find_image("c:1").unwrap().id, img.id);
    s.unmount_container("ctr1").unwrap();
    s.unmount_container("ctr1").unwrap();
    assert!(!s.containers()[0].mounted);
    s.mount_container("ctr1").unwrap();
    // Reopen sees the container (and does not touch its mount).
    let s2 = Store::open(s.root()).unwrap();
    assert!(s2.containers()[0].mounted);
    drop(s2);
    s.delete_container("ctr1").unwrap();
    assert!(!c.dir.exists());
    assert!(s.containers().is_empty());
    assert!(matches!(
        s.delete_container("ctr1"),
        Err(StoreError::NotFound { .. })
    ));
    s.remove_image(&img.id).unwrap();
    assert_eq!(count(&s.root().join("layers")), 0);
}

#[test]
fn image_without_layers_mounts() {
    let (_d, s) = open();
    let _guard = Unmounter(&s);
    let img = put_image(&s, "empty", &[], &["e:1"]);
    s.create_container("e", &img.id).unwrap();
    let merged = s.mount_container("e").unwrap();
    fs::write(merged.join("f"), b"x").unwrap();
    s.delete_container("e").unwrap();
}

#[test]
fn image_with_150_layers_mounts() {
    let (_d, s) = open();
    let _guard = Unmounter(&s);
    let names: Vec<String> = (0..150).map(|i| format!("layer{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let img = put_image(&s, "many", &refs, &["many:1"]);
    assert_eq!(img.layers.len(), 150);
    s.create_container("many", &img.id).unwrap();
    let merged = s.mount_container("many").unwrap();
    assert_eq!(
        fs::read_to_string(merged.join("layer000.txt")).unwrap(),
        "layer000"
    );
    assert_eq!(
        fs::read_to_string(merged.join("layer149.txt")).unwrap(),
        "layer149"
    );
    s.delete_container("many").unwrap();
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

#[test]
fn follower_retries_when_the_leader_fails() {
    let (_d, s) = open();
    let s = Arc::new(s);
    let (req, blob) = layer("f", &vec![3u8; 4096], Compression::None);
    let mut bad = blob.clone();
    bad[600] ^= 0xff;
    let readers = Arc::new(AtomicUsize::new(0));
    let leader = {
        let (s, req, readers) = (s.clone(), req.clone(), readers.clone());
        std::thread::spawn(move || {
            let mut r = Slow {
                data: &bad,
                readers: &readers,
                counted: false,
            };
            s.apply_layer(&req, &mut std::io::BufReader::with_capacity(64, &mut r))
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    let info = s.apply_layer(&req, &mut &blob[..]).unwrap();
    assert!(matches!(
        leader.join().unwrap(),
        Err(StoreError::DigestMismatch { .. })
    ));
    assert_eq!(fs::read(info.path.join("f")).unwrap(), vec![3u8; 4096]);
    assert_eq!(count(&s.root().join("tmp")), 0);
}

#[test]
fn tar_helper_is_deterministic() {
    assert_eq!(tar_of(&[("a", b"1")]), tar_of(&[("a", b"1")]));
}
