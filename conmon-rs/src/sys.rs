//! Thin syscall seam (libc): pipes, fork/setsid, subreaper, signalfd, poll,
//! SCM_RIGHTS, terminal size. Everything unsafe in the monitor lives here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid 2-element array; on success both fds are new and owned by us.
    unsafe {
        check(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC))?;
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

pub fn set_nonblock(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own; no pointers involved.
    unsafe {
        let fl = check(libc::fcntl(fd, libc::F_GETFL))?;
        check(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
    }
    Ok(())
}

pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd handed to us; no pointers involved.
    unsafe { check(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC)).map(drop) }
}

pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes of writes.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes of reads.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Detaches from the spawning daemon: fork (the parent exits 0 at once so the
/// daemon can reap it), then `setsid` so the monitor has its own session and
/// survives the daemon's death or restart.
pub fn daemonize() -> io::Result<()> {
    // SAFETY: called first thing in main, while the process is single-threaded.
    let pid = unsafe { check(libc::fork())? };
    if pid > 0 {
        // SAFETY: _exit skips atexit handlers/destructors, correct in a forked parent.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: plain syscall without pointers.
    unsafe { check(libc::setsid())? };
    Ok(())
}

/// `PR_SET_CHILD_SUBREAPER`: the container init, orphaned when `runtime create`
/// exits, is reparented to us so we can `waitpid` it (conmon does the same).
pub fn set_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    unsafe { check(libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)).map(drop) }
}

/// Blocks SIGCHLD and returns a non-blocking signalfd for it, so child exits
/// become poll events. Blocked before spawning anything: no exit is missed.
pub fn sigchld_fd() -> io::Result<OwnedFd> {
    // SAFETY: set is a local sigset_t initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        check(libc::sigprocmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        let fd = check(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Reaps one exited child: Some((pid, wait status)), None when none is ready.
pub fn reap_any() -> Option<(i32, i32)> {
    let mut status = 0;
    // SAFETY: status is a valid out pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: fds is a valid slice of pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Receives one fd sent with SCM_RIGHTS (the runtime's `--console-socket` protocol:
/// runc sends the pty master this way).
pub fn recv_fd(sock: &UnixStream) -> io::Result<OwnedFd> {
    let mut data = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr points at live local buffers; CMSG_* walk only within cbuf.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_level != libc::SOL_SOCKET || (*c).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "console socket: no fd received",
            ));
        }
        let fd: RawFd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// TIOCSWINSZ on the pty master (CRI ResizeContainerTTY).
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ws is a valid winsize for the duration of the call.
    unsafe { check(libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws)).map(drop) }
}

/// Takes ownership of an inherited fd number (the sync fd).
///
/// A stdio fd (the daemon passes the sync pipe as stdout, which lets it spawn us with
/// `posix_spawn` instead of forking itself) is moved to a new close-on-exec fd and the
/// stdio slot is pointed at `/dev/null`: keeping it would hold the pipe open (the daemon
/// waits for end-of-file) and a later `open` could otherwise land on the freed slot.
pub fn inherited_fd(n: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only checks the fd is open.
    check(unsafe { libc::fcntl(n, libc::F_GETFD) })?;
    if !(0..=2).contains(&n) {
        set_cloexec(n)?;
        // SAFETY: the daemon handed this fd to us to own; it is open (checked above).
        return Ok(unsafe { OwnedFd::from_raw_fd(n) });
    }
    // SAFETY: F_DUPFD_CLOEXEC on an open fd (checked above) returns a new fd we own.
    let moved = check(unsafe { libc::fcntl(n, libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: `moved` was just returned by fcntl and nothing else owns it.
    let moved = unsafe { OwnedFd::from_raw_fd(moved) };
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    // SAFETY: dup2 onto the stdio slot `n` atomically replaces the pipe there.
    check(unsafe { libc::dup2(null.as_raw_fd(), n) })?;
    Ok(moved)
}

pub fn getpid() -> i32 {
    std::process::id() as i32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn pipe_roundtrip_nonblocking() {
        let (r, w) = pipe().unwrap();
        set_nonblock(r.as_raw_fd()).unwrap();
        assert_eq!(
            read(r.as_fd(), &mut [0; 4]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(write(w.as_fd(), b"hi").unwrap(), 2);
        let mut b = [0; 4];
        assert_eq!(read(r.as_fd(), &mut b).unwrap(), 2);
        assert_eq!(&b[..2], b"hi");
    }
}
