//! The reader task: decodes frames from the socket's read half and applies them to
//! the session state (SPDY/3.1 §2.3 stream lifecycle, §2.6 control frames). It owns
//! the incoming header decompression context, so every header block is inflated in
//! wire order, even for streams that end up refused.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{
    DEFAULT_WINDOW, MAX_PEER_STREAMS, MAX_WINDOW, Shared, Stream, StreamCell, StreamState,
    WriteCmd, lock,
};
use crate::spdy::frame::{self, Frame, GoAwayStatus, RstStatus};
use crate::spdy::headers::{self, HeaderDecoder, HeaderError};
use crate::spdy::{Headers, SpdyError};

/// Control frames larger than this are a protocol error: k8s header blocks are tiny,
/// and this keeps a hostile peer from making us buffer 16 MiB.
const MAX_CONTROL_FRAME: usize = 2 << 20;

/// After the session ended on this side, the reader keeps reading (and discarding) until
/// the peer closes or this long has passed. Closing a socket that still holds unread input
/// makes the kernel answer with RST instead of FIN, and a peer that receives RST may drop
/// what it has not read yet: the last frames we sent, e.g. an exec's exit status and FIN
/// (the "lingering close" HTTP servers do for the same reason).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Discard input until EOF, an error or [`LINGER`].
async fn linger<R: AsyncRead + Unpin>(io: &mut R) {
    let mut sink = [0u8; 8 << 10];
    let drain = async {
        while let Ok(read) = io.read(&mut sink).await {
            if read == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// How a frame handler wants the read loop to continue.
enum Next {
    Continue,
    /// Pause until this stream's buffer drains (peer ignores flow control).
    PauseOn(Arc<StreamCell>),
    /// The session should end cleanly (GOAWAY received, nothing left).
    End,
}

pub(crate) async fn run<R>(shared: Arc<Shared>, mut io: R)
where
    R: AsyncRead + Unpin,
{
    let mut reader = Reader {
        shared: shared.clone(),
        dec: HeaderDecoder::default(),
    };
    match reader.read_loop(&mut io).await {
        Ok(()) => shared.end(None, None),
        Err(
            e @ (SpdyError::Frame(_) | SpdyError::Protocol { .. } | SpdyError::HeaderBlock { .. }),
        ) => shared.end(Some(GoAwayStatus::PROTOCOL_ERROR), Some(e)),
        Err(e) => shared.end(None, Some(e)),
    }
    tracing::debug!(server = shared.is_server, "spdy reader finished");
    shared.task_done();
}

struct Reader {
    shared: Arc<Shared>,
    dec: HeaderDecoder,
}

fn protocol(reason: String) -> SpdyError {
    SpdyError::Protocol { reason }
}

impl Reader {
    async fn read_loop<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<(), SpdyError> {
        let mut ended = self.shared.ended_tx.subscribe();
        let limits = frame::Limits {
            max_control_len: MAX_CONTROL_FRAME,
            max_data_len: frame::MAX_PAYLOAD_LEN,
        };
        let mut buf = BytesMut::with_capacity(32 << 10);
        loop {
            while let Some(f) = frame::decode_with(&mut buf, limits)? {
                match self.handle(f)? {
                    Next::Continue => {}
                    Next::End => {
                        linger(io).await;
                        return Ok(());
                    }
                    Next::PauseOn(cell) => self.pause(&cell).await,
                }
            }
            if *ended.borrow() {
                linger(io).await;
                return Ok(());
            }
            if buf.capacity() - buf.len() < (8 << 10) {
                buf.reserve(32 << 10);
            }
            let read = tokio::select! {
                r = io.read_buf(&mut buf) => Some(r.map_err(|source| SpdyError::Io { context: "reading frames", source })?),
                _ = ended.wait_for(|e| *e) => None,
            };
            let Some(n) = read else {
                linger(io).await;
                return Ok(());
            };
            if n == 0 {
                if !buf.is_empty() {
                    return Err(SpdyError::Io {
                        context: "reading frames",
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!(
                                "connection closed inside a frame ({} bytes pending)",
                                buf.len()
                            ),
                        ),
                    });
                }
                tracing::debug!(
                    server = self.shared.is_server,
                    "spdy peer closed the connection"
                );
                return Ok(());
            }
        }
    }

    /// Waits until the application drained `cell` below one window, or the stream or
    /// session went away.
    async fn pause(&self, cell: &StreamCell) {
        loop {
            let notified = self.shared.reader_resume.notified();
            {
                let ended = lock(&self.shared.state).ended;
                let ss = lock(&cell.state);
                if ended || ss.reset || ss.detached || ss.buffered as i64 <= DEFAULT_WINDOW {
                    return;
                }
            }
            notified.await;
        }
    }

    fn decode_headers(
        &mut self,
        stream_id: u32,
        block: &[u8],
    ) -> Result<Result<Headers, HeaderError>, SpdyError> {
        match self.dec.decode(block) {
            Err(e) if e.is_fatal() => Err(SpdyError::HeaderBlock {
                stream_id,
                source: e,
            }),
            other => Ok(other),
        }
    }

    fn handle(&mut self, f: Frame) -> Result<Next, SpdyError> {
        match f {
            Frame::Data(d) => self.on_data(d),
            Frame::SynStream(s) => self.on_syn_stream(s),
            Frame::SynReply(r) => {
                let headers = self.decode_headers(r.stream_id, &r.header_block)?;
                self.on_reply(r.stream_id, headers, r.flags, true)
            }
            Frame::Headers(h) => {
                let headers = self.decode_headers(h.stream_id, &h.header_block)?;
                self.on_reply(h.stream_id, headers, h.flags, false)
            }
            Frame::RstStream(r) => Ok(self.on_rst(r)),
            Frame::Settings(s) => self.on_settings(s),
            Frame::Ping(p) => {
                self.on_ping(p.id);
                Ok(Next::Continue)
            }
            Frame::GoAway(g) => Ok(self.on_goaway(g)),
            Frame::WindowUpdate(w) => self.on_window_update(w),
            Frame::Unknown(u) => {
                tracing::debug!(
                    frame_type = u.frame_type,
                    "ignoring unknown spdy control frame"
                );
                Ok(Next::Continue)
            }
        }
    }

    fn on_syn_stream(&mut self, s: frame::SynStream) -> Result<Next, SpdyError> {
        let headers = self.decode_headers(s.stream_id, &s.header_block)?;
        let sh = self.shared.clone();
        let id = s.stream_id;
        if id == 0 || sh.is_local_id(id) {
            return Err(protocol(format!(
                "peer opened stream {id} with an id of the wrong parity"
            )));
        }
        // Taken before the lock and dropped after it: dropping the last guard ends
        // the session, which takes the lock.
        let guard = sh.guard.get().and_then(|w| w.upgrade());
        let mut st = lock(&sh.state);
        if id <= st.last_peer_id {
            return Err(protocol(format!(
                "peer opened stream {id} after stream {}: ids must increase",
                st.last_peer_id
            )));
        }
        st.last_peer_id = id;
        let headers = match headers {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(stream_id = id, error = %e, "refusing spdy stream with invalid headers");
                sh.rst(id, RstStatus::PROTOCOL_ERROR);
                drop(st);
                drop(guard);
                return Ok(Next::Continue);
            }
        };
        let peer_streams = st.streams.keys().filter(|k| !sh.is_local_id(**k)).count();
        let incoming = st.incoming.clone();
        let refuse =
            st.goaway_sent || st.goaway_received || st.ended || peer_streams >= MAX_PEER_STREAMS;
        let (guard, incoming) = match (guard, incoming) {
            (Some(g), Some(i)) if !refuse => (g, i),
            unused => {
                sh.rst(id, RstStatus::REFUSED_STREAM);
                // Unlock before `unused` (maybe the last guard) is dropped.
                drop(st);
                drop(unused);
                return Ok(Next::Continue);
            }
        };
        let mut ss = StreamState::new(st.peer_initial_window);
        ss.recv_fin = s.flags & frame::FLAG_FIN != 0;
        let unidirectional = s.flags & frame::FLAG_UNIDIRECTIONAL != 0;
        ss.send_fin = unidirectional;
        let finished = ss.finished();
        let cell = Arc::new(StreamCell {
            id,
            headers,
            state: std::sync::Mutex::new(ss),
        });
        if !finished {
            st.streams.insert(id, cell.clone());
        }
        if !unidirectional {
            // apimachinery answers every accepted stream with an empty SYN_REPLY.
            let raw = headers::encode_block(&Headers::new()).unwrap_or_default();
            sh.send(WriteCmd::SynReply {
                stream_id: id,
                raw,
                flags: 0,
            });
        }
        drop(st);
        // Outside the lock: if the receiver is gone the stream is dropped, and a
        // stream's drop takes the lock (it resets the stream).
        let stream = Stream::new(cell, sh.clone(), guard);
        let _ = incoming.send(stream);
        Ok(Next::Continue)
    }

    fn on_reply(
        &mut self,
        id: u32,
        headers: Result<Headers, HeaderError>,
        flags: u8,
        is_reply: bool,
    ) -> Result<Next, SpdyError> {
        let sh = self.shared.clone();
        let mut st = lock(&sh.state);
        let Some(cell) = st.streams.get(&id).cloned() else {
            return Ok(Next::Continue);
        };
        let mut ss = lock(&cell.state);
        let headers = match headers {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(stream_id = id, error = %e, "resetting spdy stream with invalid headers");
                sh.rst(id, RstStatus::PROTOCOL_ERROR);
                return Ok(end_if(reset_locked(&sh, &mut st, &mut ss, id)));
            }
        };
        if is_reply {
            if !sh.is_local_id(id) || ss.reply.is_some() {
                tracing::debug!(stream_id = id, "ignoring unexpected spdy SYN_REPLY");
                return Ok(Next::Continue);
            }
            ss.reply = Some(headers);
        } else if let Some(reply) = ss.reply.as_mut() {
            reply.extend(headers);
        }
        ss.wake_reader();
        if flags & frame::FLAG_FIN != 0 && !ss.recv_fin {
            ss.recv_fin = true;
            if ss.finished() && sh.forget(&mut st, id) {
                return Ok(Next::End);
            }
        }
        Ok(Next::Continue)
    }

    fn on_data(&mut self, d: frame::Data) -> Result<Next, SpdyError> {
        let sh = self.shared.clone();
        let id = d.stream_id;
        if id == 0 {
            return Err(protocol("DATA frame on stream 0".into()));
        }
        let len = d.data.len();
        let fin = d.flags & frame::FLAG_FIN != 0;
        let mut st = lock(&sh.state);
        let Some(cell) = st.streams.get(&id).cloned() else {
            // Unknown stream: release the session window the bytes used.
            if let Some(w) = st.ack_session(len) {
                sh.send_frame(w);
            }
            let known = if sh.is_local_id(id) {
                id < st.next_id
            } else {
                id <= st.last_peer_id
            };
            if !known && !st.goaway_sent {
                sh.rst(id, RstStatus::INVALID_STREAM);
            }
            return Ok(Next::Continue);
        };
        let mut ss = lock(&cell.state);
        if ss.recv_fin {
            tracing::debug!(stream_id = id, len, "resetting spdy stream: DATA after FIN");
            if let Some(w) = st.ack_session(len) {
                sh.send_frame(w);
            }
            sh.rst(id, RstStatus::STREAM_ALREADY_CLOSED);
            return Ok(end_if(reset_locked(&sh, &mut st, &mut ss, id)));
        }
        // Deliberately no FLOW_CONTROL_ERROR when the window is overrun: spdystream
        // never honours windows, and a crust peer may send before it has seen our
        // SETTINGS. Overruns are bounded by pausing the reader below instead.
        ss.recv_window -= len as i64;
        if ss.detached {
            // Nobody will read: release the windows at once.
            if let Some(w) = st.ack_session(len) {
                sh.send_frame(w);
            }
            ss.recv_unacked = ss.recv_unacked.saturating_add(len as u32);
            if !fin && ss.recv_unacked >= super::ACK_THRESHOLD {
                let delta = std::mem::take(&mut ss.recv_unacked);
                ss.recv_window += i64::from(delta);
                sh.send_frame(Frame::WindowUpdate(frame::WindowUpdate {
                    stream_id: id,
                    delta,
                }));
            }
        } else if len > 0 {
            ss.buf.push_back(d.data);
            ss.buffered += len;
            ss.wake_reader();
        }
        if fin {
            ss.recv_fin = true;
            ss.wake_reader();
            if ss.finished() && sh.forget(&mut st, id) {
                return Ok(Next::End);
            }
        }
        if !ss.detached && ss.buffered as i64 > DEFAULT_WINDOW {
            drop(ss);
            return Ok(Next::PauseOn(cell));
        }
        Ok(Next::Continue)
    }

    fn on_rst(&mut self, r: frame::RstStream) -> Next {
        let sh = self.shared.clone();
        tracing::debug!(
            stream_id = r.stream_id,
            status = r.status.0,
            "spdy stream reset by peer"
        );
        let mut st = lock(&sh.state);
        let Some(cell) = st.streams.get(&r.stream_id).cloned() else {
            return Next::Continue;
        };
        let mut ss = lock(&cell.state);
        end_if(reset_locked(&sh, &mut st, &mut ss, r.stream_id))
    }

    fn on_settings(&mut self, s: frame::Settings) -> Result<Next, SpdyError> {
        let mut st = lock(&self.shared.state);
        st.peer_flow_control = true;
        for e in &s.entries {
            if e.id != frame::SETTINGS_INITIAL_WINDOW_SIZE {
                continue;
            }
            let value = i64::from(e.value);
            if value > MAX_WINDOW {
                return Err(protocol(format!(
                    "SETTINGS_INITIAL_WINDOW_SIZE {value} exceeds 2^31-1"
                )));
            }
            let delta = value - st.peer_initial_window;
            st.peer_initial_window = value;
            for cell in st.streams.values() {
                lock(&cell.state).send_window += delta;
            }
        }
        st.wake_writers();
        Ok(Next::Continue)
    }

    fn on_ping(&mut self, id: u32) {
        let sh = self.shared.clone();
        // Odd ids are client-initiated, even ids server-initiated (§2.6.5).
        let ours = id.is_multiple_of(2) == sh.is_server;
        if !ours {
            sh.send_frame(Frame::Ping(frame::Ping { id }));
            return;
        }
        let tx = lock(&sh.state).pings.remove(&id);
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
    }

    fn on_goaway(&mut self, g: frame::GoAway) -> Next {
        let sh = self.shared.clone();
        tracing::debug!(
            last_good = g.last_good_stream_id,
            status = g.status.0,
            "spdy peer sent GOAWAY"
        );
        let mut st = lock(&sh.state);
        st.goaway_received = true;
        // Our streams above the last good id were never seen by the peer.
        let unseen: Vec<u32> = st
            .streams
            .keys()
            .copied()
            .filter(|id| sh.is_local_id(*id) && *id > g.last_good_stream_id)
            .collect();
        for id in unseen {
            if let Some(cell) = st.streams.remove(&id) {
                let mut ss = lock(&cell.state);
                ss.reset = true;
                ss.wake_reader();
            }
        }
        st.wake_writers();
        if st.streams.is_empty() {
            Next::End
        } else {
            Next::Continue
        }
    }

    fn on_window_update(&mut self, w: frame::WindowUpdate) -> Result<Next, SpdyError> {
        let sh = self.shared.clone();
        let mut st = lock(&sh.state);
        st.peer_flow_control = true;
        let delta = i64::from(w.delta);
        if delta == 0 {
            tracing::debug!(
                stream_id = w.stream_id,
                "ignoring WINDOW_UPDATE with delta 0"
            );
            return Ok(Next::Continue);
        }
        if w.stream_id == 0 {
            st.send_window += delta;
            if st.send_window > MAX_WINDOW {
                return Err(protocol(format!(
                    "session send window overflows to {}",
                    st.send_window
                )));
            }
            st.wake_writers();
            return Ok(Next::Continue);
        }
        let Some(cell) = st.streams.get(&w.stream_id).cloned() else {
            return Ok(Next::Continue);
        };
        let mut ss = lock(&cell.state);
        ss.send_window += delta;
        if ss.send_window > MAX_WINDOW {
            sh.rst(w.stream_id, RstStatus::FLOW_CONTROL_ERROR);
            return Ok(end_if(reset_locked(&sh, &mut st, &mut ss, w.stream_id)));
        }
        drop(ss);
        st.wake_writers();
        Ok(Next::Continue)
    }
}

fn end_if(end: bool) -> Next {
    if end { Next::End } else { Next::Continue }
}

/// Marks a stream reset (both halves over), drops its buffered data, releases the
/// session window that data held, and forgets it. Returns whether the session should
/// now end (GOAWAY received and nothing left).
pub(crate) fn reset_locked(
    sh: &Shared,
    st: &mut super::State,
    ss: &mut StreamState,
    id: u32,
) -> bool {
    ss.reset = true;
    let dropped = std::mem::take(&mut ss.buffered);
    ss.buf.clear();
    ss.wake_reader();
    if let Some(w) = st.ack_session(dropped) {
        sh.send_frame(w);
    }
    st.wake_writers();
    sh.reader_resume.notify_one();
    sh.forget(st, id)
}
