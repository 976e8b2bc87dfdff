//! `StreamError`: everything the streaming server and its clients can fail on, with the
//! object concerned. Request validation errors carry an [`ErrorKind`] so the CRI
//! handlers (`server/exec.rs` & co.) map them to gRPC codes through `server/error.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::image::ErrorKind;
use crate::lifecycle::LifecycleError;

/// A streaming server or client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A CRI request field is invalid.
    #[error("{field} {value:?}: {reason}")]
    InvalidArgument {
        /// Field name (`stdin`, `tty`, `port`).
        field: &'static str,
        /// Its value.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// Too many URLs are outstanding (kubelet caps its token cache the same way).
    #[error("too many outstanding streaming requests ({limit}); try again later")]
    TooManyRequests {
        /// The cap.
        limit: usize,
    },
    /// Looking up or using a pod/container failed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The listen address is not an IP address.
    #[error("crust.stream.address {address:?} is not an IP address")]
    Address {
        /// What was configured.
        address: String,
    },
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr} for the streaming server")]
    Bind {
        /// The address.
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error("cannot load streaming TLS {what} {path:?}: {reason}")]
    Tls {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Talking to the container's monitor failed (attach).
    #[error("attach to container {container}")]
    Monitor {
        /// The container.
        container: String,
        #[source]
        source: crate::monitor::MonitorError,
    },
    /// Dialling a port inside a pod failed.
    #[error("cannot connect to port {port} in pod {pod}: {reason}")]
    Dial {
        /// The pod.
        pod: String,
        /// The port.
        port: u16,
        /// Why (connection refused, netns unusable, ...).
        reason: String,
    },
    /// A streaming URL is malformed (client side).
    #[error("invalid streaming url {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The streaming server refused the upgrade (client side).
    #[error("streaming server refused {url}: HTTP {status}: {body}")]
    Refused {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The response body.
        body: String,
    },
    /// The protocol was violated or a negotiation failed.
    #[error("streaming protocol error: {0}")]
    Protocol(String),
    /// SPDY session or stream failure.
    #[error("spdy")]
    Spdy(#[from] crust_proto::spdy::SpdyError),
    /// WebSocket failure.
    #[error("websocket")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// HTTP failure (client side).
    #[error("http")]
    Http(#[from] hyper::Error),
    /// I/O failure.
    #[error("{op}")]
    Io {
        /// What was being done.
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl StreamError {
    /// The CRI error kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Self::TooManyRequests { .. } => ErrorKind::ResourceExhausted,
            Self::Lifecycle(e) => e.kind(),
            _ => ErrorKind::Internal,
        }
    }

    /// Shorthand for [`StreamError::Io`].
    pub fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { op, source }
    }

    /// The error and its sources joined, for logs, error streams and CLI output.
    pub fn full_message(&self) -> String {
        crate::errfmt::full_message(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let e = StreamError::InvalidArgument {
            field: "tty",
            value: "true".into(),
            reason: "tty and stderr cannot both be set",
        };
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.full_message(),
            "tty \"true\": tty and stderr cannot both be set"
        );
        let e = StreamError::Io {
            op: "read resize stream",
            source: std::io::Error::other("boom"),
        };
        assert_eq!(e.full_message(), "read resize stream: boom");
        assert_eq!(e.kind(), ErrorKind::Internal);
    }
}
