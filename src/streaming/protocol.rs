//! Wire constants and small pure pieces of the Kubernetes streaming protocols:
//! subprotocol negotiation, the error-stream status (metav1.Status), resize messages and
//! the port-forward request ids.
//!
//! Sources: `k8s.io/apimachinery/pkg/util/httpstream` (`X-Stream-Protocol-Version`
//! negotiation: the first protocol the client lists that the server supports wins; no
//! header is a 400, no common protocol a 403 naming the accepted ones),
//! `k8s.io/apimachinery/pkg/util/remotecommand` (v1..v5 names), the kubelet's
//! `cri/streaming/remotecommand` (error stream: v4 writes the JSON Status, v1-v3 only
//! the failure message) and `cri/streaming/portforward`.

use serde::Serialize;

/// SPDY upgrade token.
pub const SPDY_31: &str = "SPDY/3.1";
/// Header carrying the requested/negotiated subprotocols on SPDY upgrades.
pub const HEADER_PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// Header listing the accepted subprotocols on a failed negotiation.
pub const HEADER_ACCEPTED_PROTOCOLS: &str = "x-accepted-stream-protocol-versions";

/// remotecommand subprotocols.
pub const STREAM_V1: &str = "channel.k8s.io";
/// v2: stderr and stdout separated, error stream kept open.
pub const STREAM_V2: &str = "v2.channel.k8s.io";
/// v3: adds the resize stream.
pub const STREAM_V3: &str = "v3.channel.k8s.io";
/// v4: the error stream carries a JSON metav1.Status with the exit code.
pub const STREAM_V4: &str = "v4.channel.k8s.io";
/// v5: v4 plus the WebSocket close signal.
pub const STREAM_V5: &str = "v5.channel.k8s.io";
/// Base64 WebSocket flavours (text frames, channel as an ASCII digit).
pub const WS_BASE64_V1: &str = "base64.channel.k8s.io";
/// v4 base64 flavour.
pub const WS_BASE64_V4: &str = "v4.base64.channel.k8s.io";
/// SPDY port-forward subprotocol.
pub const PORT_FORWARD_V1: &str = "portforward.k8s.io";

/// Exec/attach SPDY subprotocols in server preference order (v5 is served as v4).
pub const SPDY_REMOTECOMMAND: &[&str] = &[STREAM_V5, STREAM_V4, STREAM_V3, STREAM_V2, STREAM_V1];
/// Exec/attach WebSocket subprotocols.
pub const WS_REMOTECOMMAND: &[&str] =
    &[STREAM_V5, STREAM_V4, WS_BASE64_V4, STREAM_V1, WS_BASE64_V1];
/// Port-forward WebSocket subprotocols.
pub const WS_PORT_FORWARD: &[&str] = &[STREAM_V4, WS_BASE64_V4];

/// SPDY stream header naming a stream's role.
pub const STREAM_TYPE: &str = "streamtype";
/// SPDY port-forward header: the port of a data/error stream pair.
pub const PORT: &str = "port";
/// SPDY port-forward header: pairs the data and error streams of one connection.
pub const REQUEST_ID: &str = "requestid";

/// Stream roles (`streamType` header values).
pub mod stream_type {
    /// Status / error messages, server to client.
    pub const ERROR: &str = "error";
    /// Client to process.
    pub const STDIN: &str = "stdin";
    /// Process to client.
    pub const STDOUT: &str = "stdout";
    /// Process to client.
    pub const STDERR: &str = "stderr";
    /// Terminal size JSON messages, client to server.
    pub const RESIZE: &str = "resize";
    /// Port-forward payload.
    pub const DATA: &str = "data";
}

/// WebSocket channel numbers (remotecommand).
pub mod channel {
    /// Client to process.
    pub const STDIN: u8 = 0;
    /// Process to client.
    pub const STDOUT: u8 = 1;
    /// Process to client.
    pub const STDERR: u8 = 2;
    /// Status.
    pub const ERROR: u8 = 3;
    /// Terminal size.
    pub const RESIZE: u8 = 4;
    /// v5: `[255, channel]` closes that channel's write side.
    pub const CLOSE: u8 = 255;
}

/// The subprotocol family decides the error-stream format and features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `channel.k8s.io` (and no negotiation): text errors, no resize.
    V1,
    /// Text errors, no resize.
    V2,
    /// Text errors, resize.
    V3,
    /// JSON status, resize.
    V4,
    /// JSON status, resize, close signal (WebSocket).
    V5,
}

impl Version {
    /// Map a negotiated subprotocol name.
    pub fn from_protocol(p: &str) -> Version {
        match p {
            STREAM_V5 => Version::V5,
            STREAM_V4 | WS_BASE64_V4 => Version::V4,
            STREAM_V3 => Version::V3,
            STREAM_V2 => Version::V2,
            _ => Version::V1,
        }
    }

    /// Whether the error stream carries JSON metav1.Status.
    pub fn json_status(self) -> bool {
        matches!(self, Version::V4 | Version::V5)
    }

    /// Whether a resize stream exists.
    pub fn resize(self) -> bool {
        matches!(self, Version::V3 | Version::V4 | Version::V5)
    }
}

/// Split comma-separated header values into trimmed protocol names.
pub fn split_list<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The first client protocol the server supports (httpstream's rule).
pub fn negotiate<'s>(client: &[String], server: &[&'s str]) -> Option<&'s str> {
    client
        .iter()
        .find_map(|c| server.iter().find(|s| **s == c.as_str()).copied())
}

/// metav1.StatusCause.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatusCause {
    /// Machine-readable cause (`ExitCode`); Go's field `Type` is serialized as `reason`.
    pub reason: String,
    /// The exit code as decimal text.
    pub message: String,
}

/// metav1.StatusDetails (only causes are used).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatusDetails {
    /// Causes.
    pub causes: Vec<StatusCause>,
}

/// Empty metav1.ListMeta; Go always serializes `"metadata":{}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct ListMeta {}

/// metav1.Status as the kubelet writes it on the error stream.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// Always present.
    pub metadata: ListMeta,
    /// `Success` or `Failure`.
    pub status: &'static str,
    /// Human-readable message (failures).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `NonZeroExitCode`, `InternalError`.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    /// Exit code cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// HTTP-ish code (500 for internal errors).
    #[serde(skip_serializing_if = "is_zero")]
    pub code: i32,
}

fn is_zero(c: &i32) -> bool {
    *c == 0
}

impl Status {
    /// `{"metadata":{},"status":"Success"}`.
    pub fn success() -> Status {
        Status {
            metadata: ListMeta {},
            status: "Success",
            message: String::new(),
            reason: "",
            details: None,
            code: 0,
        }
    }

    /// The status of a command that ended with `code` (Success for 0), the way the
    /// kubelet's `ServeExec` reports a `utilexec.ExitError`.
    pub fn exit(code: i32, cmd: &[String]) -> Status {
        if code == 0 {
            return Status::success();
        }
        Status {
            metadata: ListMeta {},
            status: "Failure",
            message: format!(
                "command terminated with non-zero exit code: error executing command {cmd:?}, exit code {code}"
            ),
            reason: "NonZeroExitCode",
            details: Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: "ExitCode".to_owned(),
                    message: code.to_string(),
                }],
            }),
            code: 0,
        }
    }

    /// An internal error (`apierrors.NewInternalError`).
    pub fn internal(message: impl std::fmt::Display) -> Status {
        Status {
            metadata: ListMeta {},
            status: "Failure",
            message: format!("Internal error occurred: {message}"),
            reason: "InternalError",
            details: None,
            code: 500,
        }
    }

    /// What goes on the error stream for `version`: JSON for v4+, else the message of
    /// a failure and nothing for success.
    pub fn encode(&self, version: Version) -> Vec<u8> {
        if version.json_status() {
            serde_json::to_vec(self).unwrap_or_default()
        } else if self.status == "Success" {
            Vec::new()
        } else {
            self.message.clone().into_bytes()
        }
    }
}

/// Parse a status read from an error stream (client side): `Ok(exit code)`, or the
/// error message.
pub fn decode_status(raw: &[u8], version: Version) -> Result<i32, String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(0);
    }
    if !version.json_status() {
        return Err(String::from_utf8_lossy(raw).into_owned());
    }
    let v: serde_json::Value =
        serde_json::from_slice(raw).map_err(|e| format!("bad status on error stream: {e}"))?;
    if v["status"] == "Success" {
        return Ok(0);
    }
    if v["reason"] == "NonZeroExitCode" {
        let code = v["details"]["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str())
            .and_then(|m| m.parse::<i32>().ok());
        if let Some(code) = code {
            return Ok(code);
        }
    }
    Err(v["message"].as_str().unwrap_or("unknown error").to_owned())
}

/// A terminal size message (`remotecommand.TerminalSize`, Go field names; Go decodes
/// them case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TermSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Incrementally splits a byte stream of concatenated JSON objects (what Go's
/// `json.Decoder` accepts on the resize stream) into terminal sizes.
#[derive(Debug, Default)]
pub struct ResizeDecoder {
    buf: Vec<u8>,
}

impl ResizeDecoder {
    /// Feed bytes; returns every complete size (invalid objects are skipped).
    pub fn feed(&mut self, data: &[u8]) -> Vec<TermSize> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut it =
            serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
        loop {
            match it.next() {
                Some(Ok(v)) => {
                    consumed = it.byte_offset();
                    if let Some(s) = term_size(&v) {
                        out.push(s);
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(_)) => {
                    // Garbage: drop everything buffered so far.
                    consumed = self.buf.len();
                    break;
                }
                None => {
                    consumed = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..consumed);
        if self.buf.len() > 4096 {
            self.buf.clear();
        }
        out
    }
}

fn term_size(v: &serde_json::Value) -> Option<TermSize> {
    let obj = v.as_object()?;
    let field = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_u64())
            .and_then(|n| u16::try_from(n).ok())
    };
    Some(TermSize {
        width: field("width")?,
        height: field("height")?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_client_order() {
        let client = split_list(["v4.channel.k8s.io, v3.channel.k8s.io", "channel.k8s.io"]);
        assert_eq!(client.len(), 3);
        assert_eq!(negotiate(&client, SPDY_REMOTECOMMAND), Some(STREAM_V4));
        let client = split_list(["v9.channel.k8s.io"]);
        assert_eq!(negotiate(&client, SPDY_REMOTECOMMAND), None);
        assert_eq!(Version::from_protocol(STREAM_V5), Version::V5);
        assert!(Version::from_protocol(STREAM_V5).json_status());
        assert!(!Version::V2.resize());
    }

    #[test]
    fn status_json_matches_kubelet() {
        assert_eq!(
            String::from_utf8(Status::success().encode(Version::V4)).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let s = Status::exit(3, &["sh".into(), "-c".into(), "exit 3".into()]);
        let v: serde_json::Value = serde_json::from_slice(&s.encode(Version::V4)).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        assert_eq!(decode_status(&s.encode(Version::V4), Version::V4), Ok(3));
        assert_eq!(
            decode_status(&Status::success().encode(Version::V4), Version::V4),
            Ok(0)
        );
        // v1-v3: text only, nothing on success.
        assert!(Status::success().encode(Version::V3).is_empty());
        let text = s.encode(Version::V2);
        assert!(
            String::from_utf8(text.clone())
                .unwrap()
                .contains("exit code 3")
        );
        assert!(decode_status(&text, Version::V2).is_err());
        let i = Status::internal("boom").encode(Version::V4);
        assert_eq!(
            decode_status(&i, Version::V4),
            Err("Internal error occurred: boom".into())
        );
    }

    #[test]
    fn resize_decoder_handles_split_and_concatenated_objects() {
        let mut d = ResizeDecoder::default();
        assert!(d.feed(br#"{"Width":80,"#).is_empty());
        let got = d.feed(br#""Height":24}{"width":100,"height":30}"#);
        assert_eq!(
            got,
            [
                TermSize {
                    width: 80,
                    height: 24
                },
                TermSize {
                    width: 100,
                    height: 30
                }
            ]
        );
        assert!(d.feed(b"not json").is_empty());
        assert_eq!(d.feed(br#"{"Width":1,"Height":2}"#).len(), 1);
        assert_eq!(
            serde_json::to_string(&TermSize {
                width: 80,
                height: 24
            })
            .unwrap(),
            r#"{"Width":80,"Height":24}"#
        );
    }
}
