//! One SPDY stream as tokio `AsyncRead` + `AsyncWrite`, splittable into owned halves
//! (exec pumps stdin and stdout concurrently).
//!
//! Reading returns buffered DATA and sends WINDOW_UPDATE (stream and session) every
//! half window consumed; EOF comes with the peer's FIN or a reset. Writing sends DATA
//! frames of at most `MAX_DATA_FRAME` bytes, never more than the peer's windows once
//! it does flow control, and never more than `WRITE_BUDGET` bytes queued in the
//! writer. `poll_shutdown` sends an empty DATA frame with FIN.
//!
//! Dropping every handle of a stream: if both halves are still open it is reset
//! (RST_STREAM CANCEL: the peer is still sending and nobody will read); if only our
//! half is open it gets a FIN (graceful, like dropping a tokio write half); if only
//! the peer's half is open, its later data is discarded (windows still returned)
//! until its FIN.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::reader::reset_locked;
use super::{
    ACK_THRESHOLD, DEFAULT_WINDOW, Guard, MAX_DATA_FRAME, Shared, StreamCell, WRITE_BUDGET,
    WriteCmd, lock,
};
use crate::spdy::Headers;
use crate::spdy::frame::{self, Frame, GoAwayStatus, RstStatus};

struct Handle {
    cell: Arc<StreamCell>,
    shared: Arc<Shared>,
    _guard: Arc<Guard>,
}

/// A SPDY stream. Both halves of the stream are driven through this handle, or
/// through the [`RecvHalf`] / [`SendHalf`] from [`Stream::into_split`].
pub struct Stream {
    h: Arc<Handle>,
}

/// The reading half of a [`Stream`].
pub struct RecvHalf {
    h: Arc<Handle>,
}

/// The writing half of a [`Stream`].
pub struct SendHalf {
    h: Arc<Handle>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.h.cell.id)
            .finish_non_exhaustive()
    }
}

impl Stream {
    pub(crate) fn new(cell: Arc<StreamCell>, shared: Arc<Shared>, guard: Arc<Guard>) -> Self {
        Self {
            h: Arc::new(Handle {
                cell,
                shared,
                _guard: guard,
            }),
        }
    }

    pub fn id(&self) -> u32 {
        self.h.cell.id
    }

    /// SYN_STREAM headers (for opened streams: what you sent, names lower-cased).
    pub fn headers(&self) -> &Headers {
        &self.h.cell.headers
    }

    /// RST_STREAM CANCEL: both halves end; buffered data is dropped.
    pub fn reset(&self) {
        self.h.reset(RstStatus::CANCEL);
    }

    /// Whether the stream was reset by either side.
    pub fn is_reset(&self) -> bool {
        lock(&self.h.cell.state).reset
    }

    /// Waits for the peer's SYN_REPLY to a stream we opened and returns its headers.
    /// Fails if the stream is reset or the session ends first.
    pub async fn reply(&self) -> io::Result<Headers> {
        std::future::poll_fn(|cx| {
            let mut ss = lock(&self.h.cell.state);
            if let Some(r) = &ss.reply {
                return Poll::Ready(Ok(r.clone()));
            }
            if ss.reset {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "spdy stream was reset",
                )));
            }
            if ss.aborted {
                return Poll::Ready(Err(aborted(self.id())));
            }
            if !ss.reply_wakers.iter().any(|w| w.will_wake(cx.waker())) {
                ss.reply_wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    #[cfg(test)]
    pub(crate) fn h_cell(&self) -> Arc<StreamCell> {
        self.h.cell.clone()
    }

    #[cfg(test)]
    pub(crate) fn h_shared(&self) -> Arc<Shared> {
        self.h.shared.clone()
    }

    /// Splits into independently owned halves.
    pub fn into_split(self) -> (RecvHalf, SendHalf) {
        (RecvHalf { h: self.h.clone() }, SendHalf { h: self.h })
    }
}

impl RecvHalf {
    pub fn id(&self) -> u32 {
        self.h.cell.id
    }
}

impl SendHalf {
    pub fn id(&self) -> u32 {
        self.h.cell.id
    }

    /// RST_STREAM CANCEL: both halves end.
    pub fn reset(&self) {
        self.h.reset(RstStatus::CANCEL);
    }
}

fn aborted(id: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!("spdy session ended before stream {id} finished"),
    )
}

fn broken(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, msg)
}

impl Handle {
    fn reset(&self, status: RstStatus) {
        let sh = &self.shared;
        let end = {
            let mut st = lock(&sh.state);
            let mut ss = lock(&self.cell.state);
            if ss.reset || st.ended {
                return;
            }
            sh.rst(self.cell.id, status);
            reset_locked(sh, &mut st, &mut ss, self.cell.id)
        };
        if end {
            sh.end(Some(GoAwayStatus::OK), None);
        }
    }

    fn poll_read(&self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let sh = &self.shared;
        let id = self.cell.id;
        let mut ss = lock(&self.cell.state);
        if ss.buffered == 0 {
            if ss.recv_fin || ss.reset {
                return Poll::Ready(Ok(()));
            }
            if ss.aborted {
                return Poll::Ready(Err(aborted(id)));
            }
            ss.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let was_over = ss.buffered as i64 > DEFAULT_WINDOW;
        let mut n = 0;
        while out.remaining() > 0 {
            let Some(front) = ss.buf.front_mut() else {
                break;
            };
            let take = front.len().min(out.remaining());
            out.put_slice(&front[..take]);
            front.advance(take);
            if front.is_empty() {
                ss.buf.pop_front();
            }
            n += take;
        }
        ss.buffered -= n;
        let mut stream_ack = None;
        if !ss.recv_fin && !ss.reset {
            ss.recv_unacked = ss.recv_unacked.saturating_add(n as u32);
            if ss.recv_unacked >= ACK_THRESHOLD {
                let delta = std::mem::take(&mut ss.recv_unacked);
                ss.recv_window += i64::from(delta);
                stream_ack = Some(delta);
            }
        }
        drop(ss);
        let mut st = lock(&sh.state);
        if let Some(delta) = stream_ack
            && !st.ended
        {
            sh.send_frame(Frame::WindowUpdate(frame::WindowUpdate {
                stream_id: id,
                delta,
            }));
        }
        if let Some(w) = st.ack_session(n) {
            sh.send_frame(w);
        }
        drop(st);
        if was_over {
            sh.reader_resume.notify_one();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let sh = &self.shared;
        let id = self.cell.id;
        let mut st = lock(&sh.state);
        let mut ss = lock(&self.cell.state);
        if ss.reset {
            return Poll::Ready(Err(broken(format!("spdy stream {id} was reset"))));
        }
        if ss.send_fin {
            return Poll::Ready(Err(broken(format!(
                "spdy stream {id} is closed for writing"
            ))));
        }
        if ss.aborted || st.ended {
            return Poll::Ready(Err(aborted(id)));
        }
        let mut n = buf
            .len()
            .min(MAX_DATA_FRAME)
            .min(WRITE_BUDGET.saturating_sub(st.queued_bytes));
        if st.peer_flow_control {
            let window = st.send_window.min(ss.send_window).max(0);
            n = n.min(usize::try_from(window).unwrap_or(0));
        }
        if n == 0 {
            drop(ss);
            if !st.write_wakers.iter().any(|w| w.will_wake(cx.waker())) {
                st.write_wakers.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        st.send_window -= n as i64;
        ss.send_window -= n as i64;
        st.queued_bytes += n;
        sh.send(WriteCmd::Data {
            stream_id: id,
            data: Bytes::copy_from_slice(&buf[..n]),
            fin: false,
        });
        Poll::Ready(Ok(n))
    }

    fn poll_shutdown(&self) -> Poll<io::Result<()>> {
        let sh = &self.shared;
        let id = self.cell.id;
        let end = {
            let mut st = lock(&sh.state);
            let mut ss = lock(&self.cell.state);
            if ss.send_fin || ss.reset {
                return Poll::Ready(Ok(()));
            }
            if ss.aborted || st.ended {
                return Poll::Ready(Err(aborted(id)));
            }
            ss.send_fin = true;
            sh.send(WriteCmd::Data {
                stream_id: id,
                data: Bytes::new(),
                fin: true,
            });
            ss.finished() && sh.forget(&mut st, id)
        };
        if end {
            sh.end(None, None);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let sh = &self.shared;
        let id = self.cell.id;
        let end = {
            let mut st = lock(&sh.state);
            let mut ss = lock(&self.cell.state);
            if st.ended || ss.finished() {
                false
            } else if !ss.send_fin && ss.recv_fin {
                // The peer is done; finish our half gracefully (like dropping a
                // tokio write half), which also forgets the stream.
                ss.send_fin = true;
                sh.send(WriteCmd::Data {
                    stream_id: id,
                    data: Bytes::new(),
                    fin: true,
                });
                sh.forget(&mut st, id)
            } else if !ss.send_fin {
                // The peer may still be sending and nobody will read it.
                sh.rst(id, RstStatus::CANCEL);
                reset_locked(sh, &mut st, &mut ss, id)
            } else {
                // Our half is done; the peer may still be sending. Discard from now on.
                ss.detached = true;
                let dropped = std::mem::take(&mut ss.buffered);
                ss.buf.clear();
                if let Some(w) = st.ack_session(dropped) {
                    sh.send_frame(w);
                }
                sh.reader_resume.notify_one();
                false
            }
        };
        if end {
            sh.end(None, None);
        }
    }
}

macro_rules! impl_read {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                self.h.poll_read(cx, buf)
            }
        }
    };
}

macro_rules! impl_write {
    ($t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.h.poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                // Data is handed to the writer task as soon as it is accepted.
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.h.poll_shutdown()
            }
        }
    };
}

impl_read!(Stream);
impl_read!(RecvHalf);
impl_write!(Stream);
impl_write!(SendHalf);
