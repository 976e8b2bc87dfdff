//! Single-use tokens naming a pending streaming request.
//!
//! Follows the kubelet's `streaming/request_cache.go`: `Exec`/`Attach`/`PortForward`
//! store the validated request under a random URL-safe token; the first HTTP request
//! presenting it consumes it; tokens expire after a TTL (one minute) and the cache holds
//! at most [`MAX_IN_FLIGHT`] of them (further requests are refused with
//! ResourceExhausted rather than growing without bound).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::StreamError;

/// Outstanding tokens at most (kubelet's `maxInFlight`).
pub const MAX_IN_FLIGHT: usize = 1000;

/// Random bytes per token (kubelet uses 8; 16 makes guessing hopeless).
const TOKEN_BYTES: usize = 16;

/// Why a token was not honoured; the HTTP layer answers 404 for all of them (as the
/// kubelet does) but names the reason in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Never issued, or already used.
    Unknown,
    /// Issued but older than the TTL.
    Expired,
}

struct Entry<T> {
    req: T,
    expires: Instant,
}

/// A TTL cache of single-use requests.
pub struct TokenCache<T> {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry<T>>>,
    /// Recently expired tokens, so "expired" can be told from "unknown" (bounded).
    expired: Mutex<Vec<String>>,
}

impl<T> TokenCache<T> {
    /// An empty cache whose tokens live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            expired: Mutex::new(Vec::new()),
        }
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<T>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note_expired(&self, tokens: impl IntoIterator<Item = String>) {
        let mut e = self
            .expired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        e.extend(tokens);
        let excess = e.len().saturating_sub(MAX_IN_FLIGHT);
        e.drain(..excess);
    }

    /// Store `req`; returns its token.
    pub fn insert(&self, req: T) -> Result<String, StreamError> {
        self.insert_at(req, Instant::now())
    }

    fn insert_at(&self, req: T, now: Instant) -> Result<String, StreamError> {
        let mut entries = self.lock_entries();
        let stale: Vec<String> = entries
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &stale {
            entries.remove(k);
        }
        if entries.len() >= MAX_IN_FLIGHT {
            return Err(StreamError::TooManyRequests {
                limit: MAX_IN_FLIGHT,
            });
        }
        let token = loop {
            let mut raw = [0u8; TOKEN_BYTES];
            rustix::rand::getrandom(&mut raw, rustix::rand::GetRandomFlags::empty())
                .map_err(|e| StreamError::io("generate a streaming token")(e.into()))?;
            let t = URL_SAFE_NO_PAD.encode(raw);
            if !entries.contains_key(&t) {
                break t;
            }
        };
        entries.insert(
            token.clone(),
            Entry {
                req,
                expires: now + self.ttl,
            },
        );
        drop(entries);
        self.note_expired(stale);
        Ok(token)
    }

    /// Take the request of `token`; a token works once.
    pub fn consume(&self, token: &str) -> Result<T, Rejected> {
        self.consume_at(token, Instant::now())
    }

    fn consume_at(&self, token: &str, now: Instant) -> Result<T, Rejected> {
        let entry = self.lock_entries().remove(token);
        match entry {
            Some(e) if e.expires > now => Ok(e.req),
            Some(_) => {
                self.note_expired([token.to_owned()]);
                Err(Rejected::Expired)
            }
            None => {
                let expired = self
                    .expired
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .any(|t| t == token);
                Err(if expired {
                    Rejected::Expired
                } else {
                    Rejected::Unknown
                })
            }
        }
    }

    /// Outstanding tokens (expired ones included until the next insert).
    pub fn len(&self) -> usize {
        self.lock_entries().len()
    }

    /// Whether no token is outstanding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn single_use() {
        let c = TokenCache::new(Duration::from_secs(60));
        let t = c.insert(7).unwrap();
        assert!(
            t.len() >= 20
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(c.consume(&t), Ok(7));
        assert_eq!(c.consume(&t), Err(Rejected::Unknown));
        assert_eq!(c.consume("nope"), Err(Rejected::Unknown));
    }

    #[test]
    fn expiry() {
        let c = TokenCache::new(Duration::from_secs(60));
        let now = Instant::now();
        let t = c.insert_at("x", now).unwrap();
        assert_eq!(
            c.consume_at(&t, now + Duration::from_secs(61)),
            Err(Rejected::Expired)
        );
        // Purged by a later insert, still reported as expired.
        let t2 = c.insert_at("y", now).unwrap();
        c.insert_at("z", now + Duration::from_secs(120)).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.consume_at(&t2, now + Duration::from_secs(120)),
            Err(Rejected::Expired)
        );
    }

    #[test]
    fn bounded() {
        let c = TokenCache::new(Duration::from_secs(60));
        for i in 0..MAX_IN_FLIGHT {
            c.insert(i).unwrap();
        }
        assert!(matches!(
            c.insert(0),
            Err(StreamError::TooManyRequests { .. })
        ));
    }
}
