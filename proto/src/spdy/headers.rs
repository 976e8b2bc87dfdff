//! SPDY/3 name/value header blocks and their zlib compression.
//!
//! Format (SPDY/3.1 draft §2.6.10): a 32-bit pair count, then per pair a 32-bit name
//! length, the name, a 32-bit value length and the value; all big-endian. Names are
//! lower-case and unique; several values for one name are joined with NUL. The whole
//! block is zlib-compressed with the spec's fixed dictionary (§2.6.10.1); each
//! direction of a session uses ONE compression context for its whole life, and every
//! block ends with a sync flush, so blocks must be (de)compressed in frame order and
//! a block must be decompressed even when its stream is refused.
//!
//! Decompression is capped (default 1 MiB per block) so a zip bomb cannot exhaust
//! memory; a block that hits the cap, or corrupt zlib data, poisons the context and
//! must end the session ([`HeaderError::is_fatal`]).

use bytes::{BufMut, Bytes};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::Headers;

/// Default limit on one decompressed header block.
pub const DEFAULT_MAX_BLOCK: usize = 1 << 20;

/// The words of the SPDY/3 dictionary, each stored length-prefixed (§2.6.10.1).
const DICT_WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];
const DICT_WORD_COUNT: usize = DICT_WORDS.len();

/// The raw tail of the dictionary that follows the length-prefixed words.
const DICT_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

const DICT_LEN: usize = dict_len();

const fn dict_len() -> usize {
    let mut n = DICT_TAIL.len();
    let mut i = 0;
    while i < DICT_WORD_COUNT {
        n += 4 + DICT_WORDS[i].len();
        i += 1;
    }
    n
}

const fn build_dict() -> [u8; DICT_LEN] {
    let mut out = [0u8; DICT_LEN];
    let mut pos = 0;
    let mut i = 0;
    while i < DICT_WORD_COUNT {
        let w = DICT_WORDS[i].as_bytes();
        let len = (w.len() as u32).to_be_bytes();
        let mut k = 0;
        while k < 4 {
            out[pos] = len[k];
            pos += 1;
            k += 1;
        }
        let mut j = 0;
        while j < w.len() {
            out[pos] = w[j];
            pos += 1;
            j += 1;
        }
        i += 1;
    }
    let t = DICT_TAIL.as_bytes();
    let mut j = 0;
    while j < t.len() {
        out[pos] = t[j];
        pos += 1;
        j += 1;
    }
    out
}

/// The SPDY/3 zlib dictionary (1423 bytes, Adler-32 0xe3c6a7c2), built at compile
/// time from the word list and tail given in the spec.
pub static DICTIONARY: [u8; DICT_LEN] = build_dict();

/// Why a header block could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("spdy header block zlib stream is corrupt: {message}")]
    Zlib { message: String },
    #[error("spdy header block decompresses to more than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("spdy header block is truncated while reading {what}")]
    Truncated { what: &'static str },
    #[error("spdy header block has {extra} trailing bytes after the last pair")]
    Trailing { extra: usize },
    #[error("spdy header block has an empty header name")]
    EmptyName,
    #[error("spdy header name {name:?} is not lower-case")]
    UppercaseName { name: String },
    #[error("spdy header name {name:?} appears twice in one block")]
    DuplicateName { name: String },
    #[error("spdy header {name:?} has an empty value segment")]
    EmptyValue { name: String },
    #[error("spdy header {what} is not valid utf-8")]
    NotUtf8 { what: &'static str },
    #[error("spdy header {name:?} value contains a NUL byte")]
    NulInValue { name: String },
}

impl HeaderError {
    /// Whether the shared zlib context can no longer be trusted (end the session) as
    /// opposed to a malformed block that only invalidates its stream.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            HeaderError::Zlib { .. } | HeaderError::TooLarge { .. }
        )
    }
}

/// Serialises headers to an uncompressed name/value block. Names are lower-cased;
/// entries sharing a name are merged into one pair with NUL-joined values (as
/// `net/http.Header` values are by the Go framer kubelet uses).
pub fn encode_block(headers: &Headers) -> Result<Vec<u8>, HeaderError> {
    let mut merged: Vec<(String, Vec<&str>)> = Vec::new();
    for (name, value) in headers {
        if name.is_empty() {
            return Err(HeaderError::EmptyName);
        }
        if value.contains('\0') {
            return Err(HeaderError::NulInValue { name: name.clone() });
        }
        let lower = name.to_ascii_lowercase();
        match merged.iter_mut().find(|(n, _)| *n == lower) {
            Some((_, values)) => values.push(value),
            None => merged.push((lower, vec![value])),
        }
    }
    let mut out = Vec::with_capacity(64);
    out.put_u32(merged.len() as u32);
    for (name, values) in &merged {
        out.put_u32(name.len() as u32);
        out.put_slice(name.as_bytes());
        let joined = values.join("\0");
        out.put_u32(joined.len() as u32);
        out.put_slice(joined.as_bytes());
    }
    Ok(out)
}

fn take<'a>(raw: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], HeaderError> {
    if raw.len() < n {
        return Err(HeaderError::Truncated { what });
    }
    let (head, rest) = raw.split_at(n);
    *raw = rest;
    Ok(head)
}

fn take_u32(raw: &mut &[u8], what: &'static str) -> Result<usize, HeaderError> {
    let b = take(raw, 4, what)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// Parses an uncompressed name/value block. A NUL-joined value becomes one entry per
/// value, in order.
pub fn parse_block(mut raw: &[u8]) -> Result<Headers, HeaderError> {
    let count = take_u32(&mut raw, "pair count")?;
    // Each pair needs at least 8 bytes: never allocate for more than can be present.
    let mut out = Headers::with_capacity(count.min(raw.len() / 8));
    let mut seen: Vec<String> = Vec::with_capacity(count.min(raw.len() / 8));
    for _ in 0..count {
        let n = take_u32(&mut raw, "name length")?;
        let name = take(&mut raw, n, "name")?;
        let name = std::str::from_utf8(name).map_err(|_| HeaderError::NotUtf8 { what: "name" })?;
        if name.is_empty() {
            return Err(HeaderError::EmptyName);
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(HeaderError::UppercaseName {
                name: name.to_string(),
            });
        }
        if seen.iter().any(|s| s == name) {
            return Err(HeaderError::DuplicateName {
                name: name.to_string(),
            });
        }
        seen.push(name.to_string());
        let n = take_u32(&mut raw, "value length")?;
        let value = take(&mut raw, n, "value")?;
        let value =
            std::str::from_utf8(value).map_err(|_| HeaderError::NotUtf8 { what: "value" })?;
        if value.is_empty() {
            out.push((name.to_string(), String::new()));
            continue;
        }
        for part in value.split('\0') {
            if part.is_empty() {
                return Err(HeaderError::EmptyValue {
                    name: name.to_string(),
                });
            }
            out.push((name.to_string(), part.to_string()));
        }
    }
    if !raw.is_empty() {
        return Err(HeaderError::Trailing { extra: raw.len() });
    }
    Ok(out)
}

/// The sending direction's compression context.
pub struct HeaderEncoder {
    deflate: Compress,
}

impl HeaderEncoder {
    pub fn new() -> Result<Self, HeaderError> {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(&DICTIONARY)
            .map_err(|e| HeaderError::Zlib {
                message: e.to_string(),
            })?;
        Ok(Self { deflate })
    }

    /// Compresses one raw block (from [`encode_block`]) with a sync flush.
    pub fn compress(&mut self, raw: &[u8]) -> Result<Bytes, HeaderError> {
        let mut out: Vec<u8> = Vec::with_capacity(raw.len() / 2 + 64);
        let mut input = raw;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before_in = self.deflate.total_in();
            let before_out = self.deflate.total_out();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| HeaderError::Zlib {
                    message: e.to_string(),
                })?;
            let used = (self.deflate.total_in() - before_in) as usize;
            let produced = self.deflate.total_out() - before_out;
            input = input.get(used..).unwrap_or_default();
            // Done once all input is in and the flush left spare room in `out`.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if used == 0 && produced == 0 && out.len() < out.capacity() {
                return Err(HeaderError::Zlib {
                    message: "deflate made no progress".into(),
                });
            }
        }
        Ok(Bytes::from(out))
    }

    /// Convenience: [`encode_block`] then [`Self::compress`].
    pub fn encode(&mut self, headers: &Headers) -> Result<Bytes, HeaderError> {
        let raw = encode_block(headers)?;
        self.compress(&raw)
    }
}

/// The receiving direction's decompression context.
pub struct HeaderDecoder {
    inflate: Decompress,
    max_block: usize,
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BLOCK)
    }
}

impl HeaderDecoder {
    pub fn new(max_block: usize) -> Self {
        Self {
            inflate: Decompress::new(true),
            max_block,
        }
    }

    /// Decompresses one block (all of it: the peer sync-flushed) without parsing it.
    pub fn decompress(&mut self, block: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let mut out: Vec<u8> =
            Vec::with_capacity(block.len().saturating_mul(4).clamp(64, 16 << 10));
        let mut input = block;
        let mut dict_set = false;
        let zerr = |message: String| HeaderError::Zlib { message };
        while !input.is_empty() || out.len() == out.capacity() {
            if out.len() == out.capacity() {
                // Allow one byte beyond the limit so "exactly at the limit" is accepted.
                let room = (self.max_block + 1).saturating_sub(out.len());
                if room == 0 {
                    return Err(HeaderError::TooLarge {
                        limit: self.max_block,
                    });
                }
                out.reserve(out.capacity().max(1024).min(room));
            }
            let before_in = self.inflate.total_in();
            let before_out = self.inflate.total_out();
            let res = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let used = (self.inflate.total_in() - before_in) as usize;
            let produced = self.inflate.total_out() - before_out;
            input = input.get(used..).unwrap_or_default();
            match res {
                Ok(Status::StreamEnd) => {
                    if !input.is_empty() {
                        return Err(zerr("data after the end of the zlib stream".into()));
                    }
                    break;
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() && !dict_set => {
                    dict_set = true;
                    self.inflate
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| zerr(format!("dictionary rejected: {e}")))?;
                    continue;
                }
                Err(e) => return Err(zerr(e.to_string())),
            }
            if out.len() > self.max_block {
                return Err(HeaderError::TooLarge {
                    limit: self.max_block,
                });
            }
            if used == 0 && produced == 0 && out.len() < out.capacity() {
                // No progress with room to spare: the input ends mid-stream.
                break;
            }
        }
        Ok(out)
    }

    /// Decompresses and parses one block. An empty block means no headers (some
    /// peers send SYN_REPLY without a block).
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, HeaderError> {
        if block.is_empty() {
            return Ok(Headers::new());
        }
        let raw = self.decompress(block)?;
        parse_block(&raw)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dictionary_matches_spec_checksum() {
        assert_eq!(DICTIONARY.len(), 1423);
        let mut c = Compress::new(Compression::default(), true);
        assert_eq!(c.set_dictionary(&DICTIONARY).unwrap(), 0xe3c6_a7c2);
    }

    #[test]
    fn raw_block_round_trip_and_multi_values() {
        let headers = h(&[
            ("streamType", "stdout"),
            ("port", "80"),
            ("port", "443"),
            ("empty", ""),
        ]);
        let raw = encode_block(&headers).unwrap();
        let back = parse_block(&raw).unwrap();
        assert_eq!(
            back,
            h(&[
                ("streamtype", "stdout"),
                ("port", "80"),
                ("port", "443"),
                ("empty", "")
            ])
        );
    }

    #[test]
    fn rejects_invalid_blocks() {
        let mut raw = Vec::new();
        raw.put_u32(2);
        for _ in 0..2 {
            raw.put_u32(1);
            raw.put_slice(b"a");
            raw.put_u32(1);
            raw.put_slice(b"b");
        }
        assert!(matches!(
            parse_block(&raw),
            Err(HeaderError::DuplicateName { .. })
        ));
        let mut raw = Vec::new();
        raw.put_u32(1);
        raw.put_u32(1);
        raw.put_slice(b"A");
        raw.put_u32(0);
        assert!(matches!(
            parse_block(&raw),
            Err(HeaderError::UppercaseName { .. })
        ));
        let mut raw = Vec::new();
        raw.put_u32(1);
        raw.put_u32(1);
        raw.put_slice(b"a");
        raw.put_u32(3);
        raw.put_slice(b"x\0\0");
        assert!(matches!(
            parse_block(&raw),
            Err(HeaderError::EmptyValue { .. })
        ));
        assert!(matches!(
            parse_block(&[0, 0, 0, 0xFF]),
            Err(HeaderError::Truncated { .. })
        ));
        assert!(matches!(
            parse_block(&[0, 0, 0, 0, 1]),
            Err(HeaderError::Trailing { extra: 1 })
        ));
        assert!(matches!(
            encode_block(&h(&[("", "x")])),
            Err(HeaderError::EmptyName)
        ));
        assert!(matches!(
            encode_block(&h(&[("a", "x\0y")])),
            Err(HeaderError::NulInValue { .. })
        ));
    }

    #[test]
    fn compressed_blocks_share_one_context() {
        let mut enc = HeaderEncoder::new().unwrap();
        let mut dec = HeaderDecoder::default();
        let blocks = [
            h(&[("streamtype", "error")]),
            h(&[("streamtype", "stdin")]),
            h(&[("streamtype", "stdout"), ("x", "1")]),
            h(&[]),
            h(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
        ];
        let mut sizes = Vec::new();
        for b in &blocks {
            let c = enc.encode(b).unwrap();
            sizes.push(c.len());
            assert_eq!(&dec.decode(&c).unwrap(), b);
        }
        // The first block carries the zlib header with the dictionary id.
        let first = enc.encode(&blocks[0]).unwrap();
        assert!(first.len() < sizes[0], "later blocks reuse the context");
        // A fresh decoder cannot read a mid-session block.
        assert!(HeaderDecoder::default().decode(&first).is_err());
    }

    /// Reference produced independently with CPython's zlib:
    /// `c = zlib.compressobj(9, zlib.DEFLATED, 15, zdict=DICT)`, then for each block
    /// `c.compress(block) + c.flush(zlib.Z_SYNC_FLUSH)`, where the blocks are
    /// `{streamtype: error}` and `{streamtype: stdout, port: 80\0443}`.
    #[test]
    fn decodes_python_reference_vectors() {
        let mut dec = HeaderDecoder::default();
        assert_eq!(
            dec.decode(PY_BLOCK1).unwrap(),
            h(&[("streamtype", "error")])
        );
        assert_eq!(
            dec.decode(PY_BLOCK2).unwrap(),
            h(&[("streamtype", "stdout"), ("port", "80"), ("port", "443")])
        );
    }

    #[rustfmt::skip]
    const PY_BLOCK1: &[u8] = &[
        0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0xa6, 0x23, 0x46, 0x70, 0x3a, 0x2b, 0x29, 0x4a, 0x4d, 0xcc, 0x85, 0x16, 0x25, 0xac, 0xa9, 0xa0, 0x80, 0x06, 0x00, 0x00, 0x00, 0xff, 0xff,
    ];
    #[rustfmt::skip]
    const PY_BLOCK2: &[u8] = &[
        0x02, 0x65, 0x1c, 0x0c, 0x29, 0x60, 0x62, 0x4e, 0xc9, 0x07, 0x97, 0xd1, 0xc0, 0x22, 0xbb, 0x08, 0x9c, 0xbc, 0x2d, 0x0c, 0x18, 0x4c, 0x4c, 0x8c, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff,
    ];

    #[test]
    fn zip_bomb_is_capped() {
        let mut enc = HeaderEncoder::new().unwrap();
        let big = "a".repeat(200_000);
        let c = enc.encode(&h(&[("x", &big)])).unwrap();
        assert!(c.len() < 2_000);
        let mut dec = HeaderDecoder::new(100_000);
        let err = dec.decode(&c).unwrap_err();
        assert!(matches!(err, HeaderError::TooLarge { limit: 100_000 }));
        assert!(err.is_fatal());
        let mut dec = HeaderDecoder::new(200_000 + 64);
        assert_eq!(dec.decode(&c).unwrap()[0].1.len(), 200_000);
    }

    #[test]
    fn fuzz_smoke_header_decoder_never_panics() {
        let mut enc = HeaderEncoder::new().unwrap();
        let valid: Vec<Bytes> = (0..4)
            .map(|i| {
                enc.encode(&h(&[("streamtype", "stdout"), ("n", &i.to_string())]))
                    .unwrap()
            })
            .collect();
        let mut seed = 0x1234_5678_9abc_def1_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let mut dec = HeaderDecoder::new(64 << 10);
            let input: Vec<u8> = if round % 2 == 0 {
                (0..(next() % 80)).map(|_| next() as u8).collect()
            } else {
                let mut v = valid[(next() % 4) as usize].to_vec();
                let i = (next() as usize) % v.len();
                v[i] ^= 1 << (next() % 8);
                v
            };
            let _ = dec.decode(&input);
            let _ = dec.decode(&valid[1]);
            let _ = parse_block(&input);
        }
    }
}
