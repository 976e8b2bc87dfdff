//! Session tests over in-memory `tokio::io::duplex` pipes: crust client <-> crust
//! server. Tests against a hand-driven raw peer are in `raw_peer_tests.rs`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::spdy::header;

pub(super) const T: Duration = Duration::from_secs(20);

pub(super) fn hdrs(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn pair() -> (Session, Incoming, Session, Incoming) {
    let (a, b) = tokio::io::duplex(64 << 10);
    let (client, client_in) = Session::client(a);
    let (server, server_in) = Session::server(b);
    (client, client_in, server, server_in)
}

pub(super) async fn timeout<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(T, f)
        .await
        .expect("test step timed out")
}

pub(super) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn open_accept_echo_and_reply() {
    let (client, _ci, server, mut si) = pair();
    let server_task = tokio::spawn(async move {
        let mut s = si.accept().await.unwrap();
        assert_eq!(header(s.headers(), "streamType"), Some("stdin"));
        assert_eq!(s.id(), 1);
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        s.write_all(&got).await.unwrap();
        s.shutdown().await.unwrap();
        got
    });
    let mut c = client
        .open(hdrs(&[("StreamType", "stdin"), ("port", "80")]))
        .await
        .unwrap();
    assert_eq!(
        c.headers(),
        &hdrs(&[("streamtype", "stdin"), ("port", "80")])
    );
    assert_eq!(timeout(c.reply()).await.unwrap(), Headers::new());
    c.write_all(b"hello spdy").await.unwrap();
    c.shutdown().await.unwrap();
    let mut back = Vec::new();
    timeout(c.read_to_end(&mut back)).await.unwrap();
    assert_eq!(back, b"hello spdy");
    assert_eq!(timeout(server_task).await.unwrap(), b"hello spdy");
    // Both halves closed: the stream is forgotten on both sides.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(lock(&client.shared().state).streams.is_empty());
    assert!(lock(&server.shared().state).streams.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabyte_through_flow_control_with_slow_reader() {
    let (client, _ci, _server, mut si) = pair();
    let data = pattern(1 << 20);
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        let mut s = si.accept().await.unwrap();
        s.write_all(&data).await.unwrap();
        s.shutdown().await.unwrap();
        s
    });
    let c = client
        .open(hdrs(&[("streamtype", "stdout")]))
        .await
        .unwrap();
    let cell = c.h_cell();
    let (mut r, _w) = c.into_split();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 8 << 10];
    let mut max_buffered = 0;
    loop {
        // Slow reader: the sender must wait for WINDOW_UPDATEs.
        tokio::time::sleep(Duration::from_micros(200)).await;
        max_buffered = max_buffered.max(lock(&cell.state).buffered);
        let n = timeout(r.read(&mut chunk)).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(got.len(), expected.len());
    assert!(got == expected);
    assert!(
        max_buffered as i64 <= DEFAULT_WINDOW,
        "buffered {max_buffered} beyond the window"
    );
    let s = timeout(writer).await.unwrap();
    assert!(
        lock(&s.h_shared().state).peer_flow_control,
        "crust peers enforce windows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_upload_right_after_open() {
    // The client may start sending before it has seen the server's SETTINGS.
    let (client, _ci, _server, mut si) = pair();
    let data = pattern(1 << 20);
    let mut c = client.open(hdrs(&[("streamtype", "stdin")])).await.unwrap();
    let d2 = data.clone();
    let up = tokio::spawn(async move {
        c.write_all(&d2).await.unwrap();
        c.shutdown().await.unwrap();
        c
    });
    let mut s = timeout(si.accept()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut got = Vec::new();
    timeout(s.read_to_end(&mut got)).await.unwrap();
    assert!(got == data);
    assert!(!timeout(up).await.unwrap().is_reset());
}

#[tokio::test]
async fn half_close_each_direction() {
    let (client, _ci, _server, mut si) = pair();
    let mut c = client.open(hdrs(&[("streamtype", "x")])).await.unwrap();
    let mut s = timeout(si.accept()).await.unwrap();
    // Client closes first; the server can still send.
    c.shutdown().await.unwrap();
    let mut buf = Vec::new();
    timeout(s.read_to_end(&mut buf)).await.unwrap();
    assert!(buf.is_empty());
    s.write_all(b"after client fin").await.unwrap();
    assert!(c.write_all(b"x").await.is_err());
    s.shutdown().await.unwrap();
    timeout(c.read_to_end(&mut buf)).await.unwrap();
    assert_eq!(buf, b"after client fin");

    // Server closes first; the client can still send.
    let mut c = client.open(hdrs(&[("streamtype", "y")])).await.unwrap();
    let mut s = timeout(si.accept()).await.unwrap();
    s.shutdown().await.unwrap();
    let mut buf = Vec::new();
    timeout(c.read_to_end(&mut buf)).await.unwrap();
    c.write_all(b"after server fin").await.unwrap();
    c.shutdown().await.unwrap();
    timeout(s.read_to_end(&mut buf)).await.unwrap();
    assert_eq!(buf, b"after server fin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_ends_both_halves() {
    let (client, _ci, _server, mut si) = pair();
    let mut c = client.open(hdrs(&[("streamtype", "stdin")])).await.unwrap();
    let mut s = timeout(si.accept()).await.unwrap();
    c.write_all(b"pending").await.unwrap();
    c.reset();
    assert!(c.is_reset());
    assert!(c.write_all(b"x").await.is_err());
    // The server sees EOF (possibly after the data sent before the reset), then
    // writes fail.
    let mut buf = Vec::new();
    timeout(s.read_to_end(&mut buf)).await.unwrap();
    timeout(async {
        while s.write_all(b"y").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(s.is_reset());
    // Other streams are unaffected.
    let mut c2 = client
        .open(hdrs(&[("streamtype", "stdout")]))
        .await
        .unwrap();
    let mut s2 = timeout(si.accept()).await.unwrap();
    s2.write_all(b"ok").await.unwrap();
    s2.shutdown().await.unwrap();
    let mut out = Vec::new();
    timeout(c2.read_to_end(&mut out)).await.unwrap();
    assert_eq!(out, b"ok");
}

#[tokio::test]
async fn ping_both_ways() {
    let (client, _ci, server, _si) = pair();
    timeout(client.ping()).await.unwrap();
    timeout(server.ping()).await.unwrap();
}

#[tokio::test]
async fn goaway_closes_the_session() {
    let (client, _ci, server, mut si) = pair();
    let mut c = client.open(hdrs(&[("streamtype", "error")])).await.unwrap();
    let _s = timeout(si.accept()).await.unwrap();
    timeout(server.close()).await;
    timeout(client.closed()).await;
    assert!(client.is_closed());
    assert!(client.error().is_none());
    assert!(client.open(Headers::new()).await.is_err());
    let mut buf = Vec::new();
    assert!(timeout(c.read_to_end(&mut buf)).await.is_err());
    assert!(timeout(si.accept()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams() {
    let (client, _ci, _server, mut si) = pair();
    let echo = tokio::spawn(async move {
        let mut tasks = Vec::new();
        while let Some(s) = si.accept().await {
            tasks.push(tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let mut clients = Vec::new();
    for i in 0..100usize {
        let s = client
            .open(hdrs(&[("requestid", &i.to_string())]))
            .await
            .unwrap();
        clients.push(tokio::spawn(async move {
            let data = pattern(10_000 + i * 100);
            let (mut r, mut w) = s.into_split();
            let d2 = data.clone();
            let wr = tokio::spawn(async move {
                w.write_all(&d2).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            wr.await.unwrap();
            assert!(got == data, "stream {i} corrupted");
        }));
    }
    for c in clients {
        timeout(c).await.unwrap();
    }
    timeout(client.close()).await;
    timeout(echo).await.unwrap();
}

#[tokio::test]
async fn dropping_session_handles_closes_connection() {
    let (client, ci, server, si) = pair();
    drop(client);
    drop(ci);
    timeout(server.closed()).await;
    drop(si);
}
