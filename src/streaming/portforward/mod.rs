//! Port forwarding into a pod: one TCP connection inside the pod's network namespace per
//! forwarded client connection, over SPDY ([`spdy`]: a data/error stream pair per
//! connection) or WebSocket ([`ws`]: a data/error channel pair per port).
//!
//! A failed dial (closed port) is reported as text on that connection's error stream
//! (the kubelet's "error forwarding port ..." message) and ends only that connection;
//! the session and other connections go on.

pub mod spdy;
pub mod ws;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};

use super::{Shared, StreamError, dial};

/// Connect `port` inside `pod_id`'s network namespace and copy both ways. Client EOF
/// half-closes the TCP connection and copying from the pod goes on; the connection is
/// over when the pod side has finished sending (its EOF is passed on to the client).
pub async fn forward<S>(
    shared: &Shared,
    pod_id: &str,
    port: u16,
    data: &mut S,
) -> Result<(), StreamError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let net_ns = shared.lifecycle.pod(pod_id)?.record().net_ns;
    let tcp = dial::dial(net_ns, port)
        .await
        .map_err(|e| StreamError::Dial {
            pod: pod_id.to_owned(),
            port,
            reason: e.to_string(),
        })?;
    let (mut tcp_r, mut tcp_w) = tcp.into_split();
    let (mut data_r, mut data_w) = tokio::io::split(data);
    let up = async {
        let n = tokio::io::copy(&mut data_r, &mut tcp_w).await;
        let _ = tcp_w.shutdown().await;
        n
    };
    let down = async {
        let n = tokio::io::copy(&mut tcp_r, &mut data_w).await;
        let _ = data_w.shutdown().await;
        n
    };
    tokio::pin!(up, down);
    let (sent, received) = tokio::select! {
        d = &mut down => (None, d),
        u = &mut up => (Some(u), down.await),
    };
    tracing::debug!(pod = %pod_id, port, ?sent, ?received, "port-forward connection done");
    Ok(())
}

/// The text written on an error stream, as the kubelet words it.
pub fn error_message(pod_id: &str, port: u16, e: &StreamError) -> String {
    format!(
        "error forwarding port {port} to pod {pod_id}: {}",
        e.full_message()
    )
}
