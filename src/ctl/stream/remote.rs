//! Client of the remotecommand protocols (exec and attach), written from the
//! Kubernetes spec rather than shared with the server: over SPDY it opens the error
//! stream first, then stdin/stdout/stderr/resize with their `streamType` headers (as
//! client-go's `streamProtocolV4`), over WebSocket it multiplexes channels 0-4 and on v5
//! sends the close signal for stdin. The exit code comes from the error stream's
//! status.

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::connect;
use crate::streaming::StreamError;
use crate::streaming::protocol::{
    self, STREAM_TYPE, STREAM_V1, STREAM_V2, STREAM_V3, STREAM_V4, STREAM_V5, TermSize, Version,
    channel, decode_status, stream_type,
};
use crate::streaming::streams::{BoxRead, BoxWrite};
use crate::streaming::ws::Framing;

/// Which transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Transport {
    /// SPDY/3.1 (what crictl and kubelet use).
    #[default]
    Spdy,
    /// WebSocket (`v5.channel.k8s.io` / `v4.channel.k8s.io`).
    Websocket,
}

/// The local side of a session. Which of stdin/stdout/stderr are `Some` must match
/// the CRI request that produced the URL.
pub struct LocalIo {
    /// Sent to the process.
    pub stdin: Option<BoxRead>,
    /// Receives the process's stdout.
    pub stdout: Option<BoxWrite>,
    /// Receives the process's stderr.
    pub stderr: Option<BoxWrite>,
    /// Terminal session (a resize stream is opened).
    pub tty: bool,
    /// Terminal sizes to send.
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

/// Run an exec/attach session at `url`; returns the remote exit code.
pub async fn run(url: &str, transport: Transport, io: LocalIo) -> Result<i32, StreamError> {
    match transport {
        Transport::Spdy => run_spdy(url, io).await,
        Transport::Websocket => run_ws(url, io).await,
    }
}

async fn copy_to(mut from: impl tokio::io::AsyncRead + Unpin, mut to: BoxWrite) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.flush().await;
}

/// Run a session over SPDY offering `protocols` (newest first).
pub async fn run_spdy_with(url: &str, protocols: &[&str], io: LocalIo) -> Result<i32, StreamError> {
    let (conn, negotiated) = connect::spdy(url, protocols).await?;
    let version = Version::from_protocol(&negotiated);
    let (session, _incoming) = crust_proto::spdy::Session::client(conn);
    let open = |t: &str| {
        let session = session.clone();
        let t = t.to_owned();
        async move { session.open(vec![(STREAM_TYPE.to_owned(), t)]).await }
    };
    let error = open(stream_type::ERROR).await?;
    let LocalIo {
        stdin,
        stdout,
        stderr,
        tty,
        resize,
    } = io;
    let mut tasks = Vec::new();
    let mut background = Vec::new();
    if let Some(mut local) = stdin {
        let mut s = open(stream_type::STDIN).await?;
        background.push(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut local, &mut s).await;
            let _ = s.shutdown().await;
            // Keep the stream (and its read side) alive until the session ends.
            std::future::pending::<()>().await;
        }));
    }
    if let Some(w) = stdout {
        let s = open(stream_type::STDOUT).await?;
        tasks.push(tokio::spawn(copy_to(s, w)));
    }
    if let Some(w) = stderr {
        let s = open(stream_type::STDERR).await?;
        tasks.push(tokio::spawn(copy_to(s, w)));
    }
    if tty && version.resize() {
        let mut s = open(stream_type::RESIZE).await?;
        if let Some(mut rx) = resize {
            background.push(tokio::spawn(async move {
                while let Some(size) = rx.recv().await {
                    let Ok(json) = serde_json::to_vec(&size) else {
                        continue;
                    };
                    if s.write_all(&json).await.is_err() {
                        break;
                    }
                }
                std::future::pending::<()>().await;
            }));
        } else {
            background.push(tokio::spawn(async move {
                let _keep = s;
                std::future::pending::<()>().await;
            }));
        }
    }
    let mut error = error;
    let mut raw = Vec::new();
    let read = error.read_to_end(&mut raw).await;
    for t in tasks {
        let _ = t.await;
    }
    for t in background {
        t.abort();
    }
    session.close().await;
    read.map_err(StreamError::io("read the error stream"))?;
    decode_status(&raw, version).map_err(StreamError::Protocol)
}

async fn run_spdy(url: &str, io: LocalIo) -> Result<i32, StreamError> {
    run_spdy_with(url, &[STREAM_V4, STREAM_V3, STREAM_V2, STREAM_V1], io).await
}

/// Run a session over WebSocket offering `protocols`.
pub async fn run_ws_with(url: &str, protocols: &[&str], io: LocalIo) -> Result<i32, StreamError> {
    let (ws, negotiated) = connect::websocket(url, protocols).await?;
    let framing = Framing::of(&negotiated);
    let version = Version::from_protocol(&negotiated);
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let LocalIo {
        stdin,
        mut stdout,
        mut stderr,
        tty,
        resize,
    } = io;
    let mut background = Vec::new();
    if let Some(mut local) = stdin {
        let tx = tx.clone();
        background.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match local.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = buf.get(..n).unwrap_or_default();
                        if tx.send(framing.encode(channel::STDIN, data)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if framing.close_signal {
                let _ = tx
                    .send(Message::binary(vec![channel::CLOSE, channel::STDIN]))
                    .await;
            }
        }));
    }
    if let (true, Some(mut rx)) = (tty, resize) {
        let tx = tx.clone();
        background.push(tokio::spawn(async move {
            while let Some(size) = rx.recv().await {
                let Ok(json) = serde_json::to_vec(&size) else {
                    continue;
                };
                if tx
                    .send(framing.encode(channel::RESIZE, &json))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
    let mut raw = Vec::new();
    while let Some(msg) = stream.next().await {
        let msg = match msg {
            Ok(Message::Close(_)) => break,
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "websocket receive");
                break;
            }
        };
        let Some((ch, data)) = framing.decode(&msg) else {
            continue;
        };
        let target = match ch {
            channel::STDOUT => stdout.as_mut(),
            channel::STDERR => stderr.as_mut(),
            channel::ERROR => {
                raw.extend_from_slice(&data);
                None
            }
            _ => None,
        };
        if let Some(w) = target {
            let _ = w.write_all(&data).await;
            let _ = w.flush().await;
        }
    }
    for t in background {
        t.abort();
    }
    drop(tx);
    let _ = writer.await;
    for w in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
        let _ = w.flush().await;
    }
    decode_status(&raw, version).map_err(StreamError::Protocol)
}

async fn run_ws(url: &str, io: LocalIo) -> Result<i32, StreamError> {
    run_ws_with(url, &[STREAM_V5, STREAM_V4, protocol::STREAM_V1], io).await
}
