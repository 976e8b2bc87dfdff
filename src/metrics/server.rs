//! The metrics endpoint: a minimal HTTP/1.1 responder on tokio serving `GET /metrics`.
//!
//! Prometheus only ever sends `GET <path>` with a few headers and reads one response, so a
//! hand-rolled responder (read the request head, answer, close: `Connection: close`) covers
//! the protocol without pulling an HTTP server stack into the daemon. The body is the
//! OpenMetrics text format (`application/openmetrics-text; version=1.0.0`), which
//! Prometheus negotiates by default and which is a superset of its classic text format.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::lifecycle::Manager;

/// Largest request head read; Prometheus sends a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// A client must send its request head within this time.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// OpenMetrics content type (OpenMetrics spec, "Protocol negotiation").
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Errors starting the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("cannot listen for metrics on {address} (crust.metrics.address)")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A serving endpoint; dropping it does not stop it, [`MetricsServer::stop`] does.
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// The bound address (the real port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Bind `address` and serve the global metrics, with state gauges from `manager`.
pub async fn serve(
    address: SocketAddr,
    manager: Option<Arc<Manager>>,
) -> Result<MetricsServer, MetricsError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError::Bind { address, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { address, source })?;
    tracing::info!(address = %addr, "serving metrics on /metrics");
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let m = manager.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, m.as_deref()).await {
                            tracing::debug!(peer = %peer, error = %e, "metrics request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(MetricsServer { addr, task })
}

/// What to answer for a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (or `HEAD`): the exposition; `true` = include the body.
    Metrics(bool),
    /// Another path.
    NotFound,
    /// Another method.
    MethodNotAllowed,
    /// Not an HTTP request line.
    BadRequest,
}

/// Route a request head (`GET /metrics?x HTTP/1.1\r\n...`).
pub fn route(head: &str) -> Route {
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    let body = match method {
        "GET" => true,
        "HEAD" => false,
        _ => return Route::MethodNotAllowed,
    };
    if path == "/metrics" {
        Route::Metrics(body)
    } else {
        Route::NotFound
    }
}

/// The whole HTTP response for `route`.
pub fn response(route: &Route, manager: Option<&Manager>) -> Vec<u8> {
    let (status, ctype, body, send_body) = match route {
        Route::Metrics(body) => (
            "200 OK",
            CONTENT_TYPE,
            super::global().encode(manager),
            *body,
        ),
        Route::NotFound => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".into(),
            true,
        ),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".into(),
            true,
        ),
        Route::BadRequest => (
            "400 Bad Request",
            "text/plain",
            "bad request\n".into(),
            true,
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if send_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

async fn handle(mut stream: TcpStream, manager: Option<&Manager>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(r) => r?,
        Err(_) => return Ok(()),
    }
    let route = route(&String::from_utf8_lossy(&head));
    stream.write_all(&response(&route, manager)).await?;
    stream.shutdown().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics(true)
        );
        assert_eq!(
            route("HEAD /metrics?a=b HTTP/1.0\r\n\r\n"),
            Route::Metrics(false)
        );
        assert_eq!(route("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route("POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route("garbage"), Route::BadRequest);
        let r = String::from_utf8(response(&Route::NotFound, None)).unwrap();
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"));
    }

    #[tokio::test]
    async fn serves_metrics_over_tcp() {
        let s = serve("127.0.0.1:0".parse().unwrap(), None).await.unwrap();
        crate::metrics::record_oom();
        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains(CONTENT_TYPE));
        assert!(out.contains("crust_container_ooms_total "), "{out}");
        assert!(out.ends_with("# EOF\n"));
        s.stop();
    }
}
