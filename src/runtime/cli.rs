//! One driver for every runc-compatible runtime: the OCI runtime command line
//! (opencontainers/runtime-spec `runtime.md` operations as implemented by runc's CLI, which
//! crun, youki and runsc copy): `start`, `state`, `kill`, `delete`, `update`, `pause`,
//! `resume`, each with the handler's `--root` and extra global arguments.
//!
//! `create` is not here: the monitor runs it, so that it becomes the container's parent
//! (see `crate::monitor`).
//!
//! Idempotence follows CRI-O/containerd: killing a container that already exited or
//! deleting one the runtime no longer knows is success, so Stop/Remove can be retried.

use std::path::PathBuf;
use std::process::{Output, Stdio};

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::error::{Invocation, RuntimeError, is_not_found, is_not_running};

/// Longest runtime stderr kept in an error message.
const MAX_STDERR: usize = 4096;

/// A runc-compatible runtime binary with its state root and global arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRuntime {
    /// The binary.
    pub path: PathBuf,
    /// `--root`; empty = the runtime's own default.
    pub root: PathBuf,
    /// Global arguments placed before the subcommand.
    pub args: Vec<String>,
}

/// `<runtime> state` output (runtime-spec "State").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeState {
    /// Container id.
    pub id: String,
    /// `creating`, `created`, `running`, `stopped` or `paused` (runc extension).
    pub status: String,
    /// Host pid of the init process; 0 when stopped.
    pub pid: i32,
    /// Bundle directory.
    pub bundle: PathBuf,
}

#[derive(Deserialize)]
struct RawState {
    id: String,
    status: String,
    #[serde(default)]
    pid: i32,
    #[serde(default)]
    bundle: PathBuf,
}

/// Parse `state` JSON.
pub fn parse_state(out: &[u8]) -> Result<RuntimeState, String> {
    let raw: RawState = serde_json::from_slice(out).map_err(|e| e.to_string())?;
    Ok(RuntimeState {
        id: raw.id,
        status: raw.status,
        pid: raw.pid,
        bundle: raw.bundle,
    })
}

/// The `msg="..."` of a logrus text line (runc, runsc and youki log errors as
/// `time="..." level=error msg="container does not exist"`), unquoted.
/// The logrus part may follow a prefix (the monitor's `runtime create failed (..): `).
fn logrus_msg(line: &str) -> Option<String> {
    let start = line.find("time=\"")?;
    let (prefix, logrus) = line.split_at(start);
    if !logrus.contains(" level=") {
        return None;
    }
    let rest = &logrus[logrus.find(" msg=\"")? + 6..];
    let mut out = prefix.to_owned();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Runtime output for humans: logrus lines reduced to their message.
pub fn clean_runtime_output(raw: &str) -> String {
    raw.lines()
        .map(|l| logrus_msg(l).unwrap_or_else(|| l.to_owned()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The runtime's stderr as text: cleaned, trimmed and bounded.
fn stderr_text(b: &[u8]) -> String {
    let joined = clean_runtime_output(&String::from_utf8_lossy(b));
    let s = joined.trim();
    if s.len() <= MAX_STDERR {
        return s.to_owned();
    }
    let mut end = MAX_STDERR;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn status_text(st: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => st.to_string(),
    }
}

impl OciRuntime {
    /// The full command line for `sub` (binary first), as it is run.
    pub fn command_line(&self, sub: &[&str]) -> Vec<String> {
        let mut v = vec![self.path.display().to_string()];
        if !self.root.as_os_str().is_empty() {
            v.push("--root".to_owned());
            v.push(self.root.display().to_string());
        }
        v.extend(self.args.iter().cloned());
        v.extend(sub.iter().map(|s| (*s).to_owned()));
        v
    }

    /// Run `sub`; a non-zero exit becomes [`RuntimeError::ContainerNotFound`] or
    /// [`RuntimeError::Command`].
    async fn run(
        &self,
        op: &'static str,
        id: &str,
        sub: &[&str],
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, RuntimeError> {
        let mut cmd = tokio::process::Command::new(&self.path);
        if !self.root.as_os_str().is_empty() {
            cmd.arg("--root").arg(&self.root);
        }
        cmd.args(&self.args)
            .args(sub)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn_err = |source| RuntimeError::Spawn {
            at: Invocation::boxed(&self.path, op, id),
            source,
        };
        tracing::debug!(op, id, cmd = ?self.command_line(sub), "running runtime");
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(&data).await.map_err(spawn_err)?;
            drop(pipe);
        }
        let out = child.wait_with_output().await.map_err(spawn_err)?;
        if out.status.success() {
            return Ok(out);
        }
        let stderr = stderr_text(&out.stderr);
        if is_not_found(&stderr) {
            return Err(RuntimeError::ContainerNotFound {
                at: Invocation::boxed(&self.path, op, id),
                stderr,
            });
        }
        Err(RuntimeError::Command {
            at: Invocation::boxed(&self.path, op, id),
            status: status_text(out.status),
            stderr,
        })
    }

    /// `start ID`: run the user process of a created container.
    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run("start", id, &["start", id], None).await.map(drop)
    }

    /// `state ID`; `None` when the runtime does not know the container.
    pub async fn state(&self, id: &str) -> Result<Option<RuntimeState>, RuntimeError> {
        match self.run("state", id, &["state", id], None).await {
            Ok(out) => {
                parse_state(&out.stdout)
                    .map(Some)
                    .map_err(|reason| RuntimeError::BadOutput {
                        at: Invocation::boxed(&self.path, "state", id),
                        reason,
                    })
            }
            Err(RuntimeError::ContainerNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `kill [--all] ID SIGNAL`. A container that is gone or not running is success.
    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        let sig = signal.to_string();
        let mut sub = vec!["kill"];
        if all {
            sub.push("--all");
        }
        sub.extend([id, sig.as_str()]);
        match self.run("kill", id, &sub, None).await {
            Ok(_) | Err(RuntimeError::ContainerNotFound { .. }) => Ok(()),
            Err(RuntimeError::Command { stderr, .. }) if is_not_running(&stderr) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `delete [--force] ID`. A container the runtime does not know is success.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut sub = vec!["delete"];
        if force {
            sub.push("--force");
        }
        sub.push(id);
        match self.run("delete", id, &sub, None).await {
            Ok(_) | Err(RuntimeError::ContainerNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `update --resources - ID` with the OCI `LinuxResources` JSON on stdin.
    pub async fn update(
        &self,
        id: &str,
        res: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), RuntimeError> {
        let json = serde_json::to_vec(res).map_err(|source| RuntimeError::Encode {
            op: "update",
            id: id.to_owned(),
            source,
        })?;
        self.run(
            "update",
            id,
            &["update", "--resources", "-", id],
            Some(json),
        )
        .await
        .map(drop)
    }

    /// `pause ID` (freezer).
    pub async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.run("pause", id, &["pause", id], None).await.map(drop)
    }

    /// `resume ID`.
    pub async fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.run("resume", id, &["resume", id], None)
            .await
            .map(drop)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A fake runtime: a shell script that logs its arguments and stdin, and answers per
    /// subcommand.
    fn fake(dir: &Path, body: &str) -> OciRuntime {
        let p = dir.join("fakert");
        let log = dir.join("args");
        crate::testutil::write_executable(
            &p,
            &format!(
                "#!/bin/sh\necho \"$@\" >> {log}\nwhile [ \"$1\" != \"${{1#-}}\" ]; do \
                 case \"$1\" in --root) shift 2;; *) shift;; esac; done\n{body}\n",
                log = log.display()
            ),
        );
        OciRuntime {
            path: p,
            root: dir.join("root"),
            args: vec!["--log-format=text".into()],
        }
    }

    fn args(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("args")).unwrap()
    }

    #[test]
    fn command_line_shape() {
        let r = OciRuntime {
            path: "/usr/sbin/runsc".into(),
            root: "/run/crust/runtimes/runsc".into(),
            args: vec!["--platform=ptrace".into()],
        };
        assert_eq!(
            r.command_line(&["start", "c1"]),
            [
                "/usr/sbin/runsc",
                "--root",
                "/run/crust/runtimes/runsc",
                "--platform=ptrace",
                "start",
                "c1"
            ]
        );
        let r = OciRuntime {
            root: PathBuf::new(),
            args: vec![],
            ..r
        };
        assert_eq!(
            r.command_line(&["state", "x"]),
            ["/usr/sbin/runsc", "state", "x"]
        );
    }

    #[test]
    fn stderr_is_cleaned() {
        assert_eq!(
            stderr_text(
                b"time=\"2026-11-23T11:42:37Z\" level=error msg=\"container does not exist\"\n"
            ),
            "container does not exist"
        );
        assert_eq!(
            stderr_text(
                b"time=\"x\" level=error msg=\"exec: \\\"/bin/x\\\": not found\" foo=bar\nplain line\n"
            ),
            "exec: \"/bin/x\": not found\nplain line"
        );
        assert_eq!(stderr_text(b"  free text  \n"), "free text");
        assert_eq!(
            clean_runtime_output(
                "container c: runtime create failed (exit status: 1): time=\"t\" level=error msg=\"runc create failed: x\""
            ),
            "container c: runtime create failed (exit status: 1): runc create failed: x"
        );
        let long = "x".repeat(MAX_STDERR + 10);
        assert_eq!(stderr_text(long.as_bytes()).len(), MAX_STDERR + 3);
    }

    #[test]
    fn parses_runc_state() {
        let s = parse_state(
            br#"{"ociVersion":"1.0.2-dev","id":"c1","pid":4242,"status":"running",
            "bundle":"/run/crust/containers/c1","rootfs":"/x","created":"2026-11-23T08:00:00Z","owner":""}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            RuntimeState {
                id: "c1".into(),
                status: "running".into(),
                pid: 4242,
                bundle: "/run/crust/containers/c1".into()
            }
        );
        assert!(parse_state(b"nope").is_err());
    }

    #[tokio::test]
    async fn state_and_not_found() {
        let t = tempfile::tempdir().unwrap();
        let r = fake(
            t.path(),
            "case \"$1\" in state) if [ \"$2\" = c1 ]; then \
             echo '{\"id\":\"c1\",\"status\":\"created\",\"pid\":7,\"bundle\":\"/b\"}'; \
             else echo 'time=\"x\" level=error msg=\"container does not exist\"' >&2; exit 1; fi;; esac",
        );
        let s = r.state("c1").await.unwrap().unwrap();
        assert_eq!((s.status.as_str(), s.pid), ("created", 7));
        assert_eq!(r.state("c2").await.unwrap(), None);
        let root = t.path().join("root");
        assert!(
            args(t.path()).starts_with(&format!(
                "--root {} --log-format=text state c1\n",
                root.display()
            )),
            "{}",
            args(t.path())
        );
    }

    #[tokio::test]
    async fn kill_and_delete_are_idempotent() {
        let t = tempfile::tempdir().unwrap();
        let r = fake(
            t.path(),
            "case \"$2\" in gone) echo 'container does not exist' >&2; exit 1;; \
             exited) echo 'container not running' >&2; exit 1;; \
             --all) exit 0;; \
             bad) echo 'permission denied' >&2; exit 3;; esac",
        );
        r.kill("gone", 15, false).await.unwrap();
        r.kill("exited", 9, false).await.unwrap();
        r.kill("c", 9, true).await.unwrap();
        r.delete("gone", false).await.unwrap();
        let e = r.kill("bad", 15, false).await.unwrap_err();
        assert!(
            e.to_string()
                .ends_with("exited with status 3: permission denied"),
            "{e}"
        );
        let e = r.delete("bad", false).await.unwrap_err();
        assert!(matches!(e, RuntimeError::Command { .. }), "{e}");
        r.delete("x", true).await.unwrap();
        let a = args(t.path());
        assert!(a.contains("kill gone 15\n"), "{a}");
        assert!(a.contains("kill --all c 9\n"), "{a}");
        assert!(a.contains("delete --force x\n"), "{a}");
    }

    #[tokio::test]
    async fn start_failure_carries_stderr_and_kind() {
        let t = tempfile::tempdir().unwrap();
        let r = fake(
            t.path(),
            "echo '  cannot start a container that has stopped  ' >&2; exit 1",
        );
        let e = r.start("c1").await.unwrap_err();
        assert_eq!(e.kind(), super::super::error::ErrorKind::FailedPrecondition);
        assert!(
            e.to_string()
                .ends_with("exited with status 1: cannot start a container that has stopped"),
            "{e}"
        );
        let r = OciRuntime {
            path: t.path().join("missing"),
            root: PathBuf::new(),
            args: vec![],
        };
        assert!(matches!(
            r.pause("c1").await,
            Err(RuntimeError::Spawn { .. })
        ));
    }

    #[tokio::test]
    async fn update_sends_resources_on_stdin() {
        let t = tempfile::tempdir().unwrap();
        let stdin = t.path().join("stdin");
        let r = fake(t.path(), &format!("cat > {}", stdin.display()));
        let res: oci_spec::runtime::LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":1048576},"cpu":{"shares":512,"quota":50000,"period":100000}}"#,
        )
        .unwrap();
        r.update("c1", &res).await.unwrap();
        let sent: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&stdin).unwrap()).unwrap();
        assert_eq!(sent["memory"]["limit"], 1048576);
        assert_eq!(sent["cpu"]["shares"], 512);
        assert!(args(t.path()).contains("update --resources - c1\n"));
        r.pause("c1").await.unwrap();
        r.resume("c1").await.unwrap();
        let a = args(t.path());
        assert!(a.contains("pause c1\n") && a.contains("resume c1\n"), "{a}");
    }
}
