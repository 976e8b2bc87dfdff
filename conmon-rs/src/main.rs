//! crust-monitor: the per-container monitor (conmon's role in CRI-O).
//!
//! One monitor process per container holds the container's stdio, writes the CRI
//! log, serves attach/resize/reopen-log on a unix socket, reaps the container init
//! and records its exit (code, signal, time, OOM) in an exit file.
//!
//! Why one process per container rather than one shared: isolation (a bug or a
//! flood of output in one container cannot stall another), a crash loses only that
//! container's stdio, and surviving a daemon restart is trivial: the monitor is
//! detached (own session, subreaper of the container) and the daemon finds it again
//! through the socket and the exit file. The cost is memory, hence no async runtime,
//! one thread, small buffers and a hand-encoded protocol (see README.md).
//!
//! # CLI contract (spawned by the daemon)
//!
//! ```text
//! crust-monitor --id ID --bundle DIR --runtime PATH [--runtime-root DIR]
//!     [--runtime-arg ARG]... --log-path FILE [--log-max-size N]
//!     --exit-file FILE --socket PATH [--tty] [--stdin] [--stdin-once]
//!     [--sync-fd N] [--no-daemonize]
//! ```
//!
//! 1. Unless `--no-daemonize`, the monitor forks; the first process exits 0 at once
//!    (the daemon reaps it), the second calls `setsid` and carries on.
//! 2. It becomes a child subreaper, binds the control socket at `--socket`, creates
//!    stdio pipes (or with `--tty` a console socket at `<socket>.console`) and runs
//!    `<runtime> [--root DIR] [ARG...] create --bundle DIR --pid-file DIR/pid
//!    [--console-socket S] ID`.
//! 3. It writes one length-delimited `crust.monitor.v1.SyncResult` to `--sync-fd`
//!    (`pid` or `error` = runtime stderr, plus `monitor_pid`) and closes it. On
//!    error it exits 1 without an exit file.
//! 4. The daemon then runs `<runtime> start ID`. The monitor logs output until the
//!    init exits, writes `--exit-file` (JSON, atomic), removes the socket and exits 0.
//!
//! Protocol: `proto/monitor/monitor.proto`. Diagnostics go to the monitor's stderr
//! (the daemon should point it at a file or /dev/null). `--log-max-size` is accepted
//! and ignored: the kubelet rotates container logs and calls ReopenContainerLog.

mod args;
mod crilog;
mod event_loop;
mod exitfile;
mod oom;
mod runtime;
mod sys;
mod timefmt;
mod wire;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;

fn report(sync: &mut Option<OwnedFd>, r: &wire::SyncResult<'_>) {
    if let Some(fd) = sync.take() {
        let mut f = std::fs::File::from(fd);
        let _ = f.write_all(&wire::encode_sync(r, sys::getpid()));
    }
}

fn run(a: args::Args) -> Result<(), String> {
    let mut sync = match a.sync_fd {
        Some(n) => Some(sys::inherited_fd(n).map_err(|e| format!("sync fd {n}: {e}"))?),
        None => None,
    };
    if !a.no_daemonize
        && let Err(e) = sys::daemonize()
    {
        let msg = format!("container {}: daemonize: {e}", a.id);
        report(&mut sync, &wire::SyncResult::Error(&msg));
        return Err(msg);
    }
    let setup = || -> Result<_, String> {
        sys::set_subreaper().map_err(|e| format!("set child subreaper: {e}"))?;
        let sigfd = sys::sigchld_fd().map_err(|e| format!("signalfd: {e}"))?;
        let _ = std::fs::remove_file(&a.socket);
        let listener = UnixListener::bind(&a.socket)
            .map_err(|e| format!("bind socket {}: {e}", a.socket.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("socket: {e}"))?;
        let log = crilog::CriLog::open(&a.log_path).map_err(|e| e.to_string())?;
        let (pid, stdio) = runtime::create(&a).map_err(|e| e.to_string())?;
        Ok((sigfd, listener, log, pid, stdio))
    };
    let (sigfd, listener, log, pid, stdio) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&a.socket);
            report(&mut sync, &wire::SyncResult::Error(&e));
            return Err(e);
        }
    };
    let oom_src = oom::source_for_pid(pid);
    report(&mut sync, &wire::SyncResult::Pid(pid));

    let m = event_loop::Monitor::new(a.id.clone(), pid, stdio, a.stdin_once, log, listener, sigfd);
    let (status, attached) = m.run().map_err(|e| format!("event loop: {e}"))?;
    let oom_killed = oom_src.as_ref().is_some_and(oom::was_oom_killed);
    let info = exitfile::ExitInfo::from_wait_status(status, timefmt::now(), oom_killed);
    let res = exitfile::write(&a.exit_file, &info).map_err(|e| e.to_string());
    event_loop::send_exit(attached, info.exit_code);
    let _ = std::fs::remove_file(&a.socket);
    // Reap anything else reparented to us before leaving.
    while sys::reap_any().is_some() {}
    res
}

fn main() {
    let a = match args::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("crust-monitor: {e}");
            std::process::exit(2);
        }
    };
    let id = a.id.clone();
    if let Err(e) = run(a) {
        eprintln!("crust-monitor[{id}]: {e}");
        std::process::exit(1);
    }
}
