//! Atomic file replacement, the one implementation behind the daemon's state records,
//! pod files (hostname, hosts, resolv.conf) and OCI bundles' `config.json`.
//!
//! A temp file in the same directory, renamed over the target: readers (the runtime, a
//! container, the next daemon) see the old or the new content, never a torn file. Temp
//! names are unique per write, so concurrent writers of one path never share one.
//! `durable` adds fsyncs of the data and the directory, for what must survive a power loss;
//! volatile state (runroot files, container records) only needs to survive a daemon crash,
//! which the page cache guarantees.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A step of an atomic write failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}")]
pub struct AtomicWriteError {
    /// What was being done ("write", "rename", "fsync").
    pub op: &'static str,
    /// The file or directory concerned.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

fn err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> AtomicWriteError + 'a {
    move |source| AtomicWriteError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Replace `path` with `data` (mode 0644, readable by any container user).
pub fn write(path: &Path, data: &[u8], durable: bool) -> Result<(), AtomicWriteError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{seq}.tmp", std::process::id()));
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(err("create", &tmp))?;
        f.write_all(data).map_err(err("write", &tmp))?;
        if durable {
            f.sync_data().map_err(err("fsync", &tmp))?;
        }
        drop(f);
        fs::rename(&tmp, path).map_err(err("rename", path))?;
        if durable {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err("fsync", dir))?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_atomically_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write(&p, b"one", true).unwrap();
        write(&p, b"two", false).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let e = write(&d.path().join("missing/f"), b"x", false).unwrap_err();
        assert_eq!(e.op, "create");
    }
}
