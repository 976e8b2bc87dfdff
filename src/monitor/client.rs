//! Control-socket client: one length-delimited `Request` per connection, one
//! length-delimited `Response` back (proto/monitor/monitor.proto). For `Attach` the
//! connection then carries the frame stream and is handed to the caller.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crust_proto::monitor::{self as pb, request::Request as Req};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::MonitorError;

/// Bound on one request/response exchange: the monitor answers from its event loop
/// without blocking, so anything slower means it is wedged.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response accepted (responses are a few bytes).
const MAX_RESPONSE: usize = 64 * 1024;

/// What the monitor knows about its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorStatus {
    /// Host pid of the container init.
    pub pid: i32,
    /// Whether the init is still running.
    pub running: bool,
    /// Exit code (valid when not running).
    pub exit_code: i32,
}

async fn connect(socket: &Path, op: &'static str) -> Result<UnixStream, MonitorError> {
    UnixStream::connect(socket).await.map_err(|source| {
        let gone = matches!(
            source.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
        );
        if gone {
            MonitorError::Gone {
                socket: socket.to_path_buf(),
                op,
                source,
            }
        } else {
            MonitorError::Control {
                socket: socket.to_path_buf(),
                op,
                source,
            }
        }
    })
}

/// Read one length-delimited message without reading past it (the attach stream
/// follows directly).
async fn read_delimited(s: &mut UnixStream) -> io::Result<Vec<u8>> {
    let mut len: usize = 0;
    for shift in [0u32, 7, 14, 21, 28] {
        let b = s.read_u8().await?;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            if len > MAX_RESPONSE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("response of {len} bytes is too large"),
                ));
            }
            let mut body = vec![0; len];
            s.read_exact(&mut body).await?;
            return Ok(body);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "bad length prefix",
    ))
}

/// Send `req`, read the response; returns the still-open stream too.
async fn exchange(
    socket: &Path,
    op: &'static str,
    req: Req,
) -> Result<(UnixStream, pb::Response), MonitorError> {
    let ctl = |source| MonitorError::Control {
        socket: socket.to_path_buf(),
        op,
        source,
    };
    let fut = async {
        let mut s = connect(socket, op).await?;
        let bytes = pb::Request { request: Some(req) }.encode_length_delimited_to_vec();
        s.write_all(&bytes).await.map_err(ctl)?;
        let body = read_delimited(&mut s).await.map_err(ctl)?;
        let resp = pb::Response::decode(&body[..]).map_err(|source| MonitorError::Decode {
            what: format!("monitor socket {}: {op}", socket.display()),
            source,
        })?;
        Ok::<_, MonitorError>((s, resp))
    };
    let (s, resp) = tokio::time::timeout(CONTROL_TIMEOUT, fut)
        .await
        .map_err(|_| ctl(io::Error::new(io::ErrorKind::TimedOut, "no response")))??;
    if !resp.error.is_empty() {
        return Err(MonitorError::Refused {
            socket: socket.to_path_buf(),
            op,
            message: resp.error,
        });
    }
    Ok((s, resp))
}

/// The container's pid and whether it still runs.
pub async fn status(socket: &Path) -> Result<MonitorStatus, MonitorError> {
    let (_, r) = exchange(socket, "status", Req::Status(pb::Status {})).await?;
    Ok(MonitorStatus {
        pid: r.pid,
        running: r.running,
        exit_code: r.exit_code,
    })
}

/// Reopen the container log (CRI ReopenContainerLog, after the kubelet rotated it).
pub async fn reopen_log(socket: &Path) -> Result<(), MonitorError> {
    exchange(socket, "reopen log", Req::ReopenLog(pb::ReopenLog {}))
        .await
        .map(drop)
}

/// Set the terminal size (tty containers only; others get [`MonitorError::Refused`]).
pub async fn resize(socket: &Path, rows: u32, cols: u32) -> Result<(), MonitorError> {
    exchange(socket, "resize", Req::Resize(pb::Resize { rows, cols }))
        .await
        .map(drop)
}

/// Attach: the returned stream carries frames `[stream id][u32 BE length][data]`
/// (0 stdin, 1 stdout, 2 stderr, 3 close stdin, 4 exit code).
pub async fn attach(socket: &Path, stdin: bool) -> Result<UnixStream, MonitorError> {
    let (s, _) = exchange(socket, "attach", Req::Attach(pb::Attach { stdin })).await?;
    Ok(s)
}

/// Attach frame stream ids.
pub mod frame {
    /// Client to monitor: data for the container's stdin.
    pub const STDIN: u8 = 0;
    /// Monitor to client: container stdout (all output with a tty).
    pub const STDOUT: u8 = 1;
    /// Monitor to client: container stderr.
    pub const STDERR: u8 = 2;
    /// Client to monitor: close the container's stdin.
    pub const CLOSE_STDIN: u8 = 3;
    /// Monitor to client: 4-byte BE exit code, then the monitor closes.
    pub const EXIT: u8 = 4;

    /// Encode one frame.
    pub fn encode(id: u8, data: &[u8]) -> Vec<u8> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let mut v = Vec::with_capacity(5 + data.len());
        v.push(id);
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(data);
        v
    }
}

/// Path helper for callers that keep the socket as `PathBuf`.
pub fn socket_path(bundle: &Path) -> PathBuf {
    bundle.join("ctl.sock")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::net::UnixListener;

    use super::*;

    /// A one-shot fake monitor: reads one request, answers `resp`.
    async fn serve(listener: UnixListener, resp: pb::Response) -> pb::Request {
        let (mut s, _) = listener.accept().await.unwrap();
        let body = read_delimited(&mut s).await.unwrap();
        let req = pb::Request::decode(&body[..]).unwrap();
        s.write_all(&resp.encode_length_delimited_to_vec())
            .await
            .unwrap();
        if matches!(req.request, Some(Req::Attach(_))) {
            s.write_all(&frame::encode(frame::STDOUT, b"hi"))
                .await
                .unwrap();
        }
        req
    }

    #[tokio::test]
    async fn status_roundtrip() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("ctl.sock");
        let l = UnixListener::bind(&sock).unwrap();
        let srv = tokio::spawn(serve(
            l,
            pb::Response {
                error: String::new(),
                pid: 42,
                running: false,
                exit_code: 137,
            },
        ));
        let st = status(&sock).await.unwrap();
        assert_eq!(
            st,
            MonitorStatus {
                pid: 42,
                running: false,
                exit_code: 137
            }
        );
        assert!(matches!(srv.await.unwrap().request, Some(Req::Status(_))));
    }

    #[tokio::test]
    async fn refused_and_gone() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("ctl.sock");
        let l = UnixListener::bind(&sock).unwrap();
        let srv = tokio::spawn(serve(
            l,
            pb::Response {
                error: "container has no terminal".into(),
                ..Default::default()
            },
        ));
        let e = resize(&sock, 24, 80).await.unwrap_err();
        assert!(matches!(e, MonitorError::Refused { .. }), "{e}");
        assert!(
            e.to_string().ends_with("resize: container has no terminal"),
            "{e}"
        );
        match srv.await.unwrap().request {
            Some(Req::Resize(r)) => assert_eq!((r.rows, r.cols), (24, 80)),
            r => panic!("{r:?}"),
        }
        let e = reopen_log(&t.path().join("missing.sock"))
            .await
            .unwrap_err();
        assert!(matches!(e, MonitorError::Gone { .. }), "{e}");
        assert_eq!(e.kind(), super::super::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn attach_returns_frame_stream() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("ctl.sock");
        let l = UnixListener::bind(&sock).unwrap();
        let srv = tokio::spawn(serve(l, pb::Response::default()));
        let mut s = attach(&sock, true).await.unwrap();
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, [1, 0, 0, 0, 2, b'h', b'i']);
        match srv.await.unwrap().request {
            Some(Req::Attach(a)) => assert!(a.stdin),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn frames() {
        assert_eq!(
            frame::encode(frame::EXIT, &[0, 0, 0, 1]),
            [4, 0, 0, 0, 4, 0, 0, 0, 1]
        );
    }
}
