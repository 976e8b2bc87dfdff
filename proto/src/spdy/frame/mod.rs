//! SPDY/3.1 frame codec: pure encode/decode of the framing layer, no I/O, no zlib.
//!
//! Wire format from the SPDY/3.1 draft (§2.2 "Framing", §2.6 "Control frames"):
//! every frame starts with 8 bytes. A control frame has the high bit set, a 15-bit
//! version (always 3), a 16-bit type, 8 bits of flags and a 24-bit payload length; a
//! DATA frame has the high bit clear, a 31-bit stream id, flags and a 24-bit length.
//! Header blocks inside SYN_STREAM / SYN_REPLY / HEADERS are carried here as opaque
//! (compressed) bytes; [`super::headers`] owns their zlib context, which must follow
//! frame order across the whole session.
//!
//! The decoder is incremental ([`decode`] leaves a partial frame in the buffer and
//! returns `Ok(None)`), enforces a length limit as soon as the 8-byte header is in
//! (so a peer cannot make us buffer 16 MiB before we notice), rejects versions other
//! than 3, and never panics: every field read is bounds-checked.

mod decode;
mod encode;

use bytes::Bytes;

pub use decode::{decode, decode_with};

/// The only protocol version spoken (`SPDY/3.1` uses version 3 on the wire).
pub const VERSION: u16 = 3;
/// Size of the common frame header.
pub const FRAME_HEADER_LEN: usize = 8;
/// Largest payload the 24-bit length field can express.
pub const MAX_PAYLOAD_LEN: usize = 0x00FF_FFFF;
/// Default limit for control frames (the brief: reject control frames over 16 MiB;
/// the 24-bit length caps them one byte below that anyway).
pub const DEFAULT_MAX_CONTROL_LEN: usize = 16 << 20;
/// Largest stream id (31 bits).
pub const MAX_STREAM_ID: u32 = 0x7FFF_FFFF;

/// FLAG_FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS: the sender's half is closed.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM: the recipient may not send on this stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// FLAG_SETTINGS_CLEAR_SETTINGS on SETTINGS: forget persisted settings.
pub const FLAG_SETTINGS_CLEAR_SETTINGS: u8 = 0x01;

pub(crate) const TYPE_SYN_STREAM: u16 = 1;
pub(crate) const TYPE_SYN_REPLY: u16 = 2;
pub(crate) const TYPE_RST_STREAM: u16 = 3;
pub(crate) const TYPE_SETTINGS: u16 = 4;
pub(crate) const TYPE_PING: u16 = 6;
pub(crate) const TYPE_GOAWAY: u16 = 7;
pub(crate) const TYPE_HEADERS: u16 = 8;
pub(crate) const TYPE_WINDOW_UPDATE: u16 = 9;

/// Why a byte sequence is not a valid SPDY/3.1 frame. Any of these ends the session
/// with GOAWAY PROTOCOL_ERROR: after a framing error the byte stream cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("spdy control frame has unsupported version {version} (only 3 is spoken)")]
    UnsupportedVersion { version: u16 },
    #[error("spdy {kind} frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        kind: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("spdy {kind} frame has invalid payload length {len} (expected {expected})")]
    BadLength {
        kind: &'static str,
        len: usize,
        expected: &'static str,
    },
    #[error("spdy {kind} frame field {field} has invalid value {value}")]
    BadValue {
        kind: &'static str,
        field: &'static str,
        value: u64,
    },
}

/// RST_STREAM status codes (SPDY/3.1 §2.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RstStatus(pub u32);

impl RstStatus {
    pub const PROTOCOL_ERROR: Self = Self(1);
    pub const INVALID_STREAM: Self = Self(2);
    pub const REFUSED_STREAM: Self = Self(3);
    pub const UNSUPPORTED_VERSION: Self = Self(4);
    pub const CANCEL: Self = Self(5);
    pub const INTERNAL_ERROR: Self = Self(6);
    pub const FLOW_CONTROL_ERROR: Self = Self(7);
    pub const STREAM_IN_USE: Self = Self(8);
    pub const STREAM_ALREADY_CLOSED: Self = Self(9);
    pub const FRAME_TOO_LARGE: Self = Self(11);
}

/// GOAWAY status codes (SPDY/3.1 §2.6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GoAwayStatus(pub u32);

impl GoAwayStatus {
    pub const OK: Self = Self(0);
    pub const PROTOCOL_ERROR: Self = Self(1);
    pub const INTERNAL_ERROR: Self = Self(2);
}

/// SETTINGS ids (SPDY/3.1 §2.6.4); only INITIAL_WINDOW_SIZE matters to crust.
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u32 = 4;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data(Data),
    SynStream(SynStream),
    SynReply(SynReply),
    RstStream(RstStream),
    Settings(Settings),
    Ping(Ping),
    GoAway(GoAway),
    Headers(HeadersFrame),
    WindowUpdate(WindowUpdate),
    /// A control frame type this version does not define (e.g. CREDENTIAL, NOOP):
    /// §2.2.1 says to ignore it, so it is decoded only to be skipped.
    Unknown(Unknown),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    pub stream_id: u32,
    pub flags: u8,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynStream {
    pub stream_id: u32,
    pub associated_id: u32,
    /// 3-bit priority, 0 is highest.
    pub priority: u8,
    pub slot: u8,
    pub flags: u8,
    /// Compressed name/value block (see [`super::headers`]).
    pub header_block: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynReply {
    pub stream_id: u32,
    pub flags: u8,
    pub header_block: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RstStream {
    pub stream_id: u32,
    pub status: RstStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    /// 24-bit setting id.
    pub id: u32,
    pub value: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub flags: u8,
    pub entries: Vec<Setting>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub id: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoAway {
    pub last_good_stream_id: u32,
    pub status: GoAwayStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadersFrame {
    pub stream_id: u32,
    pub flags: u8,
    pub header_block: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowUpdate {
    /// 0 updates the session window (SPDY/3.1 addition).
    pub stream_id: u32,
    pub delta: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub frame_type: u16,
    pub flags: u8,
    pub payload: Bytes,
}

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_control_len: usize,
    pub max_data_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_control_len: DEFAULT_MAX_CONTROL_LEN,
            max_data_len: MAX_PAYLOAD_LEN,
        }
    }
}

/// Test helpers shared by the codec tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod testutil {
    use super::*;
    use bytes::BytesMut;

    pub(crate) fn samples() -> Vec<Frame> {
        vec![
            Frame::Data(Data {
                stream_id: 1,
                flags: 0,
                data: Bytes::from_static(b"hello"),
            }),
            Frame::Data(Data {
                stream_id: MAX_STREAM_ID,
                flags: FLAG_FIN,
                data: Bytes::new(),
            }),
            Frame::SynStream(SynStream {
                stream_id: 3,
                associated_id: 1,
                priority: 7,
                slot: 2,
                flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
                header_block: Bytes::from_static(b"\x78\xbb compressed"),
            }),
            Frame::SynReply(SynReply {
                stream_id: 5,
                flags: FLAG_FIN,
                header_block: Bytes::from_static(b"abc"),
            }),
            Frame::RstStream(RstStream {
                stream_id: 7,
                status: RstStatus::CANCEL,
            }),
            Frame::Settings(Settings {
                flags: FLAG_SETTINGS_CLEAR_SETTINGS,
                entries: vec![
                    Setting {
                        flags: 1,
                        id: SETTINGS_INITIAL_WINDOW_SIZE,
                        value: 1 << 20,
                    },
                    Setting {
                        flags: 0,
                        id: SETTINGS_MAX_CONCURRENT_STREAMS,
                        value: 100,
                    },
                ],
            }),
            Frame::Settings(Settings {
                flags: 0,
                entries: vec![],
            }),
            Frame::Ping(Ping { id: 0xFFFF_FFFF }),
            Frame::GoAway(GoAway {
                last_good_stream_id: 9,
                status: GoAwayStatus::PROTOCOL_ERROR,
            }),
            Frame::Headers(HeadersFrame {
                stream_id: 11,
                flags: FLAG_FIN,
                header_block: Bytes::new(),
            }),
            Frame::WindowUpdate(WindowUpdate {
                stream_id: 0,
                delta: 0x7FFF_FFFF,
            }),
            Frame::WindowUpdate(WindowUpdate {
                stream_id: 13,
                delta: 1,
            }),
            Frame::Unknown(Unknown {
                frame_type: 10,
                flags: 3,
                payload: Bytes::from_static(b"cred"),
            }),
        ]
    }

    pub(crate) fn encode_all(frames: &[Frame]) -> BytesMut {
        let mut buf = BytesMut::new();
        for f in frames {
            f.encode(&mut buf).unwrap();
        }
        buf
    }
}
