//! Interop tests against moby/spdystream, the SPDY library kubelet and kubectl use.
//! They need a peer binary built from `testdata/spdystream-peer` (Go), so they are
//! ignored by default. To run them on Debian 12:
//!
//! ```sh
//! apt-get install golang-go golang-github-docker-spdystream-dev
//! (cd proto/src/spdy/session/testdata/spdystream-peer &&
//!  GOPROXY=off GOFLAGS=-mod=mod go build -o /tmp/spdystream-peer .)
//! INTEROP_BIN=/tmp/spdystream-peer cargo test -p crust-proto --features spdy \
//!   interop_tests -- --ignored
//! ```
//!
//! The Go peer never sends SETTINGS or WINDOW_UPDATE, so these also prove that
//! transfers beyond one 64 KiB window work with it in both directions.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::spdy::header;

const T: Duration = Duration::from_secs(30);

async fn timeout<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(T, f)
        .await
        .expect("test step timed out")
}

fn hdrs(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a moby/spdystream peer binary in INTEROP_BIN (see module docs)"]
async fn spdystream_client_against_crust_server() {
    let bin = std::env::var("INTEROP_BIN").unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let child = tokio::process::Command::new(bin)
        .arg("client")
        .arg(&addr)
        .output();
    let child = tokio::spawn(child);
    let (sock, _) = l.accept().await.unwrap();
    let (session, mut incoming) = Session::server(sock);
    let mut streams = std::collections::HashMap::new();
    for _ in 0..3 {
        let s = timeout(incoming.accept()).await.unwrap();
        streams.insert(header(s.headers(), "streamtype").unwrap().to_string(), s);
    }
    let mut es = streams.remove("error").unwrap();
    let (mut inr, _inw) = streams.remove("stdin").unwrap().into_split();
    let (_outr, mut outw) = streams.remove("stdout").unwrap().into_split();
    let n = timeout(tokio::io::copy(&mut inr, &mut outw)).await.unwrap();
    outw.shutdown().await.unwrap();
    es.write_all(b"ok").await.unwrap();
    es.shutdown().await.unwrap();
    let out = timeout(child).await.unwrap().unwrap();
    let go_out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(n, 3 << 20);
    assert!(
        go_out.contains("OK client: echoed 3145728 bytes, status \"ok\""),
        "{go_out}"
    );
    timeout(session.closed()).await;
    assert!(session.error().is_none(), "{:?}", session.error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a moby/spdystream peer binary in INTEROP_BIN (see module docs)"]
async fn crust_client_against_spdystream_server() {
    let bin = std::env::var("INTEROP_BIN").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(bin)
        .arg("server")
        .arg(&addr)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Wait for "LISTENING\n".
    let mut line = [0u8; 10];
    stdout.read_exact(&mut line).await.unwrap();
    let sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (session, _incoming) = Session::client(sock);
    let mut handles = Vec::new();
    for i in 0..4usize {
        let s = session
            .open(hdrs(&[("streamtype", "stdin"), ("n", &i.to_string())]))
            .await
            .unwrap();
        handles.push(tokio::spawn(async move {
            timeout(s.reply()).await.unwrap();
            let data = pattern((2 << 20) + i);
            let (mut r, mut w) = s.into_split();
            let d2 = data.clone();
            tokio::spawn(async move {
                w.write_all(&d2).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut got = Vec::new();
            timeout(r.read_to_end(&mut got)).await.unwrap();
            assert!(got == data, "stream {i}: {} bytes", got.len());
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    timeout(session.ping()).await.unwrap();
    timeout(session.close()).await;
    let _ = child.kill().await;
}
