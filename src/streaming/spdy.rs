//! Exec/attach over SPDY/3.1: collect the client's streams by their `streamType` header
//! into [`RemoteStreams`].
//!
//! As the kubelet's `createHTTPStreamStreams`: the server expects one error stream plus
//! one per requested stdin/stdout/stderr, plus a resize stream for a tty on v3 and
//! later; it waits up to the stream creation timeout (30 s) for all of them and gives
//! up otherwise. Unknown stream types are ignored (reset). Streams opened later are
//! reset.

use std::time::Duration;

use crust_proto::spdy::{Incoming, Session, Stream, header};

use super::StreamError;
use super::protocol::{STREAM_TYPE, Version, stream_type};
use super::streams::{BoxFuture, BoxRead, BoxWrite, RemoteStreams, StreamOpts};

/// How long a client may take to open its streams (kubelet's `streamCreationTimeout`).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Wait for the streams `opts` implies, then hand them over.
pub async fn remote_streams(
    session: Session,
    mut incoming: Incoming,
    opts: StreamOpts,
    version: Version,
    timeout: Duration,
) -> Result<RemoteStreams, StreamError> {
    let resize_expected = opts.tty && version.resize();
    let expected = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr)
        + usize::from(resize_expected);
    let mut got: [Option<Stream>; 5] = Default::default();
    let collect = async {
        let mut received = 0;
        while received < expected {
            let Some(s) = incoming.accept().await else {
                return Err(StreamError::Protocol(
                    "client closed the connection before creating its streams".into(),
                ));
            };
            let kind = header(s.headers(), STREAM_TYPE).unwrap_or_default();
            let slot = match kind {
                stream_type::ERROR => 0,
                stream_type::STDIN => 1,
                stream_type::STDOUT => 2,
                stream_type::STDERR => 3,
                stream_type::RESIZE if version.resize() => 4,
                other => {
                    tracing::debug!(stream_type = other, id = s.id(), "unexpected stream type");
                    s.reset();
                    continue;
                }
            };
            if got[slot].replace(s).is_none() {
                received += 1;
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, collect).await {
        Ok(r) => r?,
        Err(_) => {
            session.close().await;
            return Err(StreamError::Protocol(
                "timed out waiting for client to create streams".into(),
            ));
        }
    }
    // Later streams are not part of this exchange.
    tokio::spawn(async move {
        while let Some(s) = incoming.accept().await {
            s.reset();
        }
    });
    let [error, stdin, stdout, stderr, resize] = got;
    let Some(error) = error else {
        return Err(StreamError::Protocol(
            "client created no error stream".into(),
        ));
    };
    let reader = |s: Option<Stream>| s.map(|s| Box::new(s) as BoxRead);
    let writer = |s: Option<Stream>| s.map(|s| Box::new(s) as BoxWrite);
    let gone_session = session.clone();
    let gone: BoxFuture = Box::pin(async move { gone_session.closed().await });
    Ok(RemoteStreams {
        version,
        stdin: reader(stdin),
        stdout: writer(stdout),
        stderr: writer(stderr),
        resize: reader(resize),
        gone: Some(gone),
        error: Box::new(error),
        close: Box::new(move || {
            Box::pin(async move {
                session.close().await;
            })
        }),
    })
}
