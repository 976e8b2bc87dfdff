//! Running one CNI plugin (SPEC.md "Execution protocol"): the binary named by the plugin's
//! `type`, found in the plugin directories, executed directly (no shell) with the
//! `CNI_*` environment variables, the network configuration on stdin, and its result or
//! error JSON on stdout. Like libcni's `RawExec`, the daemon's own environment is passed
//! through (plugins such as portmap run `iptables` from `PATH`), stderr is only logged,
//! and a non-zero exit is an error described by the plugin's error JSON (`msg`,
//! `details`), falling back to its stderr. A plugin running past the timeout is killed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use super::error::NetworkError;
use super::result::parse_error;

/// `PATH` for plugins when the daemon has none (their helpers: iptables, ip, tc).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// CNI verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach.
    Add,
    /// Detach.
    Del,
    /// Verify an attachment.
    Check,
    /// Plugin readiness (1.1).
    Status,
    /// Garbage-collect stale resources (1.1).
    Gc,
    /// Supported versions.
    Version,
}

impl Command {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Gc => "GC",
            Self::Version => "VERSION",
        }
    }

    /// Whether the verb concerns one container (and gets `CNI_CONTAINERID` and friends).
    fn per_container(self) -> bool {
        matches!(self, Self::Add | Self::Del | Self::Check)
    }
}

/// The per-container part of the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// `CNI_CONTAINERID` (the pod id, as CRI-O passes the infra container id).
    pub container_id: String,
    /// `CNI_NETNS`; empty when the namespace is gone (allowed for DEL).
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: String,
}

/// How plugins are found and run.
#[derive(Debug, Clone)]
pub struct Exec {
    /// Searched in order; also `CNI_PATH`.
    pub plugin_dirs: Vec<PathBuf>,
    /// Kill a plugin running longer than this.
    pub timeout: Duration,
}

impl Exec {
    /// `CNI_PATH`: the plugin directories joined by `:`.
    fn cni_path(&self) -> OsString {
        let mut out = OsString::new();
        for (i, d) in self.plugin_dirs.iter().enumerate() {
            if i > 0 {
                out.push(":");
            }
            out.push(d);
        }
        out
    }

    /// Run plugin `plugin` (its `type`) of `network` for `command` with `stdin`; returns
    /// its stdout on success.
    pub async fn run(
        &self,
        network: &str,
        plugin: &str,
        command: Command,
        target: Option<&Target>,
        stdin: &[u8],
    ) -> Result<Vec<u8>, NetworkError> {
        let path = super::conf::find_plugin(&self.plugin_dirs, plugin).ok_or_else(|| {
            NetworkError::PluginNotFound {
                network: network.to_owned(),
                plugin: plugin.to_owned(),
                dirs: self.plugin_dirs.clone(),
            }
        })?;
        self.run_path(network, plugin, &path, command, target, stdin)
            .await
    }

    async fn run_path(
        &self,
        network: &str,
        plugin: &str,
        path: &Path,
        command: Command,
        target: Option<&Target>,
        stdin: &[u8],
    ) -> Result<Vec<u8>, NetworkError> {
        let verb = command.as_str();
        let spawn_err = |source| NetworkError::Spawn {
            network: network.to_owned(),
            path: path.to_path_buf(),
            command: verb,
            source,
        };
        let mut cmd = tokio::process::Command::new(path);
        cmd.env("CNI_COMMAND", verb)
            .env("CNI_PATH", self.cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if std::env::var_os("PATH").is_none() {
            cmd.env("PATH", DEFAULT_PATH);
        }
        if command.per_container() {
            let t = target.cloned().unwrap_or_default();
            cmd.env("CNI_CONTAINERID", t.container_id)
                .env("CNI_NETNS", t.netns)
                .env("CNI_IFNAME", t.ifname)
                .env("CNI_ARGS", t.args);
        }
        let started = std::time::Instant::now();
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let pipe = child.stdin.take();
        let feed = async move {
            if let Some(mut p) = pipe {
                // A plugin that exits without reading stdin closes the pipe: not our error.
                let _ = p.write_all(stdin).await;
            }
        };
        let run = async {
            let ((), out) = tokio::join!(feed, child.wait_with_output());
            out
        };
        let out = match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r.map_err(spawn_err)?,
            Err(_) => {
                return Err(NetworkError::Timeout {
                    network: network.to_owned(),
                    plugin: plugin.to_owned(),
                    command: verb,
                    timeout: self.timeout,
                });
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        tracing::debug!(
            network,
            plugin,
            command = verb,
            status = %out.status,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            stderr = %stderr.trim(),
            "cni plugin ran"
        );
        if out.status.success() {
            return Ok(out.stdout);
        }
        let (code, msg, details) = match parse_error(&out.stdout) {
            Some(e) => (e.code, e.msg, e.details),
            None => {
                let text = if stderr.trim().is_empty() {
                    String::from_utf8_lossy(&out.stdout).trim().to_owned()
                } else {
                    stderr.trim().to_owned()
                };
                (0, format!("exited with {}", out.status), text)
            }
        };
        Err(NetworkError::Plugin {
            network: network.to_owned(),
            plugin: plugin.to_owned(),
            command: verb,
            code,
            msg,
            details,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {

    use super::*;

    /// Write an executable shell-script plugin `name` into `dir`.
    pub(crate) fn script(dir: &Path, name: &str, body: &str) {
        std::fs::create_dir_all(dir).unwrap();
        crate::testutil::write_executable(&dir.join(name), &format!("#!/bin/sh\n{body}\n"));
    }

    fn exec(dir: &Path) -> Exec {
        Exec {
            plugin_dirs: vec![PathBuf::from("/nonexistent"), dir.to_path_buf()],
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn passes_env_and_stdin_and_returns_stdout() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("env");
        script(
            t.path(),
            "echoer",
            &format!(
                "env | grep ^CNI_ | sort > {o}; cat > {o}.stdin; echo '{{\"cniVersion\":\"1.0.0\"}}'",
                o = out.display()
            ),
        );
        let target = Target {
            container_id: "abc".into(),
            netns: "/run/x/net".into(),
            ifname: "eth0".into(),
            args: "IgnoreUnknown=1;K8S_POD_NAME=p".into(),
        };
        let r = exec(t.path())
            .run("n", "echoer", Command::Add, Some(&target), b"{\"a\":1}")
            .await
            .unwrap();
        assert_eq!(r, b"{\"cniVersion\":\"1.0.0\"}\n");
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(env.contains("CNI_COMMAND=ADD\n"), "{env}");
        assert!(env.contains("CNI_CONTAINERID=abc\n"), "{env}");
        assert!(env.contains("CNI_NETNS=/run/x/net\n"), "{env}");
        assert!(env.contains("CNI_IFNAME=eth0\n"), "{env}");
        assert!(
            env.contains("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=p\n"),
            "{env}"
        );
        assert!(
            env.contains(&format!("CNI_PATH=/nonexistent:{}\n", t.path().display())),
            "{env}"
        );
        let stdin = std::fs::read_to_string(format!("{}.stdin", out.display())).unwrap();
        assert_eq!(stdin, "{\"a\":1}");
        // STATUS carries no per-container variables.
        exec(t.path())
            .run("n", "echoer", Command::Status, None, b"{}")
            .await
            .unwrap();
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(!env.contains("CNI_CONTAINERID"), "{env}");
    }

    #[tokio::test]
    async fn error_json_stderr_missing_and_timeout() {
        let t = tempfile::tempdir().unwrap();
        script(
            t.path(),
            "fails",
            r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","code":11,"msg":"no IP addresses available","details":"range 10.0.0.0/30 is full"}'; exit 1"#,
        );
        script(t.path(), "crashes", "echo 'panic: boom' >&2; exit 2");
        script(t.path(), "hangs", "exec sleep 30");
        let e = exec(t.path())
            .run("net1", "fails", Command::Add, None, b"{}")
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "network net1: plugin fails failed on ADD: no IP addresses available (range 10.0.0.0/30 is full)"
        );
        let e = exec(t.path())
            .run("net1", "crashes", Command::Del, None, b"{}")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("panic: boom"), "{e}");
        let e = exec(t.path())
            .run("net1", "absent", Command::Add, None, b"{}")
            .await
            .unwrap_err();
        assert!(matches!(e, NetworkError::PluginNotFound { .. }), "{e}");
        let mut x = exec(t.path());
        x.timeout = Duration::from_millis(200);
        let e = x
            .run("net1", "hangs", Command::Add, None, b"{}")
            .await
            .unwrap_err();
        assert!(matches!(e, NetworkError::Timeout { .. }), "{e}");
    }
}
