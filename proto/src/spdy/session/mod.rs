//! An async SPDY/3.1 session over one byte stream (an upgraded HTTP/1.1 connection).
//!
//! Two tasks own the socket: the reader task decodes frames and updates the shared
//! state; the writer task owns the write half and the outgoing zlib context and
//! writes frames in the order they were queued (header blocks must be compressed in
//! wire order). Application handles ([`Session`], [`Incoming`], [`Stream`]) only
//! touch the shared state and queue frames. Lock order: session state, then a
//! stream's state; a `Stream` is never dropped while a lock is held (its drop locks).
//!
//! Flow control (SPDY/3.1 §2.6.8): we advertise 64 KiB per stream and per session and
//! send WINDOW_UPDATE as the application reads, so a slow reader stops a compliant
//! peer. moby/spdystream (kubelet, kubectl) ignores WINDOW_UPDATE and SETTINGS and
//! never sends them, so windows are only *enforced* once the peer shows it speaks
//! flow control (it sent SETTINGS or WINDOW_UPDATE); before that we still account
//! windows. A peer that overfills a stream's buffer beyond one window is not reset
//! (FLOW_CONTROL_ERROR) but slowed by pausing the reader task until the application
//! drains it: TCP back-pressure, what spdystream itself relies on. The cost is
//! head-of-line blocking of the other streams while paused, as with spdystream.

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod raw_peer_tests;
mod reader;
mod stream;
#[cfg(test)]
mod tests;
mod writer;

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc, oneshot, watch};

pub use stream::{RecvHalf, SendHalf, Stream};
use writer::WriteCmd;

use super::frame::{self, Frame, GoAwayStatus, RstStatus};
use super::headers::{self, DEFAULT_MAX_BLOCK};
use super::{Headers, SpdyError};

/// Initial per-stream and session window (SPDY/3.1 default).
pub(crate) const DEFAULT_WINDOW: i64 = 64 << 10;
/// Largest window the protocol allows.
pub(crate) const MAX_WINDOW: i64 = 0x7FFF_FFFF;
/// Largest DATA payload we send (the brief: 32 KiB or less).
pub(crate) const MAX_DATA_FRAME: usize = 16 << 10;
/// Bytes queued for the writer before writers wait (bounds memory when the peer does
/// not do flow control).
pub(crate) const WRITE_BUDGET: usize = 256 << 10;
/// Consumed bytes that trigger a WINDOW_UPDATE (half a window).
pub(crate) const ACK_THRESHOLD: u32 = (DEFAULT_WINDOW / 2) as u32;
/// Peer-opened streams alive at once; more are refused.
pub(crate) const MAX_PEER_STREAMS: usize = 1024;
/// How long the writer may keep trying to flush after the session ended.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update; the state is
    // still the best information we have.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wake_all(wakers: &mut Vec<Waker>) {
    for w in wakers.drain(..) {
        w.wake();
    }
}

pub(crate) struct StreamCell {
    pub(crate) id: u32,
    pub(crate) headers: Headers,
    pub(crate) state: Mutex<StreamState>,
}

#[derive(Default)]
pub(crate) struct StreamState {
    pub(crate) buf: VecDeque<Bytes>,
    pub(crate) buffered: usize,
    /// The peer closed its half (FIN).
    pub(crate) recv_fin: bool,
    /// We closed our half (FIN queued).
    pub(crate) send_fin: bool,
    /// RST_STREAM sent or received: both halves are over.
    pub(crate) reset: bool,
    /// The session ended before this stream finished.
    pub(crate) aborted: bool,
    /// All handles dropped after our FIN: incoming data is discarded.
    pub(crate) detached: bool,
    pub(crate) send_window: i64,
    pub(crate) recv_window: i64,
    pub(crate) recv_unacked: u32,
    pub(crate) reply: Option<Headers>,
    pub(crate) read_waker: Option<Waker>,
    pub(crate) reply_wakers: Vec<Waker>,
}

impl StreamState {
    fn new(send_window: i64) -> Self {
        Self {
            send_window,
            recv_window: DEFAULT_WINDOW,
            ..Default::default()
        }
    }

    pub(crate) fn finished(&self) -> bool {
        self.reset || (self.recv_fin && self.send_fin)
    }

    pub(crate) fn wake_reader(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        wake_all(&mut self.reply_wakers);
    }
}

pub(crate) struct State {
    pub(crate) streams: HashMap<u32, Arc<StreamCell>>,
    pub(crate) next_id: u32,
    pub(crate) last_peer_id: u32,
    pub(crate) peer_initial_window: i64,
    pub(crate) send_window: i64,
    pub(crate) recv_unacked: u32,
    pub(crate) peer_flow_control: bool,
    pub(crate) queued_bytes: usize,
    pub(crate) write_wakers: Vec<Waker>,
    pub(crate) goaway_received: bool,
    pub(crate) goaway_sent: bool,
    pub(crate) ended: bool,
    pub(crate) error: Option<Arc<SpdyError>>,
    pub(crate) incoming: Option<mpsc::UnboundedSender<Stream>>,
    pub(crate) pings: HashMap<u32, oneshot::Sender<()>>,
    pub(crate) next_ping: u32,
}

impl State {
    pub(crate) fn wake_writers(&mut self) {
        wake_all(&mut self.write_wakers);
    }

    /// Counts `n` consumed (or discarded) bytes against the session window and
    /// returns the WINDOW_UPDATE to send, if due.
    pub(crate) fn ack_session(&mut self, n: usize) -> Option<Frame> {
        self.recv_unacked = self.recv_unacked.saturating_add(n as u32);
        if self.recv_unacked < ACK_THRESHOLD || self.ended {
            return None;
        }
        let delta = std::mem::take(&mut self.recv_unacked);
        Some(Frame::WindowUpdate(frame::WindowUpdate {
            stream_id: 0,
            delta,
        }))
    }
}

/// What the session shares between its tasks and handles.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) tx: mpsc::UnboundedSender<WriteCmd>,
    pub(crate) is_server: bool,
    /// Wakes the reader task paused on a full stream buffer.
    pub(crate) reader_resume: Notify,
    pub(crate) ended_tx: watch::Sender<bool>,
    /// Number of the two tasks that have exited.
    pub(crate) tasks_done: watch::Sender<u8>,
    pub(crate) guard: OnceLock<Weak<Guard>>,
}

impl Shared {
    pub(crate) fn send(&self, cmd: WriteCmd) {
        // Fails only once the writer has exited, when nothing can be sent anyway.
        let _ = self.tx.send(cmd);
    }

    pub(crate) fn send_frame(&self, f: Frame) {
        self.send(WriteCmd::Frame(f));
    }

    pub(crate) fn rst(&self, stream_id: u32, status: RstStatus) {
        self.send_frame(Frame::RstStream(frame::RstStream { stream_id, status }));
    }

    /// Whether `id` is of the parity this side allocates.
    pub(crate) fn is_local_id(&self, id: u32) -> bool {
        id.is_multiple_of(2) == self.is_server
    }

    /// Drops a finished stream from the table; returns true when the session should
    /// end because the peer said GOAWAY and nothing is left.
    pub(crate) fn forget(&self, st: &mut State, id: u32) -> bool {
        st.streams.remove(&id);
        st.goaway_received && st.streams.is_empty() && !st.ended
    }

    /// Ends the session: optionally queues GOAWAY, makes the writer flush and close,
    /// stops the reader, and fails every pending operation. Idempotent.
    pub(crate) fn end(&self, goaway: Option<GoAwayStatus>, error: Option<SpdyError>) {
        let (streams, incoming, pings) = {
            let mut st = lock(&self.state);
            if st.ended {
                return;
            }
            st.ended = true;
            if let Some(e) = error {
                tracing::warn!(error = %e, server = self.is_server, "spdy session failed");
                st.error = Some(Arc::new(e));
            }
            if let Some(status) = goaway
                && !st.goaway_sent
            {
                st.goaway_sent = true;
                self.send_frame(Frame::GoAway(frame::GoAway {
                    last_good_stream_id: st.last_peer_id,
                    status,
                }));
            }
            self.send(WriteCmd::Shutdown);
            st.wake_writers();
            let streams: Vec<_> = st.streams.drain().map(|(_, c)| c).collect();
            (streams, st.incoming.take(), std::mem::take(&mut st.pings))
        };
        for cell in streams {
            let mut ss = lock(&cell.state);
            ss.aborted = true;
            ss.wake_reader();
        }
        drop(incoming);
        drop(pings);
        self.reader_resume.notify_one();
        self.ended_tx.send_replace(true);
    }

    pub(crate) fn closed_error(&self) -> SpdyError {
        SpdyError::Closed {
            cause: lock(&self.state).error.clone(),
        }
    }

    pub(crate) fn task_done(&self) {
        self.tasks_done.send_modify(|n| *n += 1);
    }
}

/// Keeps the session alive while any application handle exists; the last one to go
/// closes the session (GOAWAY OK) so abandoned connections do not leak tasks.
pub(crate) struct Guard {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.end(Some(GoAwayStatus::OK), None);
    }
}

/// A SPDY/3.1 session. Cheap to clone; all clones drive the same connection.
#[derive(Clone)]
pub struct Session {
    guard: Arc<Guard>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.guard.shared.is_server)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Streams opened by the peer, already answered with SYN_REPLY.
pub struct Incoming {
    rx: mpsc::UnboundedReceiver<Stream>,
    _guard: Arc<Guard>,
}

impl Incoming {
    /// The next stream the peer opened; `None` once the session has ended.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.rx.recv().await
    }
}

impl Session {
    /// Server side of an upgraded connection; streams the peer opens arrive on
    /// `Incoming`, already answered with SYN_REPLY (as apimachinery's server does).
    /// Must be called inside a tokio runtime (it spawns the reader and writer tasks).
    pub fn server<T>(io: T) -> (Session, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::start(io, true)
    }

    /// Client side (odd stream ids). Streams the peer opens (rare) arrive on `Incoming`.
    pub fn client<T>(io: T) -> (Session, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::start(io, false)
    }

    fn start<T>(io: T, is_server: bool) -> (Session, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let state = State {
            streams: HashMap::new(),
            next_id: if is_server { 2 } else { 1 },
            last_peer_id: 0,
            peer_initial_window: DEFAULT_WINDOW,
            send_window: DEFAULT_WINDOW,
            recv_unacked: 0,
            peer_flow_control: false,
            queued_bytes: 0,
            write_wakers: Vec::new(),
            goaway_received: false,
            goaway_sent: false,
            ended: false,
            error: None,
            incoming: Some(in_tx),
            pings: HashMap::new(),
            next_ping: if is_server { 2 } else { 1 },
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            tx,
            is_server,
            reader_resume: Notify::new(),
            ended_tx: watch::Sender::new(false),
            tasks_done: watch::Sender::new(0),
            guard: OnceLock::new(),
        });
        let guard = Arc::new(Guard {
            shared: shared.clone(),
        });
        let _ = shared.guard.set(Arc::downgrade(&guard));
        // Announce our window first: it also tells a crust peer that we enforce flow
        // control (spdystream ignores the frame).
        shared.send_frame(Frame::Settings(frame::Settings {
            flags: 0,
            entries: vec![frame::Setting {
                flags: 0,
                id: frame::SETTINGS_INITIAL_WINDOW_SIZE,
                value: DEFAULT_WINDOW as u32,
            }],
        }));
        let (read_half, write_half) = tokio::io::split(io);
        tokio::spawn(writer::run(shared.clone(), rx, write_half));
        tokio::spawn(reader::run(shared.clone(), read_half));
        let session = Session {
            guard: guard.clone(),
        };
        let incoming = Incoming {
            rx: in_rx,
            _guard: guard,
        };
        (session, incoming)
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.guard.shared
    }

    /// Open a stream (SYN_STREAM with these headers); returns once the frame is queued.
    /// Reading from the stream before SYN_REPLY arrives just waits.
    pub async fn open(&self, headers: Headers) -> Result<Stream, SpdyError> {
        let raw = headers::encode_block(&headers).map_err(SpdyError::InvalidHeaders)?;
        if raw.len() > DEFAULT_MAX_BLOCK {
            return Err(SpdyError::InvalidHeaders(headers::HeaderError::TooLarge {
                limit: DEFAULT_MAX_BLOCK,
            }));
        }
        let shared = self.shared();
        let mut st = lock(&shared.state);
        if st.ended || st.goaway_sent {
            drop(st);
            return Err(shared.closed_error());
        }
        if st.goaway_received {
            return Err(SpdyError::GoingAway);
        }
        let id = st.next_id;
        if id > frame::MAX_STREAM_ID {
            return Err(SpdyError::StreamIdsExhausted);
        }
        st.next_id += 2;
        let cell = Arc::new(StreamCell {
            id,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect(),
            state: Mutex::new(StreamState::new(st.peer_initial_window)),
        });
        st.streams.insert(id, cell.clone());
        // Queued under the lock so stream ids reach the wire in increasing order.
        shared.send(WriteCmd::SynStream {
            stream_id: id,
            raw,
            flags: 0,
        });
        drop(st);
        Ok(Stream::new(cell, shared.clone(), self.guard.clone()))
    }

    /// Send GOAWAY, flush, and close the connection.
    pub async fn close(&self) {
        self.shared().end(Some(GoAwayStatus::OK), None);
        self.closed().await;
    }

    /// Resolves when the connection has ended (peer closed, GOAWAY, I/O error, close())
    /// and both session tasks have released the socket.
    pub async fn closed(&self) {
        let mut rx = self.shared().tasks_done.subscribe();
        let _ = rx.wait_for(|n| *n >= 2).await;
    }

    /// Whether the session has ended (the tasks may still be flushing).
    pub fn is_closed(&self) -> bool {
        lock(&self.shared().state).ended
    }

    /// The error that ended the session, if it ended because of one.
    pub fn error(&self) -> Option<Arc<SpdyError>> {
        lock(&self.shared().state).error.clone()
    }

    /// Sends PING and waits for the echo; returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, SpdyError> {
        let shared = self.shared();
        let rx = {
            let mut st = lock(&shared.state);
            if st.ended {
                drop(st);
                return Err(shared.closed_error());
            }
            let id = st.next_ping;
            st.next_ping = st.next_ping.wrapping_add(2);
            let (tx, rx) = oneshot::channel();
            st.pings.insert(id, tx);
            shared.send_frame(Frame::Ping(frame::Ping { id }));
            rx
        };
        let start = Instant::now();
        match rx.await {
            Ok(()) => Ok(start.elapsed()),
            Err(_) => Err(shared.closed_error()),
        }
    }
}
