//! Bridge from an async byte stream (a registry blob download) to the `std::io::Read` that
//! `Store::apply_layer` consumes on a blocking thread, so layers are unpacked while they
//! download instead of being buffered.
//!
//! A bounded channel carries the chunks: when unpacking is slower than the network the
//! download waits (back-pressure, bounded memory). An error sent by the producer makes the
//! next `read` fail, and a producer that disappears without finishing ends the stream early;
//! either way the store sees a failed or truncated layer, fails its digest check and removes
//! its temporary directory.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

/// Chunks in flight between the download and the unpacker (each is one HTTP body frame,
/// typically 8-16 KiB).
pub const CHANNEL_DEPTH: usize = 64;

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

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
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
