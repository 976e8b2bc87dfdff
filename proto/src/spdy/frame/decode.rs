//! Incremental, bounds-checked decoding of SPDY/3.1 frames.

use bytes::{Buf, Bytes, BytesMut};

use super::*;

/// Decodes one frame from the front of `buf` with the default [`Limits`].
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    decode_with(buf, Limits::default())
}

/// Decodes one frame from the front of `buf`. Returns `Ok(None)` (consuming nothing)
/// when the frame is not complete yet; on success the frame's bytes are consumed.
pub fn decode_with(buf: &mut BytesMut, limits: Limits) -> Result<Option<Frame>, FrameError> {
    let Some(header) = buf.get(..FRAME_HEADER_LEN) else {
        return Ok(None);
    };
    let word0 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let flags = header[4];
    let len = usize::from(header[5]) << 16 | usize::from(header[6]) << 8 | usize::from(header[7]);
    let control = word0 & 0x8000_0000 != 0;
    if control {
        let version = ((word0 >> 16) & 0x7FFF) as u16;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion { version });
        }
        if len > limits.max_control_len {
            return Err(FrameError::TooLarge {
                kind: "control",
                len,
                limit: limits.max_control_len,
            });
        }
    } else if len > limits.max_data_len {
        return Err(FrameError::TooLarge {
            kind: "data",
            len,
            limit: limits.max_data_len,
        });
    }
    let total = FRAME_HEADER_LEN + len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total).freeze();
    frame.advance(FRAME_HEADER_LEN);
    if !control {
        return Ok(Some(Frame::Data(Data {
            stream_id: word0 & MAX_STREAM_ID,
            flags,
            data: frame,
        })));
    }
    let frame_type = (word0 & 0xFFFF) as u16;
    decode_control(frame_type, flags, frame).map(Some)
}

fn need(
    kind: &'static str,
    payload: &Bytes,
    min: usize,
    expected: &'static str,
) -> Result<(), FrameError> {
    if payload.len() < min {
        return Err(FrameError::BadLength {
            kind,
            len: payload.len(),
            expected,
        });
    }
    Ok(())
}

fn exact(
    kind: &'static str,
    payload: &Bytes,
    len: usize,
    expected: &'static str,
) -> Result<(), FrameError> {
    if payload.len() != len {
        return Err(FrameError::BadLength {
            kind,
            len: payload.len(),
            expected,
        });
    }
    Ok(())
}

fn decode_control(frame_type: u16, flags: u8, mut p: Bytes) -> Result<Frame, FrameError> {
    // Every `get_*` below is preceded by a length check on `p`.
    Ok(match frame_type {
        TYPE_SYN_STREAM => {
            need("SYN_STREAM", &p, 10, "at least 10")?;
            let stream_id = p.get_u32() & MAX_STREAM_ID;
            let associated_id = p.get_u32() & MAX_STREAM_ID;
            let priority = p.get_u8() >> 5;
            let slot = p.get_u8();
            Frame::SynStream(SynStream {
                stream_id,
                associated_id,
                priority,
                slot,
                flags,
                header_block: p,
            })
        }
        TYPE_SYN_REPLY => {
            need("SYN_REPLY", &p, 4, "at least 4")?;
            let stream_id = p.get_u32() & MAX_STREAM_ID;
            Frame::SynReply(SynReply {
                stream_id,
                flags,
                header_block: p,
            })
        }
        TYPE_RST_STREAM => {
            exact("RST_STREAM", &p, 8, "8")?;
            Frame::RstStream(RstStream {
                stream_id: p.get_u32() & MAX_STREAM_ID,
                status: RstStatus(p.get_u32()),
            })
        }
        TYPE_SETTINGS => {
            need("SETTINGS", &p, 4, "at least 4")?;
            let count = p.get_u32();
            // Check the count against the bytes present before allocating anything.
            if u64::from(count) * 8 != p.len() as u64 {
                return Err(FrameError::BadLength {
                    kind: "SETTINGS",
                    len: p.len() + 4,
                    expected: "4 + 8 * number of entries",
                });
            }
            let mut entries = Vec::with_capacity(p.len() / 8);
            while p.len() >= 8 {
                let word = p.get_u32();
                entries.push(Setting {
                    flags: (word >> 24) as u8,
                    id: word & 0x00FF_FFFF,
                    value: p.get_u32(),
                });
            }
            Frame::Settings(Settings { flags, entries })
        }
        TYPE_PING => {
            exact("PING", &p, 4, "4")?;
            Frame::Ping(Ping { id: p.get_u32() })
        }
        TYPE_GOAWAY => {
            exact("GOAWAY", &p, 8, "8")?;
            Frame::GoAway(GoAway {
                last_good_stream_id: p.get_u32() & MAX_STREAM_ID,
                status: GoAwayStatus(p.get_u32()),
            })
        }
        TYPE_HEADERS => {
            need("HEADERS", &p, 4, "at least 4")?;
            let stream_id = p.get_u32() & MAX_STREAM_ID;
            Frame::Headers(HeadersFrame {
                stream_id,
                flags,
                header_block: p,
            })
        }
        TYPE_WINDOW_UPDATE => {
            exact("WINDOW_UPDATE", &p, 8, "8")?;
            Frame::WindowUpdate(WindowUpdate {
                stream_id: p.get_u32() & MAX_STREAM_ID,
                delta: p.get_u32() & 0x7FFF_FFFF,
            })
        }
        _ => Frame::Unknown(Unknown {
            frame_type,
            flags,
            payload: p,
        }),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testutil::{encode_all, samples};
    use super::*;
    use bytes::BufMut;

    #[test]
    fn decode_split_at_every_byte_boundary() {
        let frames = samples();
        let wire = encode_all(&frames);
        for cut in 0..=wire.len() {
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            buf.extend_from_slice(&wire[..cut]);
            while let Some(f) = decode(&mut buf).unwrap() {
                out.push(f);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(f) = decode(&mut buf).unwrap() {
                out.push(f);
            }
            assert!(buf.is_empty(), "cut {cut}");
            assert_eq!(out, frames, "cut {cut}");
        }
        // Byte by byte.
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, frames);
    }

    #[test]
    fn rejects_bad_version_and_lengths() {
        let mut buf = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert_eq!(
            decode(&mut buf),
            Err(FrameError::UnsupportedVersion { version: 2 })
        );
        let mut buf = BytesMut::from(&[0x80, 3, 0, 6, 0, 0, 0, 5, 0, 0, 0, 1, 0][..]);
        assert!(matches!(
            decode(&mut buf),
            Err(FrameError::BadLength { kind: "PING", .. })
        ));
        let mut buf = BytesMut::from(&[0x80, 3, 0, 4, 0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF][..]);
        assert!(matches!(
            decode(&mut buf),
            Err(FrameError::BadLength {
                kind: "SETTINGS",
                ..
            })
        ));
        let mut buf = BytesMut::from(&[0x80, 3, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            decode(&mut buf),
            Err(FrameError::BadLength {
                kind: "SYN_STREAM",
                ..
            })
        ));
        // Limits apply from the header alone, before the payload is buffered.
        let limits = Limits {
            max_control_len: 1024,
            max_data_len: 100,
        };
        let mut buf = BytesMut::from(&[0x80, 3, 0, 1, 0, 0x10, 0, 0][..]);
        assert!(matches!(
            decode_with(&mut buf, limits),
            Err(FrameError::TooLarge {
                kind: "control",
                ..
            })
        ));
        let mut buf = BytesMut::from(&[0, 0, 0, 1, 0, 0, 0, 101][..]);
        assert!(matches!(
            decode_with(&mut buf, limits),
            Err(FrameError::TooLarge { kind: "data", .. })
        ));
        let mut big = BytesMut::new();
        let f = Frame::Data(Data {
            stream_id: 1,
            flags: 0,
            data: Bytes::from(vec![0; MAX_PAYLOAD_LEN + 1]),
        });
        assert!(f.encode(&mut big).is_err());
        let f = Frame::RstStream(RstStream {
            stream_id: 1 << 31,
            status: RstStatus::CANCEL,
        });
        assert!(f.encode(&mut big).is_err());
    }

    /// Small deterministic PRNG so the smoke test is stable (no external crate).
    pub(crate) struct XorShift(pub u64);
    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn fuzz_smoke_decoder_never_panics() {
        let mut rng = XorShift(0x5eed_1234_abcd_ef01);
        let valid = encode_all(&samples());
        let limits = Limits {
            max_control_len: 4096,
            max_data_len: 4096,
        };
        for round in 0..4000 {
            let mut input = if round % 2 == 0 {
                let len = (rng.next() % 64) as usize;
                (0..len).map(|_| rng.next() as u8).collect::<Vec<u8>>()
            } else {
                let mut v = valid.to_vec();
                for _ in 0..(1 + rng.next() % 8) {
                    let i = (rng.next() as usize) % v.len();
                    v[i] = rng.next() as u8;
                }
                v.truncate((rng.next() as usize) % (v.len() + 1));
                v
            };
            if round % 3 == 0 {
                // Make it look like a v3 control frame more often.
                if input.len() >= 2 {
                    input[0] = 0x80;
                    input[1] = 3;
                }
            }
            let mut buf = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = decode_with(&mut buf, limits) {}
        }
    }
}
