//! Client of the port-forward protocols. SPDY: one session per URL, and per forwarded
//! connection an `error` then a `data` stream carrying `port` and a fresh `requestID`
//! (client-go's `portforward` does the same). WebSocket: one socket per URL with the
//! ports in the query; channel `2i` is data and `2i+1` errors for port `i`, each
//! starting with the port as two little-endian bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

use super::connect;
use crate::streaming::StreamError;
use crate::streaming::protocol::{
    PORT, PORT_FORWARD_V1, REQUEST_ID, STREAM_TYPE, STREAM_V4, stream_type,
};
use crate::streaming::ws::Framing;

/// A SPDY port-forward session.
#[derive(Clone)]
pub struct SpdyForwarder {
    session: crust_proto::spdy::Session,
    next_id: Arc<AtomicU64>,
}

impl SpdyForwarder {
    /// Connect and upgrade.
    pub async fn connect(url: &str) -> Result<Self, StreamError> {
        let (conn, negotiated) = connect::spdy(url, &[PORT_FORWARD_V1]).await?;
        if negotiated != PORT_FORWARD_V1 {
            return Err(StreamError::Protocol(format!(
                "server chose protocol {negotiated:?}, expected {PORT_FORWARD_V1}"
            )));
        }
        let (session, _incoming) = crust_proto::spdy::Session::client(conn);
        Ok(Self {
            session,
            next_id: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Forward one connection to `port`; returns when it is over. A remote failure
    /// (closed port) is `Err` with the server's message.
    pub async fn forward<C>(&self, port: u16, mut conn: C) -> Result<(), StreamError>
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let headers = |t: &str| {
            vec![
                (STREAM_TYPE.to_owned(), t.to_owned()),
                (PORT.to_owned(), port.to_string()),
                (REQUEST_ID.to_owned(), id.clone()),
            ]
        };
        let mut error = self.session.open(headers(stream_type::ERROR)).await?;
        let mut data = self.session.open(headers(stream_type::DATA)).await?;
        // Nothing is sent on the error stream by the client.
        let _ = error.shutdown().await;
        let mut msg = Vec::new();
        {
            let copy = tokio::io::copy_bidirectional(&mut conn, &mut data);
            tokio::pin!(copy);
            let mut error_done = false;
            loop {
                tokio::select! {
                    r = &mut copy => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "port-forward copy ended");
                        }
                        if !error_done {
                            let _ = tokio::time::timeout(
                                std::time::Duration::from_secs(1),
                                error.read_to_end(&mut msg),
                            )
                            .await;
                        }
                        break;
                    }
                    r = error.read_to_end(&mut msg), if !error_done => {
                        error_done = true;
                        if r.is_ok() && !msg.is_empty() {
                            break;
                        }
                    }
                }
            }
        }
        if msg.is_empty() {
            Ok(())
        } else {
            let _ = conn.shutdown().await;
            Err(StreamError::Protocol(
                String::from_utf8_lossy(&msg).into_owned(),
            ))
        }
    }

    /// End the session.
    pub async fn close(&self) {
        self.session.close().await;
    }
}

/// Forward one connection to `port` over a WebSocket session at `url` (one URL per
/// connection: tokens are single-use).
pub async fn forward_ws<C>(url: &str, port: u16, conn: C) -> Result<(), StreamError>
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}{PORT}={port}");
    let (ws, negotiated) = connect::websocket(&url, &[STREAM_V4]).await?;
    let framing = Framing::of(&negotiated);
    let (mut sink, mut stream) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(conn);
    let up = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default();
                    if sink.send(framing.encode(0, data)).await.is_err() {
                        break;
                    }
                }
            }
        }
        sink
    };
    let down = async move {
        let mut msg = Vec::new();
        let mut seen = [0usize; 2];
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
            let Some((ch, data)) = framing.decode(&m) else {
                continue;
            };
            let Some(slot) = seen.get_mut(usize::from(ch)) else {
                continue;
            };
            // Strip the two-byte port prefix each channel starts with.
            let skip = 2usize.saturating_sub(*slot).min(data.len());
            *slot += skip;
            let payload = data.get(skip..).unwrap_or_default();
            if ch == 0 {
                if wr.write_all(payload).await.is_err() {
                    break;
                }
            } else {
                msg.extend_from_slice(payload);
            }
        }
        let _ = wr.shutdown().await;
        msg
    };
    tokio::pin!(up);
    let (msg, sink) = tokio::select! {
        msg = down => (msg, None),
        sink = &mut up => {
            // Local side closed: tell the server and wait for the remote end.
            (Vec::new(), Some(sink))
        }
    };
    if let Some(mut s) = sink {
        let _ = s.close().await;
    }
    if msg.is_empty() {
        Ok(())
    } else {
        Err(StreamError::Protocol(
            String::from_utf8_lossy(&msg).into_owned(),
        ))
    }
}
