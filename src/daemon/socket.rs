//! The CRI unix socket: directory, stale-socket replacement, bind, permissions, removal.
//!
//! Like containerd and CRI-O, a leftover socket from a crashed daemon is replaced, but a
//! socket another live daemon answers on is never stolen: binding over it would leave that
//! daemon serving nobody while the kubelet talks to us.

use std::fs::{DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Socket directory mode (world-traversable, like /run/containerd).
pub const SOCKET_DIR_MODE: u32 = 0o755;
/// Socket mode: root and the socket's group may connect.
pub const SOCKET_MODE: u32 = 0o660;

/// Errors preparing the socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The parent directory could not be created.
    #[error("cannot create socket directory {path:?}")]
    Dir {
        /// The directory.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another process answers on the socket.
    #[error(
        "another daemon is already serving on {path:?}; stop it first or choose another --listen"
    )]
    InUse {
        /// The socket.
        path: PathBuf,
    },
    /// The path exists and is not a socket: never delete it.
    #[error("{path:?} exists and is not a socket; refusing to replace it")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Other I/O on the socket path.
    #[error("cannot {what} socket {path:?}")]
    Io {
        /// What failed (remove stale, bind, chmod, inspect).
        what: &'static str,
        /// The socket.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SocketError + 'a {
    move |source| SocketError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Create the directory, replace a stale socket, bind and chmod. Must run inside tokio.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    if let Some(dir) = path.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(SOCKET_DIR_MODE)
            .create(dir)
            .map_err(|source| SocketError::Dir {
                path: dir.to_owned(),
                source,
            })?;
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspect", path)(e)),
        Ok(md) if md.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse {
                    path: path.to_owned(),
                });
            }
            tracing::info!(path = %path.display(), "removing stale socket");
            std::fs::remove_file(path).map_err(io_err("remove stale", path))?;
        }
        Ok(_) => {
            return Err(SocketError::NotASocket {
                path: path.to_owned(),
            });
        }
    }
    let listener = UnixListener::bind(path).map_err(io_err("bind", path))?;
    std::fs::set_permissions(path, Permissions::from_mode(SOCKET_MODE))
        .map_err(io_err("chmod", path))?;
    Ok(listener)
}

/// Remove the socket at shutdown (best effort, logged).
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove socket"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replaces_stale_refuses_live_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/crust.sock");
        let live = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        assert!(matches!(bind(&path), Err(SocketError::InUse { .. })));
        drop(live);
        // The socket file stays behind: stale now.
        let again = bind(&path).unwrap();
        drop(again);
        remove(&path);
        assert!(!path.exists());
        std::fs::write(&path, "x").unwrap();
        assert!(matches!(bind(&path), Err(SocketError::NotASocket { .. })));
    }
}
