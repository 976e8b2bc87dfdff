//! Encoding of SPDY/3.1 frames.

use bytes::{BufMut, BytesMut};

use super::*;

fn check_id(kind: &'static str, field: &'static str, id: u32) -> Result<u32, FrameError> {
    if id > MAX_STREAM_ID {
        return Err(FrameError::BadValue {
            kind,
            field,
            value: u64::from(id),
        });
    }
    Ok(id)
}

fn check_len(kind: &'static str, len: usize, max: usize) -> Result<u32, FrameError> {
    if len > max {
        return Err(FrameError::TooLarge {
            kind,
            len,
            limit: max,
        });
    }
    // `max` never exceeds MAX_PAYLOAD_LEN, so this fits in 24 bits.
    Ok(len as u32)
}

fn put_control(dst: &mut BytesMut, frame_type: u16, flags: u8, len: u32) {
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(frame_type);
    dst.put_u32(u32::from(flags) << 24 | len);
}

impl Frame {
    /// Appends the wire form of this frame to `dst`. Fails only for values the format
    /// cannot carry (ids over 31 bits, payloads over 24 bits, priority over 7).
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), FrameError> {
        match self {
            Frame::Data(f) => {
                let id = check_id("DATA", "stream_id", f.stream_id)?;
                let len = check_len("DATA", f.data.len(), MAX_PAYLOAD_LEN)?;
                dst.reserve(FRAME_HEADER_LEN + f.data.len());
                dst.put_u32(id);
                dst.put_u32(u32::from(f.flags) << 24 | len);
                dst.put_slice(&f.data);
            }
            Frame::SynStream(f) => {
                let id = check_id("SYN_STREAM", "stream_id", f.stream_id)?;
                let assoc = check_id("SYN_STREAM", "associated_id", f.associated_id)?;
                if f.priority > 7 {
                    return Err(FrameError::BadValue {
                        kind: "SYN_STREAM",
                        field: "priority",
                        value: u64::from(f.priority),
                    });
                }
                let len = check_len("SYN_STREAM", 10 + f.header_block.len(), MAX_PAYLOAD_LEN)?;
                put_control(dst, TYPE_SYN_STREAM, f.flags, len);
                dst.put_u32(id);
                dst.put_u32(assoc);
                dst.put_u8(f.priority << 5);
                dst.put_u8(f.slot);
                dst.put_slice(&f.header_block);
            }
            Frame::SynReply(f) => {
                let id = check_id("SYN_REPLY", "stream_id", f.stream_id)?;
                let len = check_len("SYN_REPLY", 4 + f.header_block.len(), MAX_PAYLOAD_LEN)?;
                put_control(dst, TYPE_SYN_REPLY, f.flags, len);
                dst.put_u32(id);
                dst.put_slice(&f.header_block);
            }
            Frame::RstStream(f) => {
                let id = check_id("RST_STREAM", "stream_id", f.stream_id)?;
                put_control(dst, TYPE_RST_STREAM, 0, 8);
                dst.put_u32(id);
                dst.put_u32(f.status.0);
            }
            Frame::Settings(f) => {
                let len = check_len("SETTINGS", 4 + 8 * f.entries.len(), MAX_PAYLOAD_LEN)?;
                put_control(dst, TYPE_SETTINGS, f.flags, len);
                dst.put_u32(f.entries.len() as u32);
                for e in &f.entries {
                    if e.id > 0x00FF_FFFF {
                        return Err(FrameError::BadValue {
                            kind: "SETTINGS",
                            field: "id",
                            value: u64::from(e.id),
                        });
                    }
                    dst.put_u32(u32::from(e.flags) << 24 | e.id);
                    dst.put_u32(e.value);
                }
            }
            Frame::Ping(f) => {
                put_control(dst, TYPE_PING, 0, 4);
                dst.put_u32(f.id);
            }
            Frame::GoAway(f) => {
                let id = check_id("GOAWAY", "last_good_stream_id", f.last_good_stream_id)?;
                put_control(dst, TYPE_GOAWAY, 0, 8);
                dst.put_u32(id);
                dst.put_u32(f.status.0);
            }
            Frame::Headers(f) => {
                let id = check_id("HEADERS", "stream_id", f.stream_id)?;
                let len = check_len("HEADERS", 4 + f.header_block.len(), MAX_PAYLOAD_LEN)?;
                put_control(dst, TYPE_HEADERS, f.flags, len);
                dst.put_u32(id);
                dst.put_slice(&f.header_block);
            }
            Frame::WindowUpdate(f) => {
                let id = check_id("WINDOW_UPDATE", "stream_id", f.stream_id)?;
                let delta = check_id("WINDOW_UPDATE", "delta", f.delta)?;
                put_control(dst, TYPE_WINDOW_UPDATE, 0, 8);
                dst.put_u32(id);
                dst.put_u32(delta);
            }
            Frame::Unknown(f) => {
                let len = check_len("unknown control", f.payload.len(), MAX_PAYLOAD_LEN)?;
                put_control(dst, f.frame_type, f.flags, len);
                dst.put_slice(&f.payload);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testutil::{encode_all, samples};
    use super::*;
    use bytes::Bytes;

    #[test]
    fn round_trip_every_frame_type() {
        for f in samples() {
            let mut buf = encode_all(std::slice::from_ref(&f));
            assert_eq!(decode(&mut buf).unwrap(), Some(f));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn known_wire_bytes() {
        let mut buf = BytesMut::new();
        Frame::Ping(Ping { id: 1 }).encode(&mut buf).unwrap();
        assert_eq!(&buf[..], &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]);
        buf.clear();
        Frame::Data(Data {
            stream_id: 1,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"x"),
        })
        .encode(&mut buf)
        .unwrap();
        assert_eq!(&buf[..], &[0, 0, 0, 1, 1, 0, 0, 1, b'x']);
        buf.clear();
        Frame::WindowUpdate(WindowUpdate {
            stream_id: 0,
            delta: 0x10000,
        })
        .encode(&mut buf)
        .unwrap();
        assert_eq!(
            &buf[..],
            &[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn rejects_unencodable_values() {
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
        let f = Frame::SynStream(SynStream {
            stream_id: 1,
            associated_id: 0,
            priority: 8,
            slot: 0,
            flags: 0,
            header_block: Bytes::new(),
        });
        assert!(f.encode(&mut big).is_err());
    }
}
