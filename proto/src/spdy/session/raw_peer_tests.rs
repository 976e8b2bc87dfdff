//! Session tests against a hand-driven peer speaking raw frames over a
//! `tokio::io::duplex` pipe: one that behaves like moby/spdystream (no SETTINGS, no
//! WINDOW_UPDATE), one that uses flow control, and one that misbehaves on purpose.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::tests::{hdrs, pattern, timeout};
use super::*;
use crate::spdy::frame::{self, Frame};
use crate::spdy::headers::{HeaderDecoder, HeaderEncoder};

/// A hand-driven peer speaking raw frames, like moby/spdystream: it never sends
/// SETTINGS or WINDOW_UPDATE.
struct RawPeer {
    io: DuplexStream,
    buf: BytesMut,
    enc: HeaderEncoder,
    dec: HeaderDecoder,
}

impl RawPeer {
    fn server() -> (RawPeer, Session, Incoming) {
        let (a, b) = tokio::io::duplex(64 << 10);
        let (session, incoming) = Session::server(b);
        let peer = RawPeer {
            io: a,
            buf: BytesMut::new(),
            enc: HeaderEncoder::new().unwrap(),
            dec: HeaderDecoder::default(),
        };
        (peer, session, incoming)
    }

    async fn send(&mut self, f: Frame) {
        let mut out = BytesMut::new();
        f.encode(&mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    async fn syn_stream(&mut self, id: u32, headers: &Headers) {
        let header_block = self.enc.encode(headers).unwrap();
        self.send(Frame::SynStream(frame::SynStream {
            stream_id: id,
            associated_id: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            header_block,
        }))
        .await;
    }

    /// Next frame, or None on EOF.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = frame::decode(&mut self.buf).unwrap() {
                match &f {
                    Frame::SynReply(r) => {
                        self.dec.decode(&r.header_block).unwrap();
                    }
                    Frame::SynStream(s) => {
                        self.dec.decode(&s.header_block).unwrap();
                    }
                    _ => {}
                }
                return Some(f);
            }
            if timeout(self.io.read_buf(&mut self.buf)).await.unwrap() == 0 {
                return None;
            }
        }
    }
}

#[tokio::test]
async fn peer_without_flow_control_still_gets_all_data() {
    let (mut peer, _session, mut incoming) = RawPeer::server();
    peer.syn_stream(1, &hdrs(&[("streamtype", "stdout")])).await;
    let mut s = timeout(incoming.accept()).await.unwrap();
    let data = pattern(300 << 10);
    let expected = data.clone();
    tokio::spawn(async move {
        s.write_all(&data).await.unwrap();
        s.shutdown().await.unwrap();
        s
    });
    let mut got = Vec::new();
    let mut saw_settings = false;
    let mut saw_reply = false;
    loop {
        match peer.next().await.unwrap() {
            Frame::Settings(_) => saw_settings = true,
            Frame::SynReply(r) => {
                assert_eq!(r.stream_id, 1);
                saw_reply = true;
            }
            Frame::Data(d) => {
                assert!(saw_reply, "DATA before SYN_REPLY");
                assert!(d.data.len() <= MAX_DATA_FRAME);
                got.extend_from_slice(&d.data);
                if d.flags & frame::FLAG_FIN != 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    assert!(saw_settings);
    assert!(got == expected);
}

#[tokio::test]
async fn peer_overrunning_the_window_is_paused_not_buffered() {
    let (mut peer, _session, mut incoming) = RawPeer::server();
    peer.syn_stream(1, &hdrs(&[("streamtype", "stdin")])).await;
    let s = timeout(incoming.accept()).await.unwrap();
    let cell = s.h_cell();
    // 512 KiB without waiting for WINDOW_UPDATE (spdystream does this).
    let sender = tokio::spawn(async move {
        for _ in 0..32 {
            peer.send(Frame::Data(frame::Data {
                stream_id: 1,
                flags: 0,
                data: Bytes::from(vec![7u8; 16 << 10]),
            }))
            .await;
        }
        peer.send(Frame::Data(frame::Data {
            stream_id: 1,
            flags: frame::FLAG_FIN,
            data: Bytes::new(),
        }))
        .await;
        peer
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let buffered = lock(&cell.state).buffered;
    // One frame beyond the window at most, plus whatever the pipe holds.
    assert!(
        buffered as i64 <= DEFAULT_WINDOW + (16 << 10),
        "buffered {buffered}"
    );
    let (mut r, _w) = s.into_split();
    let mut got = Vec::new();
    timeout(r.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got.len(), 512 << 10);
    timeout(sender).await.unwrap();
}

#[tokio::test]
async fn protocol_error_sends_goaway() {
    let (mut peer, session, _incoming) = RawPeer::server();
    peer.send(Frame::Data(frame::Data {
        stream_id: 0,
        flags: 0,
        data: Bytes::from_static(b"x"),
    }))
    .await;
    loop {
        match peer.next().await {
            Some(Frame::GoAway(g)) => {
                assert_eq!(g.status, GoAwayStatus::PROTOCOL_ERROR);
                break;
            }
            Some(_) => {}
            None => panic!("connection closed without GOAWAY"),
        }
    }
    timeout(session.closed()).await;
    let err = session.error().unwrap().to_string();
    assert!(err.contains("stream 0"), "{err}");
}

#[tokio::test]
async fn unknown_stream_data_and_bad_version() {
    let (mut peer, session, _incoming) = RawPeer::server();
    peer.send(Frame::Data(frame::Data {
        stream_id: 41,
        flags: 0,
        data: Bytes::from_static(b"x"),
    }))
    .await;
    loop {
        match peer.next().await.unwrap() {
            Frame::RstStream(r) => {
                assert_eq!(r.stream_id, 41);
                assert_eq!(r.status, RstStatus::INVALID_STREAM);
                break;
            }
            _ => continue,
        }
    }
    // A SPDY/2 frame ends the session.
    peer.io
        .write_all(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1])
        .await
        .unwrap();
    timeout(session.closed()).await;
    assert!(
        session
            .error()
            .unwrap()
            .to_string()
            .contains("invalid frame")
    );
}

#[tokio::test]
async fn dropping_an_open_stream_resets_it() {
    let (mut peer, _session, mut incoming) = RawPeer::server();
    peer.syn_stream(1, &hdrs(&[("streamtype", "stdin")])).await;
    let s = timeout(incoming.accept()).await.unwrap();
    drop(s);
    loop {
        if let Frame::RstStream(r) = peer.next().await.unwrap() {
            assert_eq!(r.stream_id, 1);
            assert_eq!(r.status, RstStatus::CANCEL);
            break;
        }
    }
    // Stream ids must increase.
    peer.syn_stream(1, &Headers::new()).await;
    loop {
        match peer.next().await {
            Some(Frame::GoAway(g)) => {
                assert_eq!(g.status, GoAwayStatus::PROTOCOL_ERROR);
                break;
            }
            Some(_) => {}
            None => panic!("no GOAWAY"),
        }
    }
}

#[tokio::test]
async fn honours_peer_initial_window_and_window_updates() {
    let (mut peer, _session, mut incoming) = RawPeer::server();
    peer.send(Frame::Settings(frame::Settings {
        flags: 0,
        entries: vec![frame::Setting {
            flags: 0,
            id: frame::SETTINGS_INITIAL_WINDOW_SIZE,
            value: 1000,
        }],
    }))
    .await;
    peer.syn_stream(1, &hdrs(&[("streamtype", "stdout")])).await;
    let mut s = timeout(incoming.accept()).await.unwrap();
    tokio::spawn(async move {
        s.write_all(&pattern(5000)).await.unwrap();
        s.shutdown().await.unwrap();
        s
    });
    let mut got = 0;
    while got < 1000 {
        if let Frame::Data(d) = peer.next().await.unwrap() {
            got += d.data.len();
        }
    }
    assert_eq!(got, 1000);
    // Nothing more until the window opens.
    let more = tokio::time::timeout(Duration::from_millis(100), peer.next()).await;
    assert!(more.is_err(), "sent beyond the peer's window: {more:?}");
    peer.send(Frame::WindowUpdate(frame::WindowUpdate {
        stream_id: 1,
        delta: 10_000,
    }))
    .await;
    loop {
        if let Frame::Data(d) = peer.next().await.unwrap() {
            got += d.data.len();
            if d.flags & frame::FLAG_FIN != 0 {
                break;
            }
        }
    }
    assert_eq!(got, 5000);
}

#[tokio::test]
async fn consumption_sends_window_updates() {
    let (mut peer, _session, mut incoming) = RawPeer::server();
    peer.syn_stream(1, &hdrs(&[("streamtype", "stdin")])).await;
    let mut s = timeout(incoming.accept()).await.unwrap();
    for _ in 0..4 {
        peer.send(Frame::Data(frame::Data {
            stream_id: 1,
            flags: 0,
            data: Bytes::from(vec![1u8; 16 << 10]),
        }))
        .await;
    }
    let mut buf = vec![0u8; 64 << 10];
    timeout(s.read_exact(&mut buf)).await.unwrap();
    // Acks go out every half window consumed (32 KiB), so at least that much
    // of each window is returned; the rest stays owed but the peer is not blocked.
    let (mut stream_acked, mut session_acked) = (0, 0);
    while stream_acked < (32 << 10) || session_acked < (32 << 10) {
        if let Frame::WindowUpdate(w) = peer.next().await.unwrap() {
            if w.stream_id == 0 {
                session_acked += w.delta;
            } else {
                assert_eq!(w.stream_id, 1);
                stream_acked += w.delta;
            }
        }
    }
}

#[tokio::test]
async fn answers_peer_ping() {
    let (mut peer, _session, _incoming) = RawPeer::server();
    peer.send(Frame::Ping(frame::Ping { id: 7 })).await;
    loop {
        if let Frame::Ping(p) = peer.next().await.unwrap() {
            assert_eq!(p.id, 7);
            break;
        }
    }
}

#[tokio::test]
async fn peer_goaway_lets_open_streams_finish() {
    let (mut peer, session, mut incoming) = RawPeer::server();
    peer.syn_stream(1, &hdrs(&[("streamtype", "stdout")])).await;
    let mut s = timeout(incoming.accept()).await.unwrap();
    peer.send(Frame::GoAway(frame::GoAway {
        last_good_stream_id: 0,
        status: GoAwayStatus::OK,
    }))
    .await;
    // No new streams from the peer after its GOAWAY... and none from us.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(
        session.open(Headers::new()).await,
        Err(SpdyError::GoingAway)
    ));
    assert!(!session.is_closed());
    s.write_all(b"still flowing").await.unwrap();
    s.shutdown().await.unwrap();
    peer.send(Frame::Data(frame::Data {
        stream_id: 1,
        flags: frame::FLAG_FIN,
        data: Bytes::new(),
    }))
    .await;
    let mut got = Vec::new();
    while let Some(f) = peer.next().await {
        if let Frame::Data(d) = f {
            got.extend_from_slice(&d.data);
        }
    }
    assert_eq!(got, b"still flowing");
    timeout(session.closed()).await;
    assert!(session.error().is_none());
}

#[tokio::test]
async fn dropped_stream_after_fin_discards_peer_data() {
    let (mut peer, session, mut incoming) = RawPeer::server();
    peer.syn_stream(1, &hdrs(&[("streamtype", "stdin")])).await;
    let mut s = timeout(incoming.accept()).await.unwrap();
    s.shutdown().await.unwrap();
    drop(s);
    // The peer keeps sending well beyond one window; nobody reads, yet the reader
    // task must not stall (PING still answered) and windows are given back.
    for _ in 0..16 {
        let data = Bytes::from(vec![3u8; 16 << 10]);
        peer.send(Frame::Data(frame::Data {
            stream_id: 1,
            flags: 0,
            data,
        }))
        .await;
    }
    peer.send(Frame::Ping(frame::Ping { id: 9 })).await;
    let mut acked = 0;
    loop {
        match peer.next().await.unwrap() {
            Frame::WindowUpdate(w) if w.stream_id == 0 => acked += w.delta,
            Frame::Ping(p) => {
                assert_eq!(p.id, 9);
                break;
            }
            _ => {}
        }
    }
    assert!(acked >= 128 << 10, "session window not returned: {acked}");
    peer.send(Frame::Data(frame::Data {
        stream_id: 1,
        flags: frame::FLAG_FIN,
        data: Bytes::new(),
    }))
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(lock(&session.shared().state).streams.is_empty());
}

#[tokio::test]
async fn oversized_initial_window_is_a_protocol_error() {
    let (mut peer, session, _incoming) = RawPeer::server();
    peer.send(Frame::Settings(frame::Settings {
        flags: 0,
        entries: vec![frame::Setting {
            flags: 0,
            id: frame::SETTINGS_INITIAL_WINDOW_SIZE,
            value: 1 << 31,
        }],
    }))
    .await;
    timeout(session.closed()).await;
    let err = session.error().unwrap().to_string();
    assert!(err.contains("SETTINGS_INITIAL_WINDOW_SIZE"), "{err}");
}

#[tokio::test]
async fn dropping_after_peer_fin_sends_fin_not_reset() {
    let (mut peer, session, mut incoming) = RawPeer::server();
    peer.syn_stream(1, &hdrs(&[("streamtype", "stdin")])).await;
    peer.send(Frame::Data(frame::Data {
        stream_id: 1,
        flags: frame::FLAG_FIN,
        data: Bytes::from_static(b"in"),
    }))
    .await;
    let mut s = timeout(incoming.accept()).await.unwrap();
    let mut got = Vec::new();
    timeout(s.read_to_end(&mut got)).await.unwrap();
    drop(s);
    loop {
        match peer.next().await.unwrap() {
            Frame::Data(d) => {
                assert_eq!(d.stream_id, 1);
                assert_eq!(d.flags, frame::FLAG_FIN);
                break;
            }
            Frame::RstStream(r) => panic!("unexpected {r:?}"),
            _ => {}
        }
    }
    assert!(lock(&session.shared().state).streams.is_empty());
}

#[tokio::test]
async fn close_keeps_reading_until_the_peer_closes() {
    // Closing a socket with unread input makes the kernel send RST, which can destroy
    // the last frames we sent before the peer reads them: after its GOAWAY and FIN the
    // session goes on reading (and discarding) until the peer closes too.
    let (mut peer, session, _incoming) = RawPeer::server();
    let closing = session.clone();
    tokio::spawn(async move { closing.close().await });
    let mut saw_goaway = false;
    while let Some(f) = timeout(peer.next()).await {
        saw_goaway |= matches!(f, Frame::GoAway(_));
    }
    assert!(saw_goaway, "no GOAWAY before the server's FIN");
    // The peer still talks after the server's FIN; the server reads it.
    peer.send(Frame::Ping(frame::Ping { id: 1 })).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), session.closed())
            .await
            .is_err(),
        "the session released the socket while the peer was still sending"
    );
    drop(peer);
    timeout(session.closed()).await;
}
