//! Starting a monitor for one container and learning the outcome of `<runtime> create`.
//!
//! Sequence (conmon-rs/README.md): the daemon makes a pipe, starts `crust-monitor` with
//! the write end as `--sync-fd`, reaps the first monitor process (it forks and exits at
//! once so the real monitor is not our child and survives us), then reads one
//! length-delimited `SyncResult` from the pipe: the container's pid, or the runtime's
//! error. This is CRI-O's conmon `--sync-pipe` handshake.
//!
//! Both ends are close-on-exec; the monitor receives the write end as its stdout, which
//! the spawn dup2s into place. So another process spawned concurrently by the daemon can
//! never hold the write end open and delay end-of-file.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crust_proto::monitor::{SyncResult, sync_result};
use prost::Message;
use tokio::io::AsyncReadExt;

use super::MonitorError;
use crate::runtime::OciRuntime;

/// How long `<runtime> create` may take before spawn gives up (CRI-O waits up to
/// its `ctr_create_timeout`-like 240 s; runc create takes tens of milliseconds).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Control socket paths must leave room for the `.console` suffix within sun_path.
pub const MAX_SOCKET_PATH: usize = 99;

/// Diagnostics file of the monitor (its stderr), inside the bundle.
pub const MONITOR_LOG: &str = "monitor.log";

/// The monitor's fd for the sync pipe: its stdout (see [`spawn_with_timeout`]).
const SYNC_FD: i32 = 1;

/// Everything the monitor needs for one container.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    /// `crust-monitor` binary.
    pub monitor_path: PathBuf,
    /// Container id.
    pub id: String,
    /// OCI bundle (config.json inside); the runtime writes `<bundle>/pid`.
    pub bundle: PathBuf,
    /// The runtime that creates the container.
    pub runtime: OciRuntime,
    /// CRI log file.
    pub log_path: PathBuf,
    /// Where the monitor records the exit.
    pub exit_file: PathBuf,
    /// Control socket.
    pub socket: PathBuf,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep a stdin pipe for attach.
    pub stdin: bool,
    /// Close stdin after the first attacher leaves.
    pub stdin_once: bool,
}

/// A created container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    /// Host pid of the container's init process.
    pub pid: i32,
    /// Pid of the (detached) monitor.
    pub monitor_pid: i32,
}

impl SpawnRequest {
    /// The monitor's arguments (after argv\[0\]) with `--sync-fd sync_fd`.
    pub fn args(&self, sync_fd: i32) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![
            "--id".into(),
            self.id.clone().into(),
            "--bundle".into(),
            self.bundle.clone().into(),
            "--runtime".into(),
            self.runtime.path.clone().into(),
        ];
        if !self.runtime.root.as_os_str().is_empty() {
            a.push("--runtime-root".into());
            a.push(self.runtime.root.clone().into());
        }
        for r in &self.runtime.args {
            a.push("--runtime-arg".into());
            a.push(r.into());
        }
        a.extend([
            "--log-path".into(),
            self.log_path.clone().into(),
            "--exit-file".into(),
            self.exit_file.clone().into(),
            "--socket".into(),
            self.socket.clone().into(),
        ]);
        for (on, flag) in [
            (self.tty, "--tty"),
            (self.stdin, "--stdin"),
            (self.stdin_once, "--stdin-once"),
        ] {
            if on {
                a.push(flag.into());
            }
        }
        a.push("--sync-fd".into());
        a.push(sync_fd.to_string().into());
        a
    }

    fn validate(&self) -> Result<(), MonitorError> {
        let invalid = |field, value: &Path, reason| MonitorError::Invalid {
            field,
            value: value.display().to_string(),
            reason,
        };
        if self.socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(invalid(
                "socket",
                &self.socket,
                "unix socket path too long (max 99 bytes)",
            ));
        }
        for (field, p) in [
            ("bundle", &self.bundle),
            ("socket", &self.socket),
            ("log_path", &self.log_path),
            ("exit_file", &self.exit_file),
        ] {
            if !p.is_absolute() {
                return Err(invalid(field, p, "must be an absolute path"));
            }
        }
        Ok(())
    }
}

/// Start the monitor for `req` and wait (up to [`SYNC_TIMEOUT`]) for the create result.
pub async fn spawn(req: &SpawnRequest) -> Result<Spawned, MonitorError> {
    spawn_with_timeout(req, SYNC_TIMEOUT).await
}

/// [`spawn`] with an explicit timeout.
pub async fn spawn_with_timeout(
    req: &SpawnRequest,
    timeout: Duration,
) -> Result<Spawned, MonitorError> {
    req.validate()?;
    let id = req.id.clone();
    let diag_path = req.bundle.join(MONITOR_LOG);
    let (diag, read_end, write_end) = {
        let id = id.clone();
        let path = diag_path.clone();
        crate::blocking::run("open monitor log", move || prepare(&id, &path)).await??
    };

    // The write end becomes the monitor's stdout: stdio is set up by the spawn itself, so
    // no code runs between fork and exec and the standard library can use `posix_spawn`
    // (a vfork) instead of forking the whole daemon, which costs a millisecond or more
    // per container with the daemon's threads and memory. The monitor moves the pipe off
    // fd 1 at once (`--sync-fd 1`).
    let mut cmd = tokio::process::Command::new(&req.monitor_path);
    cmd.args(req.args(SYNC_FD))
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::from(diag))
        .kill_on_drop(false);
    let spawned = cmd.spawn();
    // The command holds the parent's copy of the write end: closed here, so the pipe
    // reaches end-of-file once the monitor is done with it.
    drop(cmd);
    let mut child = spawned.map_err(|source| MonitorError::Spawn {
        id: id.clone(),
        monitor: req.monitor_path.clone(),
        source,
    })?;
    let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(read_end).map_err(|source| {
        MonitorError::Io {
            id: id.clone(),
            op: "read sync pipe of",
            path: req.monitor_path.clone(),
            source,
        }
    })?;

    let waited = tokio::time::timeout(timeout, async {
        let status = child.wait().await;
        let mut buf = Vec::new();
        let read = rx.read_to_end(&mut buf).await;
        (status, read, buf)
    })
    .await;
    let (status, read, buf) = match waited {
        Ok(v) => v,
        Err(_) => {
            let _ = child.start_kill();
            return Err(MonitorError::Timeout { id, after: timeout });
        }
    };
    let status_text = match &status {
        Ok(s) => s.to_string(),
        Err(e) => format!("wait failed: {e}"),
    };
    if let Err(source) = read {
        return Err(MonitorError::Io {
            id,
            op: "read sync pipe of",
            path: req.monitor_path.clone(),
            source,
        });
    }
    if buf.is_empty() {
        let diagnostics = crate::blocking::run("read monitor log", move || tail(&diag_path))
            .await
            .unwrap_or_default();
        return Err(MonitorError::NoResult {
            id,
            status: status_text,
            diagnostics,
        });
    }
    let sync =
        SyncResult::decode_length_delimited(&buf[..]).map_err(|source| MonitorError::Decode {
            what: format!("container {id}: sync pipe"),
            source,
        })?;
    match sync.result {
        Some(sync_result::Result::Pid(pid)) => {
            tracing::debug!(id = %id, pid, monitor_pid = sync.monitor_pid, "container created");
            Ok(Spawned {
                pid,
                monitor_pid: sync.monitor_pid,
            })
        }
        Some(sync_result::Result::Error(message)) => Err(MonitorError::CreateFailed {
            id,
            message: crate::runtime::cli::clean_runtime_output(message.trim()),
        }),
        None => Err(MonitorError::NoResult {
            id,
            status: status_text,
            diagnostics: "empty sync result".to_owned(),
        }),
    }
}

/// Open the diagnostics file and make the sync pipe (both ends close-on-exec).
fn prepare(id: &str, diag: &Path) -> Result<(File, OwnedFd, OwnedFd), MonitorError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(diag)
        .map_err(|source| MonitorError::Io {
            id: id.to_owned(),
            op: "open monitor diagnostics",
            path: diag.to_path_buf(),
            source,
        })?;
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| {
        MonitorError::Io {
            id: id.to_owned(),
            op: "create sync pipe for",
            path: diag.to_path_buf(),
            source: e.into(),
        }
    })?;
    Ok((file, r, w))
}

/// Last 2 KiB of the diagnostics file, trimmed.
fn tail(p: &Path) -> String {
    let Ok(b) = std::fs::read(p) else {
        return String::new();
    };
    let start = b.len().saturating_sub(2048);
    String::from_utf8_lossy(&b[start..]).trim().to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;

    fn req(dir: &Path, monitor: PathBuf) -> SpawnRequest {
        SpawnRequest {
            monitor_path: monitor,
            id: "c1".into(),
            bundle: dir.to_path_buf(),
            runtime: OciRuntime {
                path: "/usr/sbin/runsc".into(),
                root: "/run/crust/runtimes/runsc".into(),
                args: vec!["--platform=ptrace".into()],
            },
            log_path: dir.join("ctr.log"),
            exit_file: dir.join("exit.json"),
            socket: dir.join("ctl.sock"),
            tty: true,
            stdin: true,
            stdin_once: false,
        }
    }

    fn script(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("fake-monitor");
        crate::testutil::write_executable(&p, &format!("#!/bin/sh\n{body}\n"));
        p
    }

    #[test]
    fn args_follow_the_cli_contract() {
        let r = req(Path::new("/b"), "/m".into());
        let a: Vec<String> = r
            .args(7)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(
            a.join(" "),
            "--id c1 --bundle /b --runtime /usr/sbin/runsc --runtime-root /run/crust/runtimes/runsc \
             --runtime-arg --platform=ptrace --log-path /b/ctr.log --exit-file /b/exit.json \
             --socket /b/ctl.sock --tty --stdin --sync-fd 7"
        );
    }

    #[tokio::test]
    async fn rejects_long_socket_and_relative_paths() {
        let mut r = req(Path::new("/b"), "/m".into());
        r.socket = PathBuf::from(format!("/{}", "s".repeat(120)));
        let e = spawn(&r).await.unwrap_err();
        assert!(
            matches!(
                e,
                MonitorError::Invalid {
                    field: "socket",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.kind(), super::super::ErrorKind::InvalidArgument);
        let mut r = req(Path::new("/b"), "/m".into());
        r.log_path = "rel.log".into();
        assert!(matches!(
            spawn(&r).await,
            Err(MonitorError::Invalid {
                field: "log_path",
                ..
            })
        ));
    }

    /// A fake monitor that writes a length-delimited SyncResult to its --sync-fd from a
    /// background (grandchild-like) process and exits at once, like the real one.
    fn fake_result(dir: &Path, msg: &SyncResult) -> PathBuf {
        let bytes = msg.encode_length_delimited_to_vec();
        std::fs::write(dir.join("sync.bin"), &bytes).unwrap();
        script(
            dir,
            &format!(
                "while [ \"$1\" != --sync-fd ]; do shift; done; fd=$2\n\
                 (sleep 0.1; cat {} > /dev/fd/$fd) &\nexit 0",
                dir.join("sync.bin").display()
            ),
        )
    }

    #[tokio::test]
    async fn reads_pid_from_sync_pipe() {
        let t = tempfile::tempdir().unwrap();
        let m = fake_result(
            t.path(),
            &SyncResult {
                result: Some(sync_result::Result::Pid(4242)),
                monitor_pid: 77,
            },
        );
        let s = spawn(&req(t.path(), m)).await.unwrap();
        assert_eq!(
            s,
            Spawned {
                pid: 4242,
                monitor_pid: 77
            }
        );
    }

    #[tokio::test]
    async fn create_error_is_create_failed() {
        let t = tempfile::tempdir().unwrap();
        let m = fake_result(
            t.path(),
            &SyncResult {
                result: Some(sync_result::Result::Error(
                    "container c1: runtime create failed (exit status 1): boom".into(),
                )),
                monitor_pid: 77,
            },
        );
        match spawn(&req(t.path(), m)).await.unwrap_err() {
            MonitorError::CreateFailed { id, message } => {
                assert_eq!(id, "c1");
                assert!(message.ends_with("boom"), "{message}");
            }
            e => panic!("unexpected {e}"),
        }
    }

    #[tokio::test]
    async fn silent_exit_reports_diagnostics() {
        let t = tempfile::tempdir().unwrap();
        let m = script(
            t.path(),
            "echo 'crust-monitor: argument --id: required' >&2; exit 2",
        );
        let e = spawn(&req(t.path(), m)).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, MonitorError::NoResult { .. }), "{msg}");
        assert!(msg.contains("argument --id: required"), "{msg}");
        assert!(msg.contains("exit status: 2"), "{msg}");
    }

    #[tokio::test]
    async fn hung_monitor_times_out() {
        let t = tempfile::tempdir().unwrap();
        let m = script(t.path(), "exec sleep 5");
        let e = spawn_with_timeout(&req(t.path(), m), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, MonitorError::Timeout { .. }), "{e}");
    }

    #[tokio::test]
    async fn missing_binary_is_spawn_error() {
        let t = tempfile::tempdir().unwrap();
        let e = spawn(&req(t.path(), t.path().join("nope")))
            .await
            .unwrap_err();
        assert!(matches!(e, MonitorError::Spawn { .. }), "{e}");
    }
}
