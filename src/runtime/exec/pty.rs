//! The terminal of a `tty` exec.
//!
//! runc (and the runtimes copying its CLI) only hand a terminal's master to a
//! `--console-socket` in *detached* mode (runc `docs/terminals.md`, "detached new
//! terminal"); the detached process is then nobody's child, so its exit status would be
//! lost unless the daemon became a subreaper for everything it starts (CRI-O needs conmon
//! for exactly this). In the foreground a runtime creates the container's terminal itself
//! and relays it to its own stdio, which must be a terminal (runc `initHostConsole`).
//! So crust gives the runtime one: a pty pair opened here, the slave as the runtime's
//! stdin/stdout/stderr, the master kept by the daemon. The runtime sets that terminal raw
//! and copies bytes both ways; on SIGWINCH it copies our terminal's size to the
//! container's, so a resize is TIOCSWINSZ on the master plus SIGWINCH to the runtime.
//! The exit status stays the runtime's, like a non-tty exec. The runtime copies the size
//! right after starting the process, so a process asking for its size at its very first
//! instruction may still see 0x0 (runc behaves the same under a real terminal).
//!
//! [`PtyReader`]/[`PtyWriter`] are tokio `AsyncRead`/`AsyncWrite` over the non-blocking
//! master. Reading the master after the last slave holder closed it fails with EIO, which
//! is end of file here.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A fresh pty: the master (non-blocking, close-on-exec) and the slave (for the runtime).
pub fn open() -> io::Result<(OwnedFd, OwnedFd)> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    // TIOCGPTPEER (Linux 4.13): the slave without a path lookup in /dev/pts.
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags)?;
    let fl = rustix::fs::fcntl_getfl(&master)?;
    rustix::fs::fcntl_setfl(&master, fl | rustix::fs::OFlags::NONBLOCK)?;
    Ok((master, slave))
}

/// Set the terminal size (rows, columns) of a pty through its master or slave.
pub fn set_size(fd: impl AsFd, rows: u16, cols: u16) -> io::Result<()> {
    rustix::termios::tcsetwinsize(
        fd,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}

/// The master registered with tokio, shared by the reader, the writer and resizes.
#[derive(Clone)]
pub struct Master(Arc<AsyncFd<OwnedFd>>);

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Master").finish()
    }
}

impl Master {
    /// Register a non-blocking master (from [`open`]) with the tokio reactor.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        // SAFETY: an `OwnedFd` is open for its whole life and `as_raw_fd` always returns
        // the same descriptor; the `AsyncFd` owns it, so nobody else can close or replace
        // it while it is registered (the I/O-safety condition of `AsyncFd::register`).
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(Self(Arc::new(fd)))
    }

    /// TIOCSWINSZ on the master.
    pub fn set_size(&self, rows: u16, cols: u16) -> io::Result<()> {
        set_size(self.0.get_ref(), rows, cols)
    }

    /// The terminal output.
    pub fn reader(&self) -> PtyReader {
        PtyReader(self.clone())
    }

    /// The terminal input.
    pub fn writer(&self) -> PtyWriter {
        PtyWriter(self.clone())
    }
}

/// Reads the terminal output; EOF once every slave holder is gone.
#[derive(Debug)]
pub struct PtyReader(Master);

/// Writes terminal input. Shutting it down does nothing to the terminal: a terminal has
/// no end of input, a reader in canonical mode sees EOF when it reads a ^D byte, which
/// the client sends like any other key (kubectl sends nothing special).
#[derive(Debug)]
pub struct PtyWriter(Master);

impl AsyncRead for PtyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut *unfilled)?)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // The slave side is closed: end of the terminal output.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), data)?)) {
                Ok(res) => return Poll::Ready(res),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn round_trip_resize_and_eof() {
        let (master, slave) = open().unwrap();
        let m = Master::new(master).unwrap();
        m.set_size(33, 101).unwrap();
        let ws = rustix::termios::tcgetwinsize(&slave).unwrap();
        assert_eq!((ws.ws_row, ws.ws_col), (33, 101));
        // Raw mode on the slave so bytes pass unchanged.
        let mut t = rustix::termios::tcgetattr(&slave).unwrap();
        t.make_raw();
        rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &t).unwrap();
        let mut w = m.writer();
        w.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        let mut s = std::fs::File::from(slave);
        std::io::Read::read_exact(&mut s, &mut got).unwrap();
        assert_eq!(&got, b"ping");
        std::io::Write::write_all(&mut s, b"pong").unwrap();
        drop(s);
        let mut out = Vec::new();
        m.reader().read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"pong");
    }
}
