//! The transport-neutral view of an exec/attach connection: stdin, stdout, stderr,
//! resize and error streams as tokio byte streams, whichever of SPDY ([`super::spdy`])
//! or WebSocket ([`super::ws`]) carries them, plus idle tracking for
//! `stream_idle_timeout`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::time::Instant;

use super::protocol::{Status, Version};

/// A boxed reader.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// A boxed writer.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;
/// A boxed future.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Which streams a request asked for (CRI `ExecRequest`/`AttachRequest` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOpts {
    /// Client sends stdin.
    pub stdin: bool,
    /// Client receives stdout.
    pub stdout: bool,
    /// Client receives stderr.
    pub stderr: bool,
    /// Terminal (resize stream).
    pub tty: bool,
}

/// The streams of one exec/attach connection. Handlers take the `Option`s they use and
/// call [`RemoteStreams::finish`] with the outcome.
pub struct RemoteStreams {
    /// Negotiated protocol family (error stream format).
    pub version: Version,
    /// Client's stdin (EOF when the client closes it).
    pub stdin: Option<BoxRead>,
    /// To the client's stdout.
    pub stdout: Option<BoxWrite>,
    /// To the client's stderr.
    pub stderr: Option<BoxWrite>,
    /// Terminal size messages (JSON objects).
    pub resize: Option<BoxRead>,
    /// Resolves when the client connection is gone (or idle too long).
    pub gone: Option<BoxFuture>,
    pub(crate) error: BoxWrite,
    pub(crate) close: Box<dyn FnOnce() -> BoxFuture + Send>,
}

impl RemoteStreams {
    /// Close the output streams, write `status` on the error stream and close the
    /// connection (the kubelet closes the whole connection after the status).
    pub async fn finish(mut self, status: Status) {
        for w in [self.stdout.take(), self.stderr.take()]
            .into_iter()
            .flatten()
        {
            let mut w = w;
            let _ = w.shutdown().await;
        }
        let bytes = status.encode(self.version);
        if !bytes.is_empty()
            && let Err(e) = self.error.write_all(&bytes).await
        {
            tracing::debug!(error = %e, "client went away before the exit status");
        }
        let _ = self.error.shutdown().await;
        drop(self.stdin.take());
        drop(self.resize.take());
        (self.close)().await;
    }
}

/// Last-activity clock of a connection, shared by the I/O wrapper and the watchdog.
#[derive(Clone, Debug)]
pub struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Activity {
    /// Record traffic now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed();
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        now.saturating_sub(last)
    }

    /// Resolves once no traffic was seen for `timeout`; never when `timeout` is zero.
    pub async fn idle(&self, timeout: Duration) {
        if timeout.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let idle = self.idle_for();
            if idle >= timeout {
                return;
            }
            tokio::time::sleep(timeout - idle).await;
        }
    }
}

/// Wraps a connection so every read and write counts as activity.
pub struct IdleIo<T> {
    inner: T,
    activity: Activity,
}

impl<T> IdleIo<T> {
    /// Wrap `inner`.
    pub fn new(inner: T, activity: Activity) -> Self {
        activity.touch();
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::AsyncReadExt as _;

    use super::*;

    #[tokio::test]
    async fn idle_fires_after_silence_only() {
        let a = Activity::default();
        let (x, mut y) = tokio::io::duplex(64);
        let mut io = IdleIo::new(x, a.clone());
        let watchdog = tokio::spawn({
            let a = a.clone();
            async move { a.idle(Duration::from_millis(400)).await }
        });
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            io.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            y.read_exact(&mut b).await.unwrap();
        }
        assert!(!watchdog.is_finished());
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(watchdog.is_finished());
    }
}
