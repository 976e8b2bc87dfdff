//! The writer task: the only owner of the socket's write half and of the outgoing
//! header compression context. Frames are written in queue order, which keeps stream
//! ids increasing on the wire and header blocks in zlib-context order; small frames
//! queued together are coalesced into one write.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{CLOSE_GRACE, Shared, lock};
use crate::spdy::SpdyError;
use crate::spdy::frame::{self, Frame};
use crate::spdy::headers::HeaderEncoder;

/// Coalesce queued frames up to this many bytes per socket write.
const BATCH: usize = 64 << 10;

pub(crate) enum WriteCmd {
    /// Any frame without a header block.
    Frame(Frame),
    /// Stream data (counted in `State::queued_bytes` until written).
    Data {
        stream_id: u32,
        data: Bytes,
        fin: bool,
    },
    /// Frames with an uncompressed name/value block to compress in order.
    SynStream {
        stream_id: u32,
        raw: Vec<u8>,
        flags: u8,
    },
    SynReply {
        stream_id: u32,
        raw: Vec<u8>,
        flags: u8,
    },
    /// Flush everything queued before, shut the write half down and exit.
    Shutdown,
}

pub(crate) async fn run<W>(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<WriteCmd>,
    mut io: W,
) where
    W: AsyncWrite + Unpin,
{
    let result = write_loop(&shared, &mut rx, &mut io).await;
    if let Err(e) = result {
        shared.end(None, Some(e));
    }
    // Best effort: the peer may already be gone.
    let _ = tokio::time::timeout(CLOSE_GRACE, io.shutdown()).await;
    tracing::debug!(server = shared.is_server, "spdy writer finished");
    shared.task_done();
}

async fn write_loop<W>(
    shared: &Shared,
    rx: &mut mpsc::UnboundedReceiver<WriteCmd>,
    io: &mut W,
) -> Result<(), SpdyError>
where
    W: AsyncWrite + Unpin,
{
    let mut enc = HeaderEncoder::new().map_err(|source| SpdyError::HeaderBlock {
        stream_id: 0,
        source,
    })?;
    let mut buf = BytesMut::with_capacity(BATCH);
    let mut ended = shared.ended_tx.subscribe();
    loop {
        let Some(first) = rx.recv().await else {
            return Ok(());
        };
        let mut data_bytes = 0usize;
        let mut shutdown = false;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                WriteCmd::Shutdown => {
                    shutdown = true;
                    break;
                }
                WriteCmd::Data {
                    stream_id,
                    data,
                    fin,
                } => {
                    data_bytes += data.len();
                    let flags = if fin { frame::FLAG_FIN } else { 0 };
                    encode(
                        &mut buf,
                        Frame::Data(frame::Data {
                            stream_id,
                            flags,
                            data,
                        }),
                    )?;
                }
                WriteCmd::Frame(f) => encode(&mut buf, f)?,
                WriteCmd::SynStream {
                    stream_id,
                    raw,
                    flags,
                } => {
                    let header_block = compress(&mut enc, stream_id, &raw)?;
                    encode(
                        &mut buf,
                        Frame::SynStream(frame::SynStream {
                            stream_id,
                            associated_id: 0,
                            priority: 0,
                            slot: 0,
                            flags,
                            header_block,
                        }),
                    )?;
                }
                WriteCmd::SynReply {
                    stream_id,
                    raw,
                    flags,
                } => {
                    let header_block = compress(&mut enc, stream_id, &raw)?;
                    encode(
                        &mut buf,
                        Frame::SynReply(frame::SynReply {
                            stream_id,
                            flags,
                            header_block,
                        }),
                    )?;
                }
            }
            if buf.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !buf.is_empty() {
            let write = async {
                io.write_all(&buf).await?;
                io.flush().await
            };
            // Once the session has ended, give a stuck peer only a grace period.
            let res = tokio::select! {
                r = write => r,
                _ = async {
                    let _ = ended.wait_for(|e| *e).await;
                    tokio::time::sleep(CLOSE_GRACE).await;
                } => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "peer stopped reading")),
            };
            res.map_err(|source| SpdyError::Io {
                context: "writing frames",
                source,
            })?;
            buf.clear();
        }
        if data_bytes > 0 {
            let mut st = lock(&shared.state);
            st.queued_bytes = st.queued_bytes.saturating_sub(data_bytes);
            st.wake_writers();
        }
        if shutdown {
            return Ok(());
        }
    }
}

fn encode(buf: &mut BytesMut, f: Frame) -> Result<(), SpdyError> {
    f.encode(buf).map_err(|e| SpdyError::Protocol {
        reason: format!("cannot encode outgoing frame: {e}"),
    })
}

fn compress(enc: &mut HeaderEncoder, stream_id: u32, raw: &[u8]) -> Result<Bytes, SpdyError> {
    enc.compress(raw)
        .map_err(|source| SpdyError::HeaderBlock { stream_id, source })
}
