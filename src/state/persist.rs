//! Atomic record files: write to a temp file in the same directory, fsync, rename, fsync
//! the directory. A reader (the next daemon) sees the old or the new record, never a torn
//! one; leftover temp files are ignored and removed at load.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A record could not be written, read or removed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// File system failure.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The record could not be encoded or decoded.
    #[error("record {path} is not valid")]
    Json {
        /// The file.
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PersistError + 'a {
    move |source| PersistError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Write `value` as JSON to `dir/<name>.json` atomically (see [`crate::atomic_file`];
/// `durable` makes it survive a power loss, not only a daemon crash).
pub fn save<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
    durable: bool,
) -> Result<(), PersistError> {
    let path = dir.join(format!("{name}.json"));
    let data = serde_json::to_vec(value).map_err(|source| PersistError::Json {
        path: path.clone(),
        source,
    })?;
    crate::atomic_file::write(&path, &data, durable).map_err(|e| PersistError::Io {
        op: e.op,
        path: e.path,
        source: e.source,
    })
}

/// Remove `dir/<name>.json` (idempotent).
pub fn delete(dir: &Path, name: &str) -> Result<(), PersistError> {
    let path = dir.join(format!("{name}.json"));
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", &path)(e)),
    }
}

/// Every record in `dir`. Unreadable records are returned as errors next to the good
/// ones so the caller can log them and go on: one bad file never stops the daemon.
pub fn load_all<T: DeserializeOwned>(dir: &Path) -> Vec<Result<T, PersistError>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = fs::remove_file(&path);
            continue;
        }
        if !name.ends_with(".json") {
            continue;
        }
        out.push(fs::read(&path).map_err(io("read", &path)).and_then(|data| {
            serde_json::from_slice(&data).map_err(|source| PersistError::Json {
                path: path.clone(),
                source,
            })
        }));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn save_load_delete() {
        let d = tempfile::tempdir().unwrap();
        save(d.path(), "a", &vec![1, 2, 3], true).unwrap();
        save(d.path(), "a", &vec![4], false).unwrap();
        fs::write(d.path().join(".b.tmp"), "junk").unwrap();
        fs::write(d.path().join("c.json"), "{not json").unwrap();
        let all: Vec<Result<Vec<i32>, _>> = load_all(d.path());
        let good: Vec<_> = all.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(good, vec![&vec![4]]);
        assert_eq!(all.iter().filter(|r| r.is_err()).count(), 1);
        assert!(!d.path().join(".b.tmp").exists());
        delete(d.path(), "a").unwrap();
        delete(d.path(), "a").unwrap();
    }
}
