//! Fuzzes the SPDY/3 header block decoder alone: zlib inflation with the SPDY
//! dictionary and a size cap, then name/value block parsing.
#![no_main]

use crust_proto::spdy::headers::{self, HeaderDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut dec = HeaderDecoder::new(256 << 10);
    // Split the input into two blocks sharing one context.
    let mid = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (a, b) = data.split_at(mid);
    let _ = dec.decode(a);
    let _ = dec.decode(b);
    let _ = headers::parse_block(data);
});
