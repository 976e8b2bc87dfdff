//! Connecting to a port inside a pod's network namespace.
//!
//! As CRI-O's and containerd's `PortForward`: enter the pod's network namespace and
//! dial localhost (IPv4 `127.0.0.1`, then IPv6 `::1`). A network namespace is a
//! per-thread property, so the dial runs on a dedicated, short-lived `std::thread` that
//! calls `setns(CLONE_NEWNET)` on the pinned namespace file and exits afterwards; never
//! on a tokio worker or `spawn_blocking` thread, which would stay in the pod's
//! namespace and leak it into unrelated work. The connected socket keeps the namespace
//! it was created in, so it is handed back to the async side and used from there.
//! Host-network pods (no pinned namespace) dial from the host namespace.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bound on one connect attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Seam for tests: how a thread joins a network namespace.
pub trait NetNs: Send + Sync + 'static {
    /// Move the calling thread into the namespace at `path`.
    fn enter(&self, path: &Path) -> std::io::Result<()>;
}

/// The real `setns(2)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SetNs;

impl NetNs for SetNs {
    fn enter(&self, path: &Path) -> std::io::Result<()> {
        let f = std::fs::File::open(path)?;
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&f),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        Ok(())
    }
}

/// Dial `port` on localhost inside `netns` (`None`: the host's namespace) and return a
/// tokio stream.
pub async fn dial(netns: Option<PathBuf>, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    dial_with(SetNs, netns, port).await
}

/// [`dial`] with an explicit namespace seam.
pub async fn dial_with<N: NetNs>(
    ns: N,
    netns: Option<PathBuf>,
    port: u16,
) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("crust-pf-dial".into())
        .spawn(move || {
            let r = (|| {
                if let Some(p) = &netns {
                    ns.enter(p).map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot enter network namespace {}: {e}", p.display()),
                        )
                    })?;
                }
                connect_localhost(port)
            })();
            let _ = tx.send(r);
        })?;
    let std_stream = rx
        .await
        .map_err(|_| std::io::Error::other("port-forward dial thread died"))??;
    std_stream.set_nonblocking(true)?;
    let s = tokio::net::TcpStream::from_std(std_stream)?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// IPv4 first, then IPv6; the IPv4 error is reported when both fail.
fn connect_localhost(port: u16) -> std::io::Result<TcpStream> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(s) => Ok(s),
        Err(e4) => {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|_| e4)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[derive(Clone, Default)]
    struct Recorder {
        seen: Arc<Mutex<Vec<(PathBuf, String)>>>,
    }

    impl NetNs for Recorder {
        fn enter(&self, path: &Path) -> std::io::Result<()> {
            let name = std::thread::current().name().unwrap_or_default().to_owned();
            self.seen.lock().unwrap().push((path.to_owned(), name));
            Ok(())
        }
    }

    #[tokio::test]
    async fn dials_on_a_dedicated_thread_and_reports_refusal() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let rec = Recorder::default();
        let accept = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"pong").await.unwrap();
        });
        let mut s = dial_with(rec.clone(), Some("/run/netns/x".into()), port)
            .await
            .unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"pong");
        accept.await.unwrap();
        let seen = rec.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [(PathBuf::from("/run/netns/x"), "crust-pf-dial".into())]
        );
        // Nothing listens on the (now closed) port.
        let e = dial_with(rec, None, port).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
