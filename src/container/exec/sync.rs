//! `ExecSync`: run a command to completion and return its output and exit code (the
//! kubelet's exec probes, `crictl exec -s`).
//!
//! - Output: stdout and stderr are read concurrently, each kept up to
//!   [`MAX_OUTPUT`] (16 MiB, CRI-O's `maxExecSyncSize`), and drained beyond it, so a chatty
//!   process never blocks on a full pipe; truncation is logged. The cap is lowered so
//!   that both streams fit in one response under `crust.api.grpc_max_send_msg_size`
//!   ([`output_cap`]): a chatty probe gets truncated output, not a failed RPC.
//! - Timeout (`timeout` seconds, 0 = none): the exec'd tree is frozen and killed
//!   ([`super::ExecKiller::kill`]) and gone before the call returns; the answer is exit
//!   code -1 with stderr `command timed out`, what CRI-O returns (`internal/oci`
//!   `ExecSyncContainer`, conmon's `TimedOutMessage`), rather than an error: the kubelet
//!   reads a non-zero exit as a failed probe.
//! - A process that leaves a background child holding its stdout would keep the pipe
//!   open forever: once the runtime exited, the readers get [`DRAIN_GRACE`] to reach end
//!   of file, then what they have is returned.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::ExecRequest;
use crate::lifecycle::{LifecycleError, Manager};

/// Most bytes kept per stream (CRI-O: 16 MiB).
pub const MAX_OUTPUT: usize = 16 << 20;

/// Room left in a response for everything but the two outputs (framing, exit code).
const RESPONSE_OVERHEAD: usize = 64 << 10;

/// Bytes kept per stream when responses may be at most `max_send` bytes.
pub fn output_cap(max_send: usize) -> usize {
    MAX_OUTPUT.min(max_send.saturating_sub(RESPONSE_OVERHEAD) / 2)
}

/// How long output may still arrive after the runtime exited.
pub const DRAIN_GRACE: Duration = Duration::from_millis(250);

/// After the tree was killed, how long the runtime may take to exit before it is killed
/// too (runsc: the exec'd process is not a host process).
const RUNTIME_EXIT_WAIT: Duration = Duration::from_secs(2);

/// Exit code reported for a timed-out command (CRI-O).
pub const TIMEOUT_EXIT_CODE: i32 = -1;

/// Stderr reported for a timed-out command (conmon's `TimedOutMessage`).
pub const TIMEOUT_MESSAGE: &str = "command timed out";

/// The result of `ExecSync`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSyncOutput {
    /// At most [`output_cap`] bytes of stdout.
    pub stdout: Vec<u8>,
    /// At most [`output_cap`] bytes of stderr.
    pub stderr: Vec<u8>,
    /// Exit code; 128+signal on signal death, -1 on timeout.
    pub exit_code: i32,
}

/// One stream's capture: the kept bytes and how many were dropped past the cap.
#[derive(Debug, Default)]
pub struct Captured {
    /// Kept bytes.
    pub data: Vec<u8>,
    /// Bytes read and discarded beyond the cap.
    pub dropped: u64,
}

/// Read `r` to end of file (or until `stop`), keeping at most `cap` bytes.
pub async fn capture(
    mut r: impl AsyncRead + Unpin,
    cap: usize,
    stop: CancellationToken,
) -> Captured {
    let mut out = Captured::default();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = tokio::select! {
            biased;
            res = r.read(&mut buf) => match res {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            () = stop.cancelled() => break,
        };
        let keep = n.min(cap.saturating_sub(out.data.len()));
        out.data.extend_from_slice(&buf[..keep]);
        out.dropped += (n - keep) as u64;
    }
    out
}

fn spawn_capture(
    r: Option<Box<dyn AsyncRead + Send + Unpin>>,
    cap: usize,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<Captured> {
    let stop = stop.clone();
    tokio::spawn(async move {
        match r {
            Some(r) => capture(r, cap, stop).await,
            None => Captured::default(),
        }
    })
}

/// The kept bytes of a finished capture task, logging truncation.
fn kept(
    res: Result<Captured, tokio::task::JoinError>,
    stream: &'static str,
    container: &str,
) -> Vec<u8> {
    match res {
        Ok(c) => {
            if c.dropped > 0 {
                tracing::warn!(
                    container,
                    stream,
                    kept = c.data.len(),
                    dropped = c.dropped,
                    "exec output truncated"
                );
            }
            c.data
        }
        Err(e) => {
            tracing::warn!(container, stream, error = %e, "exec output reader failed");
            Vec::new()
        }
    }
}

impl Manager {
    /// `ExecSync`: run `cmd` in the container, return its output and exit code.
    /// `timeout` zero means no timeout.
    pub async fn exec_sync(
        self: &Arc<Self>,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncOutput, LifecycleError> {
        let req = ExecRequest {
            cmd,
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        };
        let mut p = self.exec_process(container_id, req).await?;
        let stop = CancellationToken::new();
        // Readers never outlive the call, even on an early error return.
        let _stop_on_return = stop.clone().drop_guard();
        let cap = output_cap(
            crate::config::current(&self.config)
                .crust
                .api
                .grpc_max_send_msg_size,
        );
        let out = spawn_capture(p.stdout.take(), cap, &stop);
        let err = spawn_capture(p.stderr.take(), cap, &stop);
        let finished = if timeout.is_zero() {
            Some(p.wait().await)
        } else {
            tokio::time::timeout(timeout, p.wait()).await.ok()
        };
        let timed_out = finished.is_none();
        let exit_code = match finished {
            Some(res) => res?,
            None => {
                tracing::info!(container = %container_id, timeout = ?timeout, "exec timed out, killing it");
                p.kill().await;
                if tokio::time::timeout(RUNTIME_EXIT_WAIT, p.wait())
                    .await
                    .is_err()
                {
                    p.kill_runtime();
                    p.wait().await?;
                }
                TIMEOUT_EXIT_CODE
            }
        };
        // Output written before the exit is already in the pipes; only a leftover
        // background process can keep them open past the grace period.
        let readers = futures::future::join(out, err);
        tokio::pin!(readers);
        let (out, err) = tokio::select! {
            r = &mut readers => r,
            () = tokio::time::sleep(DRAIN_GRACE) => {
                stop.cancel();
                readers.await
            }
        };
        let stdout = kept(out, "stdout", container_id);
        let mut stderr = kept(err, "stderr", container_id);
        if timed_out {
            stderr = TIMEOUT_MESSAGE.as_bytes().to_vec();
        }
        Ok(ExecSyncOutput {
            stdout,
            stderr,
            exit_code,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn capture_caps_and_keeps_draining() {
        let (mut w, r) = tokio::io::duplex(1024);
        let writer = tokio::spawn(async move {
            for i in 0..100u8 {
                w.write_all(&[i; 1000]).await.unwrap();
            }
        });
        let c = capture(r, 2500, CancellationToken::new()).await;
        writer.await.unwrap();
        assert_eq!(c.data.len(), 2500);
        assert_eq!(&c.data[..1000], &[0u8; 1000][..]);
        assert_eq!(&c.data[2000..], &[2u8; 500][..]);
        assert_eq!(c.dropped, 100_000 - 2500);
    }

    #[test]
    fn cap_fits_the_response() {
        assert_eq!(output_cap(80 << 20), MAX_OUTPUT);
        assert_eq!(output_cap(16 << 20), ((16 << 20) - (64 << 10)) / 2);
        assert_eq!(output_cap(0), 0);
    }

    #[tokio::test]
    async fn capture_stops_when_cancelled() {
        let (mut w, r) = tokio::io::duplex(64);
        w.write_all(b"partial").await.unwrap();
        let stop = CancellationToken::new();
        let h = tokio::spawn(capture(r, MAX_OUTPUT, stop.clone()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.cancel();
        let c = h.await.unwrap();
        assert_eq!(c.data, b"partial");
        drop(w);
    }
}
