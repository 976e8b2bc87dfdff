//! `<runtime> exec`: running an extra process in a running container (ExecSync, Exec).
//!
//! The command line is runc's (`runc exec --process <file> --pid-file <file> <id>`, which
//! crun, youki and runsc copy). The process description is the container's own
//! `config.json` `process` with only `args` and `terminal` replaced, so an exec'd
//! process runs as the same user, with the same environment, working directory,
//! capabilities, AppArmor/SELinux labels, `noNewPrivileges` and rlimits as the
//! container's init (CRI-O and containerd do the same: CRI `ExecSync`/`Exec` carry no
//! security settings of their own).
//!
//! The runtime runs in the foreground (no `--detach`): it waits for the process,
//! forwards signals to it and exits with its status (128+signal on signal death, runc
//! `utils_linux.go`), and it is the process's subreaper, so the daemon only ever waits
//! for its own direct child. See `crate::container::exec` for why the monitor is not
//! involved.
//!
//! - [`proctree`]: freezing and killing the exec'd process tree (timeouts, clients
//!   going away), behind a `/proc` seam.
//! - [`pty`]: the terminal of a `tty` exec.

pub mod proctree;
pub mod pty;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use serde_json::Value;

use super::OciRuntime;

/// Fields of an OCI `process` that make no sense for an exec'd process: the console size
/// of the init's terminal and Windows' `commandLine`.
const DROPPED_FIELDS: [&str; 2] = ["consoleSize", "commandLine"];

/// The `process` JSON for `exec --process`: the container's own `config.json` `process`
/// with `args` and `terminal` replaced. Everything else is kept verbatim (unknown fields
/// too), except that `oomScoreAdj` is never below `oom_score_adj_min` (the daemon's own:
/// without CAP_SYS_RESOURCE a lower value fails, see `spec::resources`); create already
/// clamped it, this only guards hand-edited bundles.
pub fn process_json(
    config: &Value,
    args: &[String],
    terminal: bool,
    oom_score_adj_min: i32,
) -> Result<Value, String> {
    let mut process = config
        .get("process")
        .cloned()
        .ok_or_else(|| "config.json has no process".to_owned())?;
    let obj = process
        .as_object_mut()
        .ok_or_else(|| "config.json process is not an object".to_owned())?;
    for f in DROPPED_FIELDS {
        obj.remove(f);
    }
    obj.insert("args".into(), Value::from(args.to_vec()));
    obj.insert("terminal".into(), Value::Bool(terminal));
    if let Some(adj) = obj.get("oomScoreAdj").and_then(Value::as_i64)
        && adj < i64::from(oom_score_adj_min)
    {
        obj.insert("oomScoreAdj".into(), Value::from(oom_score_adj_min));
    }
    Ok(process)
}

/// The per-exec files in the container's bundle: the process JSON and the pid file the
/// runtime writes. Both are removed on drop (the runtime reads the process file once at
/// start; the pid file is needed until the exec is over, to kill its tree).
#[derive(Debug)]
pub struct ExecFiles {
    /// `<bundle>/exec-<nonce>.json`.
    pub process: PathBuf,
    /// `<bundle>/exec-<nonce>.pid`.
    pub pid_file: PathBuf,
}

impl ExecFiles {
    /// Unique names in `bundle` (the bundle lives on the runroot, a tmpfs on real nodes:
    /// no fsync, nothing survives a reboot).
    pub fn new(bundle: &Path, nonce: &str) -> Self {
        Self {
            process: bundle.join(format!("exec-{nonce}.json")),
            pid_file: bundle.join(format!("exec-{nonce}.pid")),
        }
    }

    /// The exec'd process's host pid, once the runtime wrote it.
    pub fn pid(&self) -> Option<i32> {
        read_pid_file(&self.pid_file)
    }
}

impl Drop for ExecFiles {
    fn drop(&mut self) {
        for p in [&self.process, &self.pid_file] {
            if let Err(e) = std::fs::remove_file(p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove exec file");
            }
        }
    }
}

/// A pid file's pid (`None` when missing, empty or not a positive number).
pub fn read_pid_file(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p: &i32| *p > 0)
}

/// A runtime exit status as an exec exit code. The foreground runtime already turns the
/// process's signal death into 128+signal; the runtime itself dying of a signal is
/// reported the same way (shell convention, what the kubelet expects for 137).
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => 255,
    }
}

impl OciRuntime {
    /// `<runtime> [global args] exec --process <file> --pid-file <file> <id>` with the
    /// standard streams left for the caller to set. `kill_on_drop` so that a dropped
    /// exec never leaves the runtime behind (the tree itself is killed by
    /// [`proctree::kill_tree`]).
    pub fn exec_command(&self, id: &str, files: &ExecFiles) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.path);
        if !self.root.as_os_str().is_empty() {
            cmd.arg("--root").arg(&self.root);
        }
        cmd.args(&self.args)
            .arg("exec")
            .arg("--process")
            .arg(&files.process)
            .arg("--pid-file")
            .arg(&files.pid_file)
            .arg(id)
            .kill_on_drop(true);
        cmd
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config() -> Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": true,
                "consoleSize": {"height": 10, "width": 20},
                "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
                "args": ["sleep", "inf"],
                "env": ["PATH=/bin", "A=b"],
                "cwd": "/work",
                "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"]},
                "apparmorProfile": "crust-default",
                "selinuxLabel": "system_u:system_r:container_t:s0",
                "noNewPrivileges": true,
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "oomScoreAdj": -900,
                "x-unknown": 1
            },
            "root": {"path": "rootfs"}
        })
    }

    #[test]
    fn process_keeps_security_and_replaces_args() {
        let p = process_json(&config(), &["id".into(), "-u".into()], false, -500).unwrap();
        assert_eq!(p["args"], serde_json::json!(["id", "-u"]));
        assert_eq!(p["terminal"], false);
        assert!(p.get("consoleSize").is_none());
        for f in [
            "user",
            "env",
            "cwd",
            "capabilities",
            "apparmorProfile",
            "selinuxLabel",
            "noNewPrivileges",
            "rlimits",
            "x-unknown",
        ] {
            assert_eq!(p[f], config()["process"][f], "{f}");
        }
        // Never below the daemon's own.
        assert_eq!(p["oomScoreAdj"], -500);
        let p = process_json(&config(), &["sh".into()], true, -1000).unwrap();
        assert_eq!(p["oomScoreAdj"], -900);
        assert_eq!(p["terminal"], true);
    }

    #[test]
    fn process_errors() {
        assert!(process_json(&serde_json::json!({}), &[], false, 0).is_err());
        assert!(process_json(&serde_json::json!({"process": 1}), &[], false, 0).is_err());
    }

    #[test]
    fn files_are_removed_on_drop() {
        let t = tempfile::tempdir().unwrap();
        let f = ExecFiles::new(t.path(), "abc");
        assert!(f.process.ends_with("exec-abc.json"));
        std::fs::write(&f.process, "{}").unwrap();
        std::fs::write(&f.pid_file, "4242").unwrap();
        assert_eq!(f.pid(), Some(4242));
        drop(f);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
        let f = ExecFiles::new(t.path(), "x");
        assert_eq!(f.pid(), None);
        std::fs::write(&f.pid_file, "-3").unwrap();
        assert_eq!(f.pid(), None);
    }

    #[test]
    fn command_line() {
        let r = OciRuntime {
            path: "/usr/sbin/runc".into(),
            root: "/run/r".into(),
            args: vec!["--systemd-cgroup".into()],
        };
        let f = ExecFiles::new(Path::new("/b"), "n");
        let cmd = r.exec_command("c1", &f);
        let args: Vec<_> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--root",
                "/run/r",
                "--systemd-cgroup",
                "exec",
                "--process",
                "/b/exec-n.json",
                "--pid-file",
                "/b/exec-n.pid",
                "c1"
            ]
        );
        std::mem::forget(f);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
    }
}
