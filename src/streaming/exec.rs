//! The exec handler: run the command through the exec core
//! (`Manager::exec_process`) and connect its stdio to the client's streams.
//!
//! Behaviour follows the kubelet's `ServeExec` with CRI-O's exec: client stdin EOF
//! closes the process's stdin; resize messages resize the exec's terminal; when the
//! process exits, its remaining output is drained (until the pipes close, or
//! [`DRAIN_IDLE`] passes without data when a background child keeps them open), and
//! the exit status goes on the error stream (v4: `Success`, or `NonZeroExitCode` with
//! the code as an `ExitCode` cause). A client that goes away kills the process tree.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::Shared;
use super::protocol::{ResizeDecoder, Status};
use super::streams::{BoxRead, BoxWrite, RemoteStreams, StreamOpts};
use crate::container::exec::{ExecRequest, ResizeHandle};

/// After the process exited, output copying stops once this long passes without data.
pub const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// Run one exec session to its end.
pub async fn run(
    shared: &Shared,
    container_id: &str,
    cmd: Vec<String>,
    opts: StreamOpts,
    mut streams: RemoteStreams,
) {
    let req = ExecRequest {
        cmd: cmd.clone(),
        tty: opts.tty,
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
    };
    let mut p = match shared.lifecycle.exec_process(container_id, req).await {
        Ok(p) => p,
        Err(e) => {
            let msg = format!("error executing command in container: {}", e.full_message());
            tracing::warn!(container = %container_id, error = %msg, "exec failed");
            streams.finish(Status::internal(msg)).await;
            return;
        }
    };
    tracing::debug!(container = %container_id, cmd = ?cmd, tty = opts.tty, "exec session started");
    let stdin_task = match (streams.stdin.take(), p.stdin.take()) {
        (Some(from), Some(to)) => Some(tokio::spawn(copy_stdin(from, to))),
        _ => None,
    };
    let resize_task = match (streams.resize.take(), p.resize.clone()) {
        (Some(from), Some(handle)) => Some(tokio::spawn(resize_loop(from, handle))),
        _ => None,
    };
    let (exited_tx, exited_rx) = tokio::sync::watch::channel(false);
    let mut outputs = Vec::new();
    for (from, to) in [
        (p.stdout.take(), streams.stdout.take()),
        (p.stderr.take(), streams.stderr.take()),
    ] {
        if let (Some(from), Some(to)) = (from, to) {
            outputs.push(tokio::spawn(copy_out(from, to, exited_rx.clone())));
        }
    }
    let killer = p.killer();
    let mut gone = streams
        .gone
        .take()
        .unwrap_or_else(|| Box::pin(std::future::pending()));
    let code = tokio::select! {
        r = p.wait() => r,
        () = &mut gone => {
            tracing::info!(container = %container_id, "exec client went away: killing the process");
            killer.kill().await;
            p.kill_runtime();
            p.wait().await
        }
    };
    let _ = exited_tx.send(true);
    for t in outputs {
        let _ = t.await;
    }
    for t in [stdin_task, resize_task].into_iter().flatten() {
        t.abort();
    }
    let status = match code {
        Ok(c) => {
            tracing::debug!(container = %container_id, exit_code = c, "exec session ended");
            Status::exit(c, &cmd)
        }
        Err(e) => Status::internal(format!(
            "error executing command in container: {}",
            e.full_message()
        )),
    };
    streams.finish(status).await;
}

async fn copy_stdin(mut from: BoxRead, mut to: Box<dyn tokio::io::AsyncWrite + Send + Unpin>) {
    if let Err(e) = tokio::io::copy(&mut from, &mut to).await {
        tracing::debug!(error = %e, "exec stdin copy ended");
    }
    // Client closed stdin: the process sees end of input.
    let _ = to.shutdown().await;
}

/// Copy process output to the client; after `exited`, stop when no data comes for
/// [`DRAIN_IDLE`].
pub async fn copy_out(
    mut from: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    mut to: BoxWrite,
    mut exited: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = if *exited.borrow() {
            match tokio::time::timeout(DRAIN_IDLE, from.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                r = from.read(&mut buf) => r,
                _ = exited.changed() => continue,
            }
        };
        match n {
            Ok(0) => break,
            Ok(n) => {
                if let Some(data) = buf.get(..n)
                    && to.write_all(data).await.is_err()
                {
                    break;
                }
            }
            // A terminal whose other side closed reads EIO: that is the end.
            Err(_) => break,
        }
    }
    let _ = to.flush().await;
    let _ = to.shutdown().await;
}

async fn resize_loop(mut from: BoxRead, handle: ResizeHandle) {
    let mut dec = ResizeDecoder::default();
    let mut buf = [0u8; 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for size in dec.feed(buf.get(..n).unwrap_or_default()) {
            if let Err(e) = handle.resize(size.height, size.width) {
                tracing::debug!(error = %e, "exec terminal resize failed");
            }
        }
    }
}
