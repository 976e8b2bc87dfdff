//! The attach handler: join the container monitor's attach endpoint (its frame stream
//! `[id][u32 BE len][data]`, see `monitor::client`) and relay it to the client.
//!
//! Several clients may attach at once: each gets its own monitor connection, which
//! fans the container's output out to all of them. Client stdin goes to the container;
//! when the client closes stdin and the container was created with `stdin_once`, the
//! container's stdin is closed too (CRI-O and containerd do the same; without
//! `stdin_once` other attachers keep it open). Resizes go to the monitor's terminal.
//! The session ends when the container exits (the monitor sends the exit frame) or the
//! client leaves; the status is `Success`, as the kubelet's `ServeAttach` reports.

use std::path::PathBuf;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::protocol::{ResizeDecoder, Status};
use super::streams::{BoxRead, BoxWrite, RemoteStreams, StreamOpts};
use super::{Shared, StreamError};
use crate::monitor::client::{self as monitor, frame};

/// Largest frame accepted from the monitor.
const MAX_FRAME: usize = 1 << 20;

/// Run one attach session to its end.
pub async fn run(
    shared: &Shared,
    container_id: &str,
    opts: StreamOpts,
    mut streams: RemoteStreams,
) {
    let socket = shared.lifecycle.socket_path(container_id);
    let stdin_once = shared
        .lifecycle
        .container(container_id)
        .map(|c| c.config.stdin_once)
        .unwrap_or(false);
    let conn = match monitor::attach(&socket, opts.stdin).await {
        Ok(c) => c,
        Err(source) => {
            let e = StreamError::Monitor {
                container: container_id.to_owned(),
                source,
            };
            tracing::warn!(error = %e.full_message(), "attach failed");
            streams.finish(Status::internal(e.full_message())).await;
            return;
        }
    };
    tracing::debug!(container = %container_id, tty = opts.tty, stdin = opts.stdin, "attached");
    let (rd, wr) = conn.into_split();
    // The monitor drops an attacher whose socket reaches EOF, so the write half stays
    // open (held here or by the stdin task) for the whole session.
    let mut idle_wr = None;
    let stdin_task = match streams.stdin.take() {
        Some(from) => Some(tokio::spawn(copy_stdin(from, wr, stdin_once))),
        None => {
            idle_wr = Some(wr);
            None
        }
    };
    let resize_task = streams
        .resize
        .take()
        .map(|from| tokio::spawn(resize_loop(from, socket.clone())));
    let stdout = streams.stdout.take();
    let stderr = streams.stderr.take();
    let mut gone = streams
        .gone
        .take()
        .unwrap_or_else(|| Box::pin(std::future::pending()));
    let outcome = tokio::select! {
        r = relay_output(rd, stdout, stderr) => r,
        () = &mut gone => Ok(None),
    };
    for t in [stdin_task, resize_task].into_iter().flatten() {
        t.abort();
    }
    drop(idle_wr);
    let status = match outcome {
        Ok(code) => {
            tracing::debug!(container = %container_id, exit_code = ?code, "attach ended");
            Status::success()
        }
        Err(e) => Status::internal(format!("error attaching to container: {e}")),
    };
    streams.finish(status).await;
}

/// Relay monitor output frames until the exit frame or the monitor closes; returns the
/// exit code if one came.
async fn relay_output(
    mut rd: tokio::net::unix::OwnedReadHalf,
    mut stdout: Option<BoxWrite>,
    mut stderr: Option<BoxWrite>,
) -> Result<Option<i32>, std::io::Error> {
    let mut head = [0u8; 5];
    loop {
        match rd.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let [id, a, b, c, d] = head;
        let len = usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
        if len > MAX_FRAME {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("monitor frame of {len} bytes"),
            ));
        }
        let mut data = vec![0u8; len];
        rd.read_exact(&mut data).await?;
        let target = match id {
            frame::STDOUT => stdout.as_mut(),
            frame::STDERR => stderr.as_mut(),
            frame::EXIT => {
                let code = data
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_be_bytes);
                for w in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
                    let _ = w.flush().await;
                }
                return Ok(code);
            }
            _ => None,
        };
        if let Some(w) = target
            && w.write_all(&data).await.is_err()
        {
            // The client closed this stream: keep serving the others.
            if id == frame::STDOUT {
                stdout = None;
            } else {
                stderr = None;
            }
        }
    }
}

async fn copy_stdin(mut from: BoxRead, mut to: tokio::net::unix::OwnedWriteHalf, stdin_once: bool) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let data = buf.get(..n).unwrap_or_default();
                if to
                    .write_all(&frame::encode(frame::STDIN, data))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    if stdin_once {
        let _ = to.write_all(&frame::encode(frame::CLOSE_STDIN, &[])).await;
    }
    // Closing the socket would detach: hold it until the session ends (task aborted).
    std::future::pending::<()>().await;
    drop(to);
}

async fn resize_loop(mut from: BoxRead, socket: PathBuf) {
    let mut dec = ResizeDecoder::default();
    let mut buf = [0u8; 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for s in dec.feed(buf.get(..n).unwrap_or_default()) {
            let r = monitor::resize(&socket, u32::from(s.height), u32::from(s.width)).await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "attach resize failed");
            }
        }
    }
}
