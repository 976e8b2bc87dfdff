//! Running extra processes in a running container: the exec core under `ExecSync` (here
//! and in [`sync`]) and the streaming `Exec` (`crate::streaming` drives an
//! [`ExecProcess`]).
//!
//! The daemon runs `<runtime> exec` itself, in the foreground, instead of asking the
//! container's monitor: one process hop fewer per exec (CRI-O spawns a conmon per exec,
//! which then spawns the runtime), and the daemon already reaps its children through
//! tokio; the monitor's job is the container's own stdio, log and exit, none of which an
//! exec touches. The foreground runtime is the exec'd process's parent (subreaper),
//! forwards signals to it and exits with its status, so the exit code of an exec is the
//! runtime's (128+signal on signal death).
//!
//! Validation follows CRI-O: an unknown container is NotFound, a container that is not
//! running FailedPrecondition (naming it and its state), an empty `cmd` InvalidArgument.

pub mod sync;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::lifecycle::{LifecycleError, Manager};
use crate::runtime::exec::proctree::{ProcFs, signal_host};
use crate::runtime::exec::{self, ExecFiles, pty};
use crate::state::new_id;

pub use sync::ExecSyncOutput;

/// How long a killed exec tree may take to disappear before the kill gives up waiting.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// What to run and which streams to connect (CRI `ExecRequest` without the container id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// Command and arguments; must not be empty.
    pub cmd: Vec<String>,
    /// Run on a terminal: output comes on `stdout` only, `stderr` is `None`.
    pub tty: bool,
    /// Connect stdin.
    pub stdin: bool,
    /// Connect stdout (with `tty`: the terminal output).
    pub stdout: bool,
    /// Connect stderr (ignored with `tty`).
    pub stderr: bool,
}

/// Resizes the terminal of a tty exec. Cheap to clone; resizing after the exec ended is a
/// no-op.
#[derive(Clone, Debug)]
pub struct ResizeHandle {
    master: pty::Master,
    runtime_pid: i32,
    done: Arc<AtomicBool>,
}

impl ResizeHandle {
    /// Set the terminal size: TIOCSWINSZ on our end of the terminal, then SIGWINCH to the
    /// runtime, which copies the size to the container's terminal (see
    /// `runtime::exec::pty`).
    pub fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        if self.done.load(Ordering::Acquire) {
            return Ok(());
        }
        self.master.set_size(rows, cols)?;
        signal_host(self.runtime_pid, rustix::process::Signal::WINCH);
        Ok(())
    }
}

/// Kills an exec's process tree; cheap to clone, usable while another task waits.
#[derive(Clone, Debug)]
pub struct ExecKiller {
    files: Arc<ExecFiles>,
    runtime_pid: i32,
    done: Arc<AtomicBool>,
    proc_fs: ProcFs,
}

impl ExecKiller {
    /// Freeze and SIGKILL the exec'd process and all its descendants (see
    /// `runtime::exec::proctree`), then wait until none of them runs. The runtime itself
    /// is left alive: it reaps the process and exits with 137.
    pub async fn kill(&self) {
        let killed = self.kill_now();
        if !self.proc_fs.wait_gone(&killed, KILL_WAIT).await {
            tracing::warn!(runtime_pid = self.runtime_pid, pids = ?killed, "exec processes survive SIGKILL");
        }
    }

    /// Freeze and SIGKILL the tree without waiting; returns the pids signalled (none once
    /// the exec ended).
    fn kill_now(&self) -> Vec<i32> {
        if self.done.load(Ordering::Acquire) {
            return Vec::new();
        }
        let rt = self.runtime_pid;
        // The exec'd process is the runtime's child once started; before that the
        // runtime's children are its `init` helpers. Both are killed.
        let mut roots = self.proc_fs.children(rt);
        if let Some(pid) = self.files.pid()
            && self.proc_fs.stat(pid).is_some_and(|(_, ppid)| ppid == rt)
        {
            roots.insert(0, pid);
        }
        let killed = self.proc_fs.kill_tree(&roots, signal_host);
        tracing::debug!(runtime_pid = rt, killed = ?killed, "killed exec process tree");
        killed
    }
}

/// A running exec. Take the streams out, then [`ExecProcess::wait`]. Dropping it before
/// the exec ended kills the exec'd tree (without waiting) and the runtime process, so an
/// abandoned exec never leaves processes in the container.
pub struct ExecProcess {
    /// The process's stdin; `None` unless requested. Without a tty, dropping or shutting
    /// it down closes the process's stdin (EOF). With a tty it writes to the terminal,
    /// and closing it does nothing to the terminal: the process sees end of input only
    /// when it reads a ^D the client sent (kubectl sends nothing special).
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// The process's stdout; with a tty the terminal output.
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The process's stderr; always `None` with a tty.
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Terminal resizes; `Some` only with a tty.
    pub resize: Option<ResizeHandle>,
    child: tokio::process::Child,
    killer: ExecKiller,
    container_id: String,
    exit_code: Option<i32>,
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("container_id", &self.container_id)
            .field("runtime_pid", &self.killer.runtime_pid)
            .field("exit_code", &self.exit_code)
            .finish_non_exhaustive()
    }
}

impl Drop for ExecProcess {
    fn drop(&mut self) {
        if self.exit_code.is_none() {
            let killed = self.killer.kill_now();
            if !killed.is_empty() {
                tracing::info!(container = %self.container_id, pids = ?killed, "exec dropped while running: killed its processes");
            }
            // `kill_on_drop` then kills and tokio reaps the runtime process.
        }
    }
}

impl ExecProcess {
    /// Wait for the exec to end: its exit code (128+signal on signal death). Safe to call
    /// again; the runtime process is reaped exactly once.
    pub async fn wait(&mut self) -> Result<i32, LifecycleError> {
        if let Some(c) = self.exit_code {
            return Ok(c);
        }
        let status = self
            .child
            .wait()
            .await
            .map_err(|source| LifecycleError::Io {
                op: "wait for the exec runtime of container",
                path: self.killer.files.process.clone(),
                source,
            })?;
        self.killer.done.store(true, Ordering::Release);
        let code = exec::exit_code(status);
        tracing::debug!(container = %self.container_id, exit_code = code, "exec finished");
        self.exit_code = Some(code);
        Ok(code)
    }

    /// Kill the exec'd process tree (the client went away, a timeout passed); returns once
    /// none of it runs. [`ExecProcess::wait`] then returns promptly. (Used as
    /// `p.kill().await`; the future owns a [`ExecKiller`] rather than borrowing `self`,
    /// which holds non-`Sync` streams, so it stays `Send`.)
    pub fn kill(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let killer = self.killer.clone();
        async move { killer.kill().await }
    }

    /// A handle that kills the tree from another task while this one waits.
    pub fn killer(&self) -> ExecKiller {
        self.killer.clone()
    }

    /// The runtime process's pid.
    pub fn runtime_pid(&self) -> i32 {
        self.killer.runtime_pid
    }

    /// Last resort for runtimes whose exec'd process is not a host process (runsc):
    /// SIGKILL the runtime itself.
    pub fn kill_runtime(&mut self) {
        if let Err(e) = self.child.start_kill() {
            tracing::debug!(container = %self.container_id, error = %e, "exec runtime already gone");
        }
    }
}

impl Manager {
    /// Start `req.cmd` in a running container; see [`ExecProcess`].
    pub async fn exec_process(
        self: &Arc<Self>,
        container_id: &str,
        req: ExecRequest,
    ) -> Result<ExecProcess, LifecycleError> {
        if req.cmd.is_empty() {
            return Err(LifecycleError::invalid("cmd", "[]", "must not be empty"));
        }
        let c = self.running_container(container_id, "exec needs a running container")?;
        tracing::Span::current().record("container", c.id.as_str());
        let rec = c.record();
        let runtime = self.handler(&rec.runtime_handler)?.runtime.clone();
        let nonce = new_id();
        let files = Arc::new(ExecFiles::new(
            &rec.bundle,
            nonce.get(..16).unwrap_or(&nonce),
        ));
        self.write_process_file(&rec.bundle, &files, &req).await?;
        let mut cmd = runtime.exec_command(&c.id, &files);
        let io = |op: &'static str| {
            let path = files.process.clone();
            move |source| LifecycleError::Io { op, path, source }
        };
        let mut master = None;
        if req.tty {
            let (m, slave) = pty::open().map_err(io("open a terminal for exec"))?;
            let dup = |fd: &std::os::fd::OwnedFd| fd.try_clone().map_err(io("duplicate terminal"));
            cmd.stdin(dup(&slave)?).stdout(dup(&slave)?).stderr(slave);
            master = Some(pty::Master::new(m).map_err(io("register exec terminal"))?);
        } else {
            let pipe = |on: bool| {
                if on {
                    std::process::Stdio::piped()
                } else {
                    std::process::Stdio::null()
                }
            };
            cmd.stdin(pipe(req.stdin))
                .stdout(pipe(req.stdout))
                .stderr(pipe(req.stderr));
        }
        tracing::debug!(container = %c.id, cmd = ?req.cmd, tty = req.tty, "exec");
        let child = cmd.spawn().map_err(|source| LifecycleError::Runtime {
            op: "exec in",
            kind: "container",
            id: c.id.clone(),
            source: Box::new(crate::runtime::RuntimeError::Spawn {
                at: crate::runtime::error::Invocation::boxed(&runtime.path, "exec", &c.id),
                source,
            }),
        })?;
        // The slave copies live in `cmd`: drop them so the terminal reaches end of file
        // when the runtime and the process are gone.
        drop(cmd);
        let runtime_pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or_default();
        let done = Arc::new(AtomicBool::new(false));
        let killer = ExecKiller {
            files,
            runtime_pid,
            done: Arc::clone(&done),
            proc_fs: ProcFs::default(),
        };
        let mut p = ExecProcess {
            stdin: None,
            stdout: None,
            stderr: None,
            resize: None,
            child,
            killer,
            container_id: c.id.clone(),
            exit_code: None,
        };
        match master {
            Some(m) => {
                if req.stdin {
                    p.stdin = Some(Box::new(m.writer()));
                }
                if req.stdout {
                    p.stdout = Some(Box::new(m.reader()));
                }
                p.resize = Some(ResizeHandle {
                    master: m,
                    runtime_pid,
                    done,
                });
            }
            None => {
                p.stdin = p
                    .child
                    .stdin
                    .take()
                    .map(|s| Box::new(s) as Box<dyn AsyncWrite + Send + Unpin>);
                p.stdout = p
                    .child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
                p.stderr = p
                    .child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
            }
        }
        Ok(p)
    }

    /// Write the exec's process JSON (from the container's `config.json`) into its bundle.
    async fn write_process_file(
        self: &Arc<Self>,
        bundle: &std::path::Path,
        files: &Arc<ExecFiles>,
        req: &ExecRequest,
    ) -> Result<(), LifecycleError> {
        let config_path = bundle.join("config.json");
        let (files, args, tty) = (Arc::clone(files), req.cmd.clone(), req.tty);
        let oom_min = self.opts.oom_score_adj_min;
        crate::blocking::run("write exec process", move || {
            let io = |op: &'static str, path: std::path::PathBuf| {
                move |source| LifecycleError::Io { op, path, source }
            };
            let raw = std::fs::read(&config_path).map_err(io("read", config_path.clone()))?;
            let bad = |reason: String| LifecycleError::Io {
                op: "parse",
                path: config_path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
            };
            let config: serde_json::Value =
                serde_json::from_slice(&raw).map_err(|e| bad(e.to_string()))?;
            let process = exec::process_json(&config, &args, tty, oom_min).map_err(bad)?;
            let json = serde_json::to_vec(&process).map_err(|e| bad(e.to_string()))?;
            std::fs::write(&files.process, json).map_err(io("write", files.process.clone()))
        })
        .await?
    }
}
