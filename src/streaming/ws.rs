//! The Kubernetes channel protocol over WebSocket (`k8s.io/apimachinery` `wsstream`):
//! every message starts with a channel byte (binary protocols) or an ASCII digit
//! followed by base64 (the `base64.` protocols); v5 adds `[255, channel]`, the client
//! closing its side of a channel (stdin EOF).
//!
//! A pump task owns the socket; each channel is a `tokio::io::duplex` pipe whose other
//! end the handler reads or writes like any stream. Channels the client may not write
//! are ignored, as `wsstream` ignores them. When every outgoing channel has been closed
//! by the handler, the pump sends a normal Close and ends; when the client goes away
//! (or stays idle past the timeout), the pump drops its pipe ends so handler writes fail
//! and reads see EOF.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::stream::SelectAll;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, DuplexStream, ReadHalf, WriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::io::ReaderStream;

use super::protocol::{Version, channel};
use super::streams::{Activity, BoxFuture, BoxRead, BoxWrite, RemoteStreams, StreamOpts};

/// Pipe buffer per channel.
const PIPE: usize = 64 * 1024;

/// Which way a channel carries data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Not used: incoming data is dropped.
    None,
    /// Client to server.
    In,
    /// Server to client.
    Out,
    /// Both (port-forward data).
    Both,
}

/// Framing of a negotiated subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Text frames, digit channel, base64 payload.
    pub base64: bool,
    /// v5 close signal understood.
    pub close_signal: bool,
}

impl Framing {
    /// Framing of a subprotocol name.
    pub fn of(protocol: &str) -> Framing {
        Framing {
            base64: protocol.contains("base64"),
            close_signal: protocol == super::protocol::STREAM_V5,
        }
    }

    /// Encode one message of `data` on `ch`.
    pub fn encode(self, ch: u8, data: &[u8]) -> Message {
        if self.base64 {
            let mut s = String::with_capacity(1 + data.len() * 4 / 3 + 4);
            s.push(char::from(b'0'.wrapping_add(ch)));
            STANDARD.encode_string(data, &mut s);
            Message::text(s)
        } else {
            let mut v = Vec::with_capacity(1 + data.len());
            v.push(ch);
            v.extend_from_slice(data);
            Message::binary(v)
        }
    }

    /// Decode a data message: `(channel, payload)`, `None` for malformed ones.
    pub fn decode(self, msg: &Message) -> Option<(u8, Vec<u8>)> {
        match msg {
            Message::Binary(b) if !self.base64 => {
                let (&ch, rest) = b.split_first()?;
                Some((ch, rest.to_vec()))
            }
            Message::Text(t) if self.base64 => {
                let b = t.as_str().as_bytes();
                let (&ch, rest) = b.split_first()?;
                if self.close_signal && ch == channel::CLOSE {
                    return Some((ch, rest.to_vec()));
                }
                let data = STANDARD.decode(rest).ok()?;
                Some((ch.wrapping_sub(b'0'), data))
            }
            // Be lenient: a binary frame on a base64 protocol (and vice versa).
            Message::Binary(b) => {
                let (&ch, rest) = b.split_first()?;
                Some((ch, rest.to_vec()))
            }
            Message::Text(t) => {
                let (&ch, rest) = t.as_str().as_bytes().split_first()?;
                Some((ch, rest.to_vec()))
            }
            _ => None,
        }
    }
}

/// The handler's ends of the channels: index = channel number.
pub struct Channels {
    /// `Some` for every channel that is not [`Dir::None`].
    pub ends: Vec<Option<DuplexStream>>,
    /// Resolves when the client is gone.
    pub gone: BoxFuture,
    /// Resolves when the pump has finished (after the Close was sent).
    pub done: BoxFuture,
}

/// Start the pump over `ws` with channels `dirs`.
pub fn open<S>(
    ws: WebSocketStream<S>,
    framing: Framing,
    dirs: &[Dir],
    activity: Activity,
    idle_timeout: Duration,
) -> Channels
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut ends = Vec::with_capacity(dirs.len());
    let mut sinks: Vec<Option<WriteHalf<DuplexStream>>> = Vec::with_capacity(dirs.len());
    let mut sources = SelectAll::new();
    for (i, d) in dirs.iter().enumerate() {
        if *d == Dir::None {
            ends.push(None);
            sinks.push(None);
            continue;
        }
        let (mine, theirs) = tokio::io::duplex(PIPE);
        let (r, w): (ReadHalf<DuplexStream>, WriteHalf<DuplexStream>) = tokio::io::split(mine);
        let ch = u8::try_from(i).unwrap_or(u8::MAX);
        if matches!(d, Dir::Out | Dir::Both) {
            sources.push(ReaderStream::new(r).map(move |b| (ch, b)).boxed());
        }
        sinks.push(matches!(d, Dir::In | Dir::Both).then_some(w));
        ends.push(Some(theirs));
    }
    let (gone_tx, gone_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(pump(
        ws,
        framing,
        sources,
        sinks,
        activity,
        idle_timeout,
        gone_tx,
    ));
    let gone: BoxFuture = Box::pin(async move {
        let mut rx = gone_rx;
        let _ = rx.wait_for(|g| *g).await;
    });
    let done: BoxFuture = Box::pin(async move {
        let _ = task.await;
    });
    Channels { ends, gone, done }
}

type Source = futures::stream::BoxStream<'static, (u8, std::io::Result<bytes::Bytes>)>;

async fn pump<S>(
    mut ws: WebSocketStream<S>,
    framing: Framing,
    mut sources: SelectAll<Source>,
    mut sinks: Vec<Option<WriteHalf<DuplexStream>>>,
    activity: Activity,
    idle_timeout: Duration,
    gone: tokio::sync::watch::Sender<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let outgoing_done = sources.is_empty();
    loop {
        tokio::select! {
            msg = ws.next() => {
                activity.touch();
                let msg = match msg {
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket receive failed");
                        break;
                    }
                    Some(Ok(m)) => m,
                };
                if matches!(msg, Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) {
                    continue;
                }
                let Some((ch, data)) = framing.decode(&msg) else { continue };
                if framing.close_signal && ch == channel::CLOSE {
                    if let Some(&target) = data.first()
                        && let Some(slot) = sinks.get_mut(usize::from(target))
                        && let Some(mut w) = slot.take()
                    {
                        let _ = w.shutdown().await;
                    }
                    continue;
                }
                if data.is_empty() {
                    continue;
                }
                if let Some(Some(w)) = sinks.get_mut(usize::from(ch))
                    && w.write_all(&data).await.is_err()
                {
                    // The handler stopped reading this channel.
                    sinks[usize::from(ch)] = None;
                }
            }
            out = sources.next(), if !outgoing_done => {
                match out {
                    Some((ch, Ok(bytes))) => {
                        activity.touch();
                        if let Err(e) = ws.send(framing.encode(ch, &bytes)).await {
                            tracing::debug!(error = %e, "websocket send failed");
                            break;
                        }
                    }
                    Some((_, Err(_))) => {}
                    None => {
                        let _ = ws
                            .send(Message::Close(Some(CloseFrame {
                                code: CloseCode::Normal,
                                reason: "".into(),
                            })))
                            .await;
                        // Wait briefly for the client's Close, then drop the socket.
                        let _ = tokio::time::timeout(Duration::from_secs(5), async {
                            while let Some(Ok(m)) = ws.next().await {
                                if matches!(m, Message::Close(_)) {
                                    break;
                                }
                            }
                        })
                        .await;
                        break;
                    }
                }
            }
            () = activity.idle(idle_timeout) => {
                tracing::info!(timeout = ?idle_timeout, "closing idle websocket stream");
                break;
            }
        }
    }
    let _ = gone.send(true);
    drop(sinks);
    drop(sources);
}

/// Exec/attach channels for `opts`: stdin 0, stdout 1, stderr 2, error 3, resize 4.
/// Like the kubelet, an empty message on the lowest writable channel tells the client
/// the connection is established.
pub async fn remote_streams<S>(
    ws: WebSocketStream<S>,
    protocol: &str,
    opts: StreamOpts,
    activity: Activity,
    idle_timeout: Duration,
) -> RemoteStreams
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let framing = Framing::of(protocol);
    let on = |b: bool, d: Dir| if b { d } else { Dir::None };
    let dirs = [
        on(opts.stdin, Dir::In),
        on(opts.stdout, Dir::Out),
        on(opts.stderr, Dir::Out),
        Dir::Out,
        on(opts.tty, Dir::In),
    ];
    let mut ws = ws;
    let first = if opts.stdout {
        channel::STDOUT
    } else if opts.stderr {
        channel::STDERR
    } else {
        channel::ERROR
    };
    if let Err(e) = ws.send(framing.encode(first, &[])).await {
        tracing::debug!(error = %e, "websocket client went away at once");
    }
    let Channels { ends, gone, done } = open(ws, framing, &dirs, activity, idle_timeout);
    let mut ends = ends.into_iter();
    let mut next = || ends.next().flatten();
    let stdin = next().map(|s| Box::new(s) as BoxRead);
    let stdout = next().map(|s| Box::new(s) as BoxWrite);
    let stderr = next().map(|s| Box::new(s) as BoxWrite);
    let error = next();
    let resize = next().map(|s| Box::new(s) as BoxRead);
    let error: BoxWrite = match error {
        Some(e) => Box::new(e),
        None => Box::new(tokio::io::sink()),
    };
    RemoteStreams {
        version: Version::from_protocol(protocol),
        stdin,
        stdout,
        stderr,
        resize,
        gone: Some(gone),
        error,
        close: Box::new(move || done),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn framing_roundtrip() {
        let bin = Framing::of("v5.channel.k8s.io");
        assert!(bin.close_signal && !bin.base64);
        let m = bin.encode(1, b"hi");
        assert_eq!(m, Message::binary(vec![1, b'h', b'i']));
        assert_eq!(bin.decode(&m), Some((1, b"hi".to_vec())));
        let b64 = Framing::of("v4.base64.channel.k8s.io");
        let m = b64.encode(2, b"hello");
        assert_eq!(m, Message::text("2aGVsbG8="));
        assert_eq!(b64.decode(&m), Some((2, b"hello".to_vec())));
        assert_eq!(bin.decode(&Message::binary(Vec::<u8>::new())), None);
    }
}
