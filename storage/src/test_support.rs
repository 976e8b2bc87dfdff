//! Test helpers shared by the store tests: build small layer tars and image records.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use crate::compression::Compression;
use crate::digest::Digest;
use crate::store::{ApplyLayer, ImageRecord, Store};

/// A tar with the given (path, content) regular files.
pub(crate) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub(crate) fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(tar, 1).unwrap(),
    }
}

/// (request, compressed bytes) for a layer with one file.
pub(crate) fn layer(name: &str, content: &[u8], c: Compression) -> (ApplyLayer, Vec<u8>) {
    let tar = tar_of(&[(name, content)]);
    let blob = compress(&tar, c);
    (
        ApplyLayer {
            diff_id: Digest::sha256_of(&tar),
            compressed_digest: Digest::sha256_of(&blob),
            compression: c,
            compressed_size: Some(blob.len() as u64),
            // Exercise the sync_file_range path in the store tests.
            start_writeback: true,
        },
        blob,
    )
}

/// Store an image with the given layer files (one file per layer) and tags.
pub(crate) fn put_image(store: &Store, seed: &str, layers: &[&str], tags: &[&str]) -> ImageRecord {
    let mut diff_ids = Vec::new();
    for l in layers {
        let (req, blob) = layer(&format!("{l}.txt"), l.as_bytes(), Compression::Gzip);
        store.apply_layer(&req, &mut &blob[..]).unwrap();
        diff_ids.push(req.diff_id);
    }
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let id = Digest::sha256_of(config.as_bytes());
    store.put_blob(&id, config.as_bytes()).unwrap();
    let manifest = format!("{{\"manifest\":\"{seed}\"}}");
    let md = Digest::sha256_of(manifest.as_bytes());
    store.put_blob(&md, manifest.as_bytes()).unwrap();
    store
        .put_image(ImageRecord {
            id,
            manifest_digest: md,
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: vec![],
            layers: diff_ids,
            size: 0,
            created_unix_nanos: crate::store::now_nanos(),
            pinned: false,
        })
        .unwrap()
}
