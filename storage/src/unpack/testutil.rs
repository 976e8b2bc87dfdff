//! Test helpers: an in-memory tar writer that, unlike `tar::Builder`, writes any name
//! (hostile ones included) and raw PAX records, plus an unpack-into-temp-dir wrapper.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::{UnpackError, UnpackOptions, UnpackStats, unpack_layer};

/// Default mtime of test entries.
pub(crate) const MTIME: u64 = 1_600_000_000;

/// A tar stream under construction.
#[derive(Default)]
pub(crate) struct Tar {
    pub buf: Vec<u8>,
}

impl Tar {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append an entry with a raw (unchecked, <= 100 bytes) name; `f` adjusts the header.
    pub fn entry(
        &mut self,
        path: &str,
        ty: EntryType,
        data: &[u8],
        f: impl FnOnce(&mut Header),
    ) -> &mut Self {
        let mut h = Header::new_ustar();
        let name = path.as_bytes();
        assert!(name.len() <= 100, "use pax_path for long names");
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(ty);
        h.set_size(data.len() as u64);
        h.set_mode(if ty == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        f(&mut h);
        h.set_cksum();
        self.raw(h.as_bytes(), data);
        self
    }

    /// Append a header block and a body padded to 512 bytes.
    pub fn raw(&mut self, header: &[u8], data: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(header);
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.resize(self.buf.len() + pad, 0);
        self
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.entry(path, EntryType::Regular, data, |_| {})
    }

    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.entry(path, EntryType::Directory, b"", |_| {})
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(path, EntryType::Symlink, b"", |h| {
            h.set_link_name_literal(target).unwrap();
            h.set_mode(0o777);
        })
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(path, EntryType::Link, b"", |h| {
            h.set_link_name_literal(target).unwrap()
        })
    }

    /// A PAX local header ('x') with the given records, applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3; // ' ', '=', '\n'
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.entry("PaxHeaders/x", EntryType::XHeader, &body, |_| {})
    }

    /// End-of-archive marker (two zero blocks).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = self.buf.clone();
        out.resize(out.len() + 1024, 0);
        out
    }
}

/// A temp base dir holding the layer directory `dest` and room for "outside" files.
pub(crate) struct Sandbox {
    pub base: tempfile::TempDir,
    pub dest: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let base = tempfile::tempdir().unwrap();
        let dest = base.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        Self { base, dest }
    }

    pub fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
        self.unpack_with(tar, &UnpackOptions::default())
    }

    pub fn unpack_with(
        &self,
        tar: &[u8],
        opts: &UnpackOptions,
    ) -> Result<UnpackStats, UnpackError> {
        unpack_layer(tar, &self.dest, opts)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }

    pub fn outside(&self) -> &Path {
        self.base.path()
    }

    /// Names directly in the base dir other than `dest` (things written outside).
    pub fn outside_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.base.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "dest")
            .collect();
        v.sort();
        v
    }
}
