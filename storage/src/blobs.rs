//! Content-addressed blobs (manifests, configs, indexes): verified on write, written
//! atomically, idempotent.

use std::fs;

use crate::atomic::write_atomic;
use crate::digest::Digest;
use crate::error::StoreError;
use crate::store::Store;

impl Store {
    /// Store `data` under `digest` after verifying sha256(data) == digest.
    pub fn put_blob(&self, digest: &Digest, data: &[u8]) -> Result<(), StoreError> {
        let actual = Digest::sha256_of(data);
        if &actual != digest {
            return Err(StoreError::DigestMismatch {
                what: format!("blob {digest}"),
                expected: digest.clone(),
                actual,
            });
        }
        // Protect from a concurrent gc before the file exists.
        self.mark_fresh(digest);
        let path = self.blob_path(digest);
        if path.is_file() {
            return Ok(());
        }
        write_atomic(&path, data)
    }

    /// Read a blob; `NotFound` if absent.
    pub fn get_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::NotFound {
                    kind: "blob",
                    id: digest.to_string(),
                }
            } else {
                StoreError::io("read", &path)(e)
            }
        })
    }

    /// Whether a blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn put_get_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"{}");
        s.put_blob(&d, b"{}").unwrap();
        s.put_blob(&d, b"{}").unwrap();
        assert_eq!(s.get_blob(&d).unwrap(), b"{}");
        assert!(s.has_blob(&d));
        let other = Digest::sha256_of(b"x");
        assert!(matches!(
            s.put_blob(&other, b"y"),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert!(matches!(
            s.get_blob(&other),
            Err(StoreError::NotFound { kind: "blob", .. })
        ));
    }
}
