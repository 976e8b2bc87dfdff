//! Port-forward over WebSocket (`v4.channel.k8s.io` port-forward flavour, the kubelet's
//! `portforward/websocket.go`): ports come from the `port` query parameters (falling
//! back to the CRI request's ports); port `i` uses channel `2i` for data (both ways)
//! and `2i+1` for errors. Each channel starts with the port as two little-endian
//! bytes, sent by the server. Each port carries one TCP connection for the life of
//! the WebSocket.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio_tungstenite::WebSocketStream;

use super::super::Shared;
use super::super::streams::Activity;
use super::super::ws::{Dir, Framing, open};

/// Serve one WebSocket port-forward session.
#[allow(clippy::too_many_arguments)]
pub async fn serve<S>(
    ws: WebSocketStream<S>,
    protocol: &str,
    pod_id: &str,
    cri_ports: Vec<u16>,
    query_ports: Vec<u16>,
    shared: &Arc<Shared>,
    activity: Activity,
    idle_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let ports = if query_ports.is_empty() {
        cri_ports
    } else {
        query_ports
    };
    let dirs: Vec<Dir> = ports.iter().flat_map(|_| [Dir::Both, Dir::Out]).collect();
    let chans = open(ws, Framing::of(protocol), &dirs, activity, idle_timeout);
    let mut ends = chans.ends.into_iter();
    let mut tasks = Vec::new();
    for port in ports {
        let (Some(Some(mut data)), Some(Some(mut err))) = (ends.next(), ends.next()) else {
            break;
        };
        let shared = Arc::clone(shared);
        let pod = pod_id.to_owned();
        tasks.push(tokio::spawn(async move {
            let prefix = port.to_le_bytes();
            if data.write_all(&prefix).await.is_err() || err.write_all(&prefix).await.is_err() {
                return;
            }
            if let Err(e) = super::forward(&shared, &pod, port, &mut data).await {
                let msg = super::error_message(&pod, port, &e);
                tracing::info!(pod = %pod, port, error = %msg, "port-forward failed");
                let _ = err.write_all(msg.as_bytes()).await;
            }
            let _ = data.shutdown().await;
            let _ = err.shutdown().await;
        }));
    }
    drop(ends);
    for t in tasks {
        let _ = t.await;
    }
    chans.done.await;
}
