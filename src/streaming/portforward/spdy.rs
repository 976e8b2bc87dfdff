//! Port-forward over SPDY/3.1 (`portforward.k8s.io`), as the kubelet's
//! `portforward/httpstream.go`: the client opens an `error` and a `data` stream per
//! connection, both with the `port` and the same `requestID` header. A pair that is not
//! complete within the stream creation timeout is reset. Clients too old to send
//! `requestID` are paired by stream id (error stream id, data stream id - 2), the
//! kubelet's best-effort fallback.

use std::collections::HashMap;
use std::sync::Arc;

use crust_proto::spdy::{Incoming, Session, Stream, header};
use tokio::io::AsyncWriteExt as _;

use super::super::Shared;
use super::super::protocol::{PORT, REQUEST_ID, STREAM_TYPE, stream_type};

#[derive(Default)]
struct Pair {
    data: Option<Stream>,
    error: Option<Stream>,
}

/// The pairing key of a stream.
fn request_id(s: &Stream, kind: &str) -> String {
    match header(s.headers(), REQUEST_ID) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ if kind == stream_type::DATA => s.id().saturating_sub(2).to_string(),
        _ => s.id().to_string(),
    }
}

/// Serve one port-forward session until the client closes it.
pub async fn serve(session: Session, mut incoming: Incoming, pod_id: &str, shared: Arc<Shared>) {
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let (expire_tx, mut expire_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    loop {
        tokio::select! {
            s = incoming.accept() => {
                let Some(s) = s else { break };
                let kind = header(s.headers(), STREAM_TYPE).unwrap_or_default().to_owned();
                if kind != stream_type::DATA && kind != stream_type::ERROR {
                    tracing::debug!(stream_type = %kind, "unexpected port-forward stream type");
                    s.reset();
                    continue;
                }
                let id = request_id(&s, &kind);
                let pair = pairs.entry(id.clone()).or_insert_with(|| {
                    let tx = expire_tx.clone();
                    let id = id.clone();
                    let after = shared.creation_timeout;
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = tx.send(id);
                    });
                    Pair::default()
                });
                if kind == stream_type::DATA {
                    pair.data = Some(s);
                } else {
                    pair.error = Some(s);
                }
                if pair.data.is_some() && pair.error.is_some()
                    && let Some(Pair { data: Some(d), error: Some(e) }) = pairs.remove(&id)
                {
                    let shared = Arc::clone(&shared);
                    let pod = pod_id.to_owned();
                    tokio::spawn(async move { forward_pair(&shared, &pod, d, e).await });
                }
            }
            Some(id) = expire_rx.recv() => {
                if let Some(p) = pairs.remove(&id) {
                    tracing::debug!(request_id = %id, "port-forward stream pair incomplete: resetting");
                    for s in [p.data, p.error].into_iter().flatten() {
                        s.reset();
                    }
                }
            }
        }
    }
    session.close().await;
}

async fn forward_pair(shared: &Shared, pod_id: &str, mut data: Stream, mut error: Stream) {
    let port_text = header(data.headers(), PORT).unwrap_or_default().to_owned();
    let port = match port_text.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => {
            let msg = if port_text.is_empty() {
                format!("{PORT:?} header is required")
            } else {
                format!("unable to parse {port_text:?} as a port")
            };
            let _ = error.write_all(msg.as_bytes()).await;
            let _ = error.shutdown().await;
            data.reset();
            return;
        }
    };
    if let Err(e) = super::forward(shared, pod_id, port, &mut data).await {
        let msg = super::error_message(pod_id, port, &e);
        tracing::info!(pod = %pod_id, port, error = %msg, "port-forward failed");
        let _ = error.write_all(msg.as_bytes()).await;
        let _ = data.shutdown().await;
    }
    let _ = error.shutdown().await;
}
