//! SPDY/3.1, the multiplexing protocol behind Kubernetes exec/attach/port-forward.
//!
//! kubelet, kubectl (through the API server), crictl and critest upgrade an HTTP/1.1
//! connection with `Upgrade: SPDY/3.1` and then speak SPDY/3.1 framing as implemented
//! by `github.com/moby/spdystream` and `k8s.io/apimachinery/pkg/util/httpstream/spdy`.
//! No maintained Rust SPDY crate exists, so this module implements the subset those
//! peers use, from the SPDY/3.1 draft:
//!
//! - [`frame`]: pure frame encode/decode (all SPDY/3.1 control frames and DATA).
//! - [`headers`]: name/value header blocks and their per-direction zlib context.
//! - [`Session`] / [`Stream`]: an async session over any tokio byte stream, usable as
//!   server (the CRI streaming server) and client (`crust ctl exec`).
//!
//! Nothing Kubernetes-specific lives here: the `streamtype` / `port` / `requestid`
//! channel logic is built on top by the streaming server.

pub mod frame;
pub mod headers;
mod session;

use std::sync::Arc;

pub use session::{Incoming, RecvHalf, SendHalf, Session, Stream};

/// Header name/value pairs. Names are lower-case (SPDY/3 requires it); a name sent
/// with several values (NUL-joined on the wire) appears once per value.
pub type Headers = Vec<(String, String)>;

/// First value of header `name`, compared case-insensitively.
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Errors of a SPDY session or stream.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("spdy peer sent an invalid frame")]
    Frame(#[from] frame::FrameError),
    #[error("spdy header block of stream {stream_id} could not be decoded")]
    HeaderBlock {
        stream_id: u32,
        #[source]
        source: headers::HeaderError,
    },
    #[error("spdy stream headers are invalid")]
    InvalidHeaders(#[source] headers::HeaderError),
    #[error("spdy protocol error: {reason}")]
    Protocol { reason: String },
    #[error("spdy i/o failed while {context}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("spdy session is closed{}", cause_suffix(.cause))]
    Closed { cause: Option<Arc<SpdyError>> },
    #[error("spdy peer sent GOAWAY: no new streams may be opened")]
    GoingAway,
    #[error("spdy stream ids of this session are exhausted")]
    StreamIdsExhausted,
}

fn cause_suffix(cause: &Option<Arc<SpdyError>>) -> String {
    match cause {
        Some(c) => format!(" ({c})"),
        None => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_case_insensitive() {
        let h: Headers = vec![
            ("streamtype".into(), "stdout".into()),
            ("port".into(), "80".into()),
        ];
        assert_eq!(header(&h, "StreamType"), Some("stdout"));
        assert_eq!(header(&h, "port"), Some("80"));
        assert_eq!(header(&h, "missing"), None);
    }

    #[test]
    fn closed_error_names_its_cause() {
        let cause = Arc::new(SpdyError::Protocol {
            reason: "DATA frame on stream 0".into(),
        });
        let e = SpdyError::Closed { cause: Some(cause) };
        assert_eq!(
            e.to_string(),
            "spdy session is closed (spdy protocol error: DATA frame on stream 0)"
        );
    }
}
