//! Runs `<runtime> [--root R] [runtime args] create --bundle B --pid-file B/pid
//! [--console-socket S] <id>` with the container's stdio, and collects the pid.
//!
//! Follows the OCI runtime CLI as implemented by runc: `create` leaves the container
//! init waiting for `start` and exits; the init is then reparented to us (subreaper).

use crate::args::Args;
use crate::sys;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {id}: {op}")]
    Io {
        id: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: runtime create failed ({status}): {stderr}")]
    Create {
        id: String,
        status: String,
        stderr: String,
    },
    #[error("container {id}: pid file {path}: invalid content `{content}`")]
    PidFile {
        id: String,
        path: PathBuf,
        content: String,
    },
}

/// The monitor's ends of the container stdio.
#[derive(Debug)]
pub struct Stdio3 {
    /// Write end of the container's stdin (or a dup of the pty master).
    pub stdin: Option<OwnedFd>,
    /// Read end of stdout (or the pty master).
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// With --tty: the pty master, for resize.
    pub pty: Option<OwnedFd>,
}

/// The runtime command line (without stdio), split out for tests.
pub fn create_argv(a: &Args, console: Option<&std::path::Path>) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = Vec::new();
    if let Some(r) = &a.runtime_root {
        v.push("--root".into());
        v.push(r.into());
    }
    v.extend(a.runtime_args.iter().cloned());
    v.push("create".into());
    v.push("--bundle".into());
    v.push(a.bundle.clone().into());
    v.push("--pid-file".into());
    v.push(a.bundle.join("pid").into());
    if let Some(c) = console {
        v.push("--console-socket".into());
        v.push(c.into());
    }
    v.push(a.id.clone().into());
    v
}

/// Path of the console socket for --tty: next to the control socket.
pub fn console_path(a: &Args) -> PathBuf {
    let mut p = a.socket.clone().into_os_string();
    p.push(".console");
    p.into()
}

/// Runs `create`; returns the container init pid and our stdio ends.
pub fn create(a: &Args) -> Result<(i32, Stdio3), RuntimeError> {
    let io = |op: &str| {
        let id = a.id.clone();
        let op = op.to_string();
        move |source| RuntimeError::Io { id, op, source }
    };
    let (err_r, err_w) = sys::pipe().map_err(io("stderr pipe"))?;
    let mut cmd = Command::new(&a.runtime);
    let mut st = Stdio3 {
        stdin: None,
        stdout: None,
        stderr: None,
        pty: None,
    };
    let console = if a.tty {
        let p = console_path(a);
        let _ = std::fs::remove_file(&p);
        let l = UnixListener::bind(&p).map_err(io("bind console socket"))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        Some((p, l))
    } else {
        let (out_r, out_w) = sys::pipe().map_err(io("stdout pipe"))?;
        cmd.stdout(out_w);
        st.stdout = Some(out_r);
        if a.stdin {
            let (in_r, in_w) = sys::pipe().map_err(io("stdin pipe"))?;
            cmd.stdin(in_r);
            st.stdin = Some(in_w);
        } else {
            cmd.stdin(Stdio::null());
        }
        None
    };
    cmd.stderr(err_w);
    cmd.args(create_argv(a, console.as_ref().map(|c| c.0.as_path())));
    let mut child = cmd.spawn().map_err(io("spawn runtime"))?;
    drop(cmd); // closes our copies of the child's pipe ends

    if let Some((path, listener)) = &console {
        listener
            .set_nonblocking(true)
            .map_err(io("console socket"))?;
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).map_err(io("console socket"))?;
                    let m = sys::recv_fd(&s).map_err(io("receive pty master"))?;
                    st.stdin = Some(m.try_clone().map_err(io("dup pty master"))?);
                    st.stdout = Some(m.try_clone().map_err(io("dup pty master"))?);
                    st.pty = Some(m);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if child.try_wait().map_err(io("wait runtime"))?.is_some() {
                        break;
                    }
                    let mut p = [libc::pollfd {
                        fd: listener.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    }];
                    let _ = sys::poll(&mut p, 100);
                }
                Err(e) => return Err(io("accept console socket")(e)),
            }
        }
        let _ = std::fs::remove_file(path);
    }
    let status = child.wait().map_err(io("wait runtime"))?;
    if !status.success() || (a.tty && st.pty.is_none()) {
        sys::set_nonblock(err_r.as_raw_fd()).map_err(io("stderr pipe"))?;
        let mut buf = Vec::new();
        let _ = std::fs::File::from(err_r)
            .take(16 * 1024)
            .read_to_end(&mut buf);
        return Err(RuntimeError::Create {
            id: a.id.clone(),
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&buf).trim().to_string(),
        });
    }
    if !a.tty {
        st.stderr = Some(err_r);
    } else {
        // With a terminal the container has no separate stderr; runtime chatter
        // after create is irrelevant.
        drop(err_r);
    }
    let pid_path = a.bundle.join("pid");
    let content = std::fs::read_to_string(&pid_path).map_err(io("read pid file"))?;
    let pid = content
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| RuntimeError::PidFile {
            id: a.id.clone(),
            path: pid_path.clone(),
            content: content.clone(),
        })?;
    for fd in [&st.stdout, &st.stderr].into_iter().flatten() {
        sys::set_nonblock(fd.as_fd().as_raw_fd()).map_err(io("set stdio non-blocking"))?;
    }
    if let Some(fd) = &st.stdin {
        sys::set_nonblock(fd.as_raw_fd()).map_err(io("set stdin non-blocking"))?;
    }
    Ok((pid, st))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn argv_order() {
        let a = Args {
            id: "c1".into(),
            bundle: "/b".into(),
            runtime_root: Some("/r".into()),
            runtime_args: vec!["--debug".into()],
            socket: "/run/x.sock".into(),
            ..Default::default()
        };
        let v: Vec<String> = create_argv(&a, Some(std::path::Path::new("/c")))
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(
            v,
            [
                "--root",
                "/r",
                "--debug",
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/b/pid",
                "--console-socket",
                "/c",
                "c1"
            ]
        );
        assert_eq!(console_path(&a), PathBuf::from("/run/x.sock.console"));
    }
}
