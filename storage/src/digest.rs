//! Content digests (`sha256:<hex>`), a hashing reader and OCI chain ids.
//!
//! Only sha256 is supported: it is the one algorithm every registry and the OCI image spec
//! ("descriptor.md", `sha256` is REQUIRED) use; anything else is rejected by name rather than
//! silently mis-verified.

use std::fmt;
use std::io::{self, BufRead, Read};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Why a digest string was rejected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("digest `{0}` has no `algorithm:` prefix")]
    MissingAlgorithm(String),
    /// An algorithm other than sha256.
    #[error("digest algorithm `{0}` is not supported (only sha256)")]
    Unsupported(String),
    /// The encoded part is not 64 lowercase hex characters.
    #[error("digest `{0}`: expected 64 lowercase hex characters after `sha256:`")]
    InvalidHex(String),
}

/// A sha256 content digest, printed and (de)serialised as `sha256:<64 lowercase hex>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parse `sha256:<64 lowercase hex>` (OCI image spec, descriptor.md "Digests").
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(s.to_string()));
        };
        if alg != "sha256" {
            return Err(DigestError::Unsupported(alg.to_string()));
        }
        Self::from_hex(hex).ok_or_else(|| DigestError::InvalidHex(s.to_string()))
    }

    /// Build from a bare hex string; `None` unless it is 64 lowercase hex characters.
    pub fn from_hex(hex: &str) -> Option<Digest> {
        is_sha256_hex(hex).then(|| Digest {
            hex: hex.to_string(),
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest {
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// The lowercase hex encoding (64 characters).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Always `"sha256"`.
    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// A short form for log messages (`sha256:0123456789ab`).
    pub fn short(&self) -> String {
        format!("sha256:{}", &self.hex[..12])
    }
}

/// True if `s` is exactly 64 lowercase hex characters.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A reader that hashes and counts every byte passing through it.
pub struct DigestingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> DigestingReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest and length of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        let hex = hex::encode(self.hasher.finalize());
        (Digest { hex }, self.count)
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or_default();
        self.hasher.update(read);
        self.count += n as u64;
        Ok(n)
    }
}

/// The [`DigestingReader`] of a buffered stream: bytes are hashed as the inner reader
/// exposes them through `fill_buf`, so a consumer that works on the buffer in place (the
/// gzip and zstd decoders) reads the network's chunks directly, with no copy into a
/// buffer of its own. As with [`DigestingReader`], the digest covers every byte read from
/// the stream, consumed or not.
pub struct DigestingBufReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    /// Length of the inner buffer's prefix already hashed.
    hashed: usize,
}

impl<R: BufRead> DigestingBufReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
            hashed: 0,
        }
    }

    /// The digest and length of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        let hex = hex::encode(self.hasher.finalize());
        (Digest { hex }, self.count)
    }
}

impl<R: BufRead> BufRead for DigestingBufReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let buf = self.inner.fill_buf()?;
        // `BufRead` returns the same data until it is consumed, possibly extended; only
        // the part not seen yet is new. (A buffer that shrank without `consume` would
        // break the contract; nothing is hashed twice either way.)
        if let Some(new) = buf.get(self.hashed..) {
            self.hasher.update(new);
            self.count += new.len() as u64;
        }
        self.hashed = buf.len();
        Ok(buf)
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.hashed = self.hashed.saturating_sub(amt);
    }
}

impl<R: BufRead> Read for DigestingBufReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

/// OCI image spec chain ids (config.md "Layer ChainID"): `ChainID(L0) = DiffID(L0)`,
/// `ChainID(L0|..|Ln) = sha256(ChainID(L0|..|Ln-1) + " " + DiffID(Ln))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::sha256_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_and_print() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(d, Digest::sha256_of(b""));
        assert_eq!(EMPTY.parse::<Digest>().unwrap(), d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(
            Digest::parse("sha512:abcd"),
            Err(DigestError::Unsupported(a)) if a == "sha512"
        ));
        assert!(matches!(
            Digest::parse("abc"),
            Err(DigestError::MissingAlgorithm(_))
        ));
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        assert!(matches!(
            Digest::parse(&upper),
            Err(DigestError::InvalidHex(_))
        ));
        assert!(matches!(
            Digest::parse("sha256:abc"),
            Err(DigestError::InvalidHex(_))
        ));
        assert!(serde_json::from_str::<Digest>("\"md5:00\"").is_err());
    }

    #[test]
    fn digesting_reader() {
        let mut r = DigestingReader::new(&b"hello world"[..]);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        let (d, n) = r.finish();
        assert_eq!(n, 11);
        assert_eq!(d, Digest::sha256_of(b"hello world"));
    }

    #[test]
    fn digesting_buf_reader_hashes_each_byte_once() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        // Tiny buffer: many fill_buf/consume rounds, partial consumes included.
        let inner = io::BufReader::with_capacity(7, &data[..]);
        let mut r = DigestingBufReader::new(inner);
        let mut out = Vec::new();
        loop {
            let buf = r.fill_buf().unwrap();
            if buf.is_empty() {
                break;
            }
            // Look twice before consuming: nothing is hashed twice.
            let again = r.fill_buf().unwrap().len();
            let take = again.min(3);
            out.extend_from_slice(&r.fill_buf().unwrap()[..take]);
            r.consume(take);
        }
        assert_eq!(out, data);
        let (d, n) = r.finish();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Digest::sha256_of(&data));
        // Read through the `Read` impl too.
        let mut r = DigestingBufReader::new(&data[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.finish(), (Digest::sha256_of(&data), data.len() as u64));
    }

    #[test]
    fn chain_id_known_value() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        // printf "sha256:<a> sha256:<b>" | sha256sum, computed independently.
        assert_eq!(
            c[1].to_string(),
            "sha256:51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676"
        );
        let c3 = chain_ids(&[a.clone(), b.clone(), a.clone()]);
        assert_eq!(
            c3[2],
            Digest::sha256_of(format!("{} {a}", c3[1]).as_bytes())
        );
        assert!(chain_ids(&[]).is_empty());
    }
}
