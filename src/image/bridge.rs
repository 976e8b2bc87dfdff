//! Bridge from an async byte stream (a registry blob download) to the `std::io::Read` that
//! `Store::apply_layer` consumes on a blocking thread, so layers are unpacked while they
//! download instead of being buffered. It is a `BufRead` handing out the received chunks
//! themselves, so the decompressor reads them in place.
//!
//! A bounded channel carries the chunks: when unpacking is slower than the network the
//! download waits (back-pressure, bounded memory). An error sent by the producer makes the
//! next `read` fail, and a producer that disappears without finishing ends the stream early;
//! either way the store sees a failed or truncated layer, fails its digest check and removes
//! its temporary directory.

use std::io::{self, BufRead, Read};

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

/// Chunks in flight between the download and the unpacker. Each is what one socket read
/// returned: 8 KiB to ~400 KiB (hyper grows its read buffer while reads fill it). Kept
/// small on purpose: the kernel's socket buffer already absorbs network bursts, and every
/// chunk held here pins a buffer hyper cannot reuse, so a deep queue means fresh memory
/// (page faults) for every read and up to tens of MiB per layer in flight. Eight chunks
/// bound a layer to ~3 MiB and let the allocator hand the same pages back.
pub const CHANNEL_DEPTH: usize = 8;

/// The sending half, used by the async download.
pub type ChunkSender = mpsc::Sender<io::Result<Bytes>>;

/// The `Read` half, used on the blocking thread.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

/// A connected sender/reader pair.
pub fn channel() -> (ChunkSender, ChannelReader) {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    (
        tx,
        ChannelReader {
            rx,
            current: Bytes::new(),
        },
    )
}

impl BufRead for ChannelReader {
    /// The current chunk as received: the decoder reads it in place (no copy).
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amt: usize) {
        self.current.advance(amt.min(self.current.len()));
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = {
            let chunk = self.fill_buf()?;
            let n = buf.len().min(chunk.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_in_order() {
        let (tx, mut reader) = channel();
        let reading = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map(|_| out)
        });
        for chunk in [&b"hello "[..], b"", b"streaming ", b"world"] {
            tx.send(Ok(Bytes::copy_from_slice(chunk))).await.unwrap();
        }
        drop(tx);
        assert_eq!(reading.await.unwrap().unwrap(), b"hello streaming world");
    }

    #[tokio::test]
    async fn buf_read_hands_out_chunks_in_place() {
        let (tx, mut reader) = channel();
        let reading = tokio::task::spawn_blocking(move || {
            let mut seen = Vec::new();
            loop {
                let buf = reader.fill_buf().unwrap();
                if buf.is_empty() {
                    break;
                }
                // Consume part of each chunk: the rest is handed out again.
                let n = buf.len().min(3);
                seen.extend_from_slice(&buf[..n]);
                reader.consume(n);
            }
            seen
        });
        for chunk in [&b"abcdefg"[..], b"", b"hij"] {
            tx.send(Ok(Bytes::copy_from_slice(chunk))).await.unwrap();
        }
        drop(tx);
        assert_eq!(reading.await.unwrap(), b"abcdefghij");
    }

    #[tokio::test]
    async fn producer_error_fails_the_read() {
        let (tx, mut reader) = channel();
        let reading = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            reader.read_to_end(&mut out)
        });
        tx.send(Ok(Bytes::from_static(b"part"))).await.unwrap();
        tx.send(Err(io::Error::new(io::ErrorKind::TimedOut, "stalled")))
            .await
            .unwrap();
        let err = reading.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
