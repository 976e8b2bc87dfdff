//! The monitor's single-threaded poll(2) loop: container output -> CRI log and
//! attachers, control-socket requests, child reaping via signalfd.
//!
//! One thread and fixed small buffers keep the monitor's RSS low (it runs once per
//! container). Output never waits for attachers: a client whose socket buffer is
//! full is disconnected, the log always gets everything.

use crate::crilog::{CriLog, Stream};
use crate::exitfile::ExitInfo;
use crate::runtime::Stdio3;
use crate::sys;
use crate::wire::{self, Request, Response};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

/// Read chunk size for container output.
const BUF: usize = 8192;
/// Longest a control request / pending input may grow.
const MAX_CLIENT_BUF: usize = wire::MAX_FRAME + 64;
/// After the init exited, how long to wait for remaining output before giving up
/// (a leaked process may hold the pipe open).
const DRAIN_MS: i32 = 2000;

#[derive(Debug)]
struct Client {
    sock: UnixStream,
    buf: Vec<u8>,
    attached: bool,
    stdin: bool,
    dead: bool,
}

pub struct Monitor {
    pub id: String,
    pub pid: i32,
    pub stdio: Stdio3,
    pub stdin_once: bool,
    pub log: CriLog,
    pub listener: UnixListener,
    pub sigfd: OwnedFd,
    clients: Vec<Client>,
    status: Option<i32>,
}

fn warn(id: &str, what: &str, e: &dyn std::fmt::Display) {
    eprintln!("crust-monitor[{id}]: {what}: {e}");
}

impl Monitor {
    pub fn new(
        id: String,
        pid: i32,
        stdio: Stdio3,
        stdin_once: bool,
        log: CriLog,
        listener: UnixListener,
        sigfd: OwnedFd,
    ) -> Self {
        Monitor {
            id,
            pid,
            stdio,
            stdin_once,
            log,
            listener,
            sigfd,
            clients: Vec::new(),
            status: None,
        }
    }

    /// Runs until the container init exited and its output is drained; returns
    /// the init's wait status.
    pub fn run(mut self) -> io::Result<(i32, Vec<UnixStream>)> {
        let mut buf = vec![0u8; BUF];
        self.reap();
        loop {
            let outputs_open = self.stdio.stdout.is_some() || self.stdio.stderr.is_some();
            if let Some(st) = self.status
                && !outputs_open
            {
                return Ok((st, self.take_attached()));
            }
            let mut fds = Vec::with_capacity(4 + self.clients.len());
            let pfd = |fd: i32| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            fds.push(pfd(self.sigfd.as_raw_fd()));
            fds.push(pfd(self.listener.as_raw_fd()));
            fds.push(pfd(self
                .stdio
                .stdout
                .as_ref()
                .map_or(-1, |f| f.as_raw_fd())));
            fds.push(pfd(self
                .stdio
                .stderr
                .as_ref()
                .map_or(-1, |f| f.as_raw_fd())));
            fds.extend(self.clients.iter().map(|c| pfd(c.sock.as_raw_fd())));
            let timeout = if self.status.is_some() { DRAIN_MS } else { -1 };
            let n = match sys::poll(&mut fds, timeout) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 && self.status.is_some() {
                // Output still held open by someone else: stop waiting.
                self.finish_output(Stream::Stdout);
                self.finish_output(Stream::Stderr);
                continue;
            }
            let ready = |i: usize| fds[i].revents != 0;
            if ready(0) {
                let mut si = [0u8; 128];
                while sys::read(self.sigfd.as_fd(), &mut si).is_ok() {}
                self.reap();
            }
            if ready(2) {
                self.pump(Stream::Stdout, &mut buf);
            }
            if ready(3) {
                self.pump(Stream::Stderr, &mut buf);
            }
            for i in 0..self.clients.len() {
                if fds.get(4 + i).is_some_and(|f| f.revents != 0) {
                    self.client_readable(i);
                }
            }
            self.drop_dead_clients();
            if ready(1) {
                self.accept();
            }
        }
    }

    fn reap(&mut self) {
        while let Some((pid, status)) = sys::reap_any() {
            if pid == self.pid {
                self.status = Some(status);
            }
        }
    }

    fn stream_fd(&self, s: Stream) -> Option<&OwnedFd> {
        match s {
            Stream::Stdout => self.stdio.stdout.as_ref(),
            Stream::Stderr => self.stdio.stderr.as_ref(),
        }
    }

    fn finish_output(&mut self, s: Stream) {
        let slot = match s {
            Stream::Stdout => &mut self.stdio.stdout,
            Stream::Stderr => &mut self.stdio.stderr,
        };
        if slot.take().is_some()
            && let Err(e) = self.log.finish(s)
        {
            warn(&self.id, "log", &e);
        }
    }

    /// Reads what is available on one output stream.
    fn pump(&mut self, s: Stream, buf: &mut [u8]) {
        let Some(fd) = self.stream_fd(s) else { return };
        match sys::read(fd.as_fd(), buf) {
            Ok(0) => self.finish_output(s),
            Ok(n) => {
                if let Err(e) = self.log.write(s, &buf[..n]) {
                    warn(&self.id, "log", &e);
                }
                let id = if s == Stream::Stdout {
                    wire::STREAM_STDOUT
                } else {
                    wire::STREAM_STDERR
                };
                let frame = wire::encode_frame(id, &buf[..n]);
                for c in self.clients.iter_mut().filter(|c| c.attached && !c.dead) {
                    // Non-blocking: a full socket means a slow client; drop it.
                    if !matches!(c.sock.write(&frame), Ok(w) if w == frame.len()) {
                        c.dead = true;
                    }
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            // EIO: pty master after the last slave closed.
            Err(_) => self.finish_output(s),
        }
    }

    fn accept(&mut self) {
        while let Ok((sock, _)) = self.listener.accept() {
            if sock.set_nonblocking(true).is_ok() {
                self.clients.push(Client {
                    sock,
                    buf: Vec::new(),
                    attached: false,
                    stdin: false,
                    dead: false,
                });
            }
        }
    }

    fn client_readable(&mut self, i: usize) {
        let mut tmp = [0u8; 4096];
        let c = &mut self.clients[i];
        match io::Read::read(&mut c.sock, &mut tmp) {
            Ok(0) => c.dead = true,
            Ok(n) => {
                c.buf.extend_from_slice(&tmp[..n]);
                if c.buf.len() > MAX_CLIENT_BUF {
                    c.dead = true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => c.dead = true,
        }
        if self.clients[i].dead {
            return;
        }
        if !self.clients[i].attached {
            let req = match wire::split_delimited(&self.clients[i].buf) {
                Ok(None) => return,
                Ok(Some((body, used))) => {
                    let r = wire::decode_request(body);
                    self.clients[i].buf.drain(..used);
                    r
                }
                Err(e) => Err(e),
            };
            self.handle_request(i, req);
        }
        if self.clients[i].attached {
            self.client_frames(i);
        }
    }

    fn handle_request(&mut self, i: usize, req: Result<Request, wire::WireError>) {
        let mut resp = Response {
            pid: self.pid,
            running: self.status.is_none(),
            ..Default::default()
        };
        if let Some(st) = self.status {
            resp.exit_code = ExitInfo::from_wait_status(st, String::new(), false).exit_code;
        }
        let mut keep = false;
        match req {
            Err(e) => resp.error = format!("invalid request: {e}"),
            Ok(Request::Status) => {}
            Ok(Request::ReopenLog) => {
                if let Err(e) = self.log.reopen() {
                    resp.error = e.to_string();
                }
            }
            Ok(Request::Resize { rows, cols }) => match &self.stdio.pty {
                None => resp.error = format!("container {}: resize: no terminal", self.id),
                Some(p) => {
                    if let Err(e) = sys::set_winsize(p.as_fd(), rows, cols) {
                        resp.error = format!("container {}: resize: {e}", self.id);
                    }
                }
            },
            Ok(Request::Attach { stdin }) => {
                keep = true;
                self.clients[i].attached = true;
                self.clients[i].stdin = stdin && self.stdio.stdin.is_some();
            }
        }
        let c = &mut self.clients[i];
        let out = wire::encode_response(&resp);
        if !matches!(c.sock.write(&out), Ok(n) if n == out.len()) || !keep {
            c.dead = true;
        }
    }

    fn client_frames(&mut self, i: usize) {
        let mut used = 0;
        let mut close_stdin = false;
        {
            let c = &self.clients[i];
            while let Some((id, data, n)) = wire::decode_frame(&c.buf[used..]) {
                used += n;
                match id {
                    wire::STREAM_STDIN if c.stdin => {
                        if let Some(fd) = &self.stdio.stdin {
                            // Non-blocking: if the container does not read its stdin, input is dropped
                            // rather than stalling the loop.
                            let mut d = data;
                            while !d.is_empty() {
                                match sys::write(fd.as_fd(), d) {
                                    Ok(n) => d = &d[n..],
                                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                    Err(e) => {
                                        warn(&self.id, "stdin", &e);
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    wire::STREAM_CLOSE_STDIN if c.stdin => close_stdin = true,
                    _ => {}
                }
            }
        }
        self.clients[i].buf.drain(..used);
        if close_stdin && self.stdio.pty.is_none() {
            self.stdio.stdin = None;
        }
    }

    fn drop_dead_clients(&mut self) {
        let mut close_stdin = false;
        self.clients.retain(|c| {
            if c.dead && c.stdin {
                close_stdin = true;
            }
            !c.dead
        });
        if close_stdin && self.stdin_once && self.stdio.pty.is_none() {
            self.stdio.stdin = None;
        }
    }

    fn take_attached(&mut self) -> Vec<UnixStream> {
        self.clients
            .drain(..)
            .filter(|c| c.attached && !c.dead)
            .map(|c| c.sock)
            .collect()
    }
}

/// Tells the remaining attachers how it ended (frame id 4, BE exit code).
pub fn send_exit(clients: Vec<UnixStream>, exit_code: i32) {
    let f = wire::encode_frame(wire::STREAM_EXIT, &exit_code.to_be_bytes());
    for mut c in clients {
        let _ = c.write(&f);
    }
}
