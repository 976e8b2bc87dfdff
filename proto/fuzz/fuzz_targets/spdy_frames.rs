//! Fuzzes the SPDY/3.1 frame decoder together with the header block decoder, the
//! way the session's reader task drives them: decode frames from an arbitrary byte
//! stream (fed in arbitrary chunk sizes) and inflate every header block through one
//! shared zlib context. Must never panic or allocate without bound.
#![no_main]

use bytes::BytesMut;
use crust_proto::spdy::frame::{self, Frame, Limits};
use crust_proto::spdy::headers::HeaderDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte picks the chunk size, so split frames are exercised too.
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let limits = Limits {
        max_control_len: 1 << 20,
        max_data_len: 1 << 20,
    };
    let mut dec = HeaderDecoder::new(256 << 10);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match frame::decode_with(&mut buf, limits) {
                Ok(Some(f)) => {
                    let block = match &f {
                        Frame::SynStream(s) => Some(&s.header_block),
                        Frame::SynReply(r) => Some(&r.header_block),
                        Frame::Headers(h) => Some(&h.header_block),
                        _ => None,
                    };
                    if let Some(block) = block {
                        let _ = dec.decode(block);
                    }
                    // Re-encoding a decoded frame must not panic either.
                    let mut out = BytesMut::new();
                    let _ = f.encode(&mut out);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
