//! Pod sandbox pause process: the init of a pod-shared PID namespace.
//!
//! Only pods with `NamespaceMode::POD` for PID get one (net/ipc/uts are bind-mount pins, see
//! `ns.rs`). The binary is `crust-pause` (conmon-rs/src/bin/crust-pause.rs): it unshares a
//! PID namespace, forks its pid 1, prints that child's host pid and exits, leaving the
//! child detached (own session, reparented away from the daemon) so it survives a daemon
//! restart like the monitors do. A pid alone can be recycled, so the daemon records it
//! together with the process start time (`/proc/<pid>/stat` field 22, proc(5)) and checks
//! both before trusting or signalling it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running pause process, as recorded in the sandbox state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauseProcess {
    /// Host pid of the namespace's init.
    pub pid: i32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
}

/// Errors starting or stopping a pause process.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("start pause process {path}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pause process {path} failed ({status}): {stderr}")]
    Failed {
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("pause process {path} printed `{output}`, expected its pid")]
    BadOutput { path: PathBuf, output: String },
    #[error("pause process {pid}: read /proc/{pid}/stat")]
    Proc {
        pid: i32,
        #[source]
        source: io::Error,
    },
    #[error("kill pause process {pid}")]
    Kill {
        pid: i32,
        #[source]
        source: io::Error,
    },
}

/// One `/proc/<pid>/stat` line, the two fields we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Parse `/proc/<pid>/stat`. The comm field (2) is in parentheses and may itself contain
/// spaces and `)`, so fields are counted after the *last* `)`: state is field 3,
/// starttime field 22 (proc(5)).
pub fn parse_stat(content: &str) -> Option<ProcStat> {
    let rest = &content[content.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4..=21 are 18 fields; starttime is the next one.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

fn read_stat(pid: i32) -> io::Result<ProcStat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&s).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable stat"))
}

/// Run `crust-pause` and wait for it to report its namespace init.
pub fn spawn_pause(pause_path: &Path) -> Result<PauseProcess, PauseError> {
    let out = Command::new(pause_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| PauseError::Spawn {
            path: pause_path.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(PauseError::Failed {
            path: pause_path.to_path_buf(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let pid: i32 = match text.parse() {
        Ok(p) if p > 1 => p,
        _ => {
            return Err(PauseError::BadOutput {
                path: pause_path.to_path_buf(),
                output: text,
            });
        }
    };
    let st = read_stat(pid).map_err(|source| PauseError::Proc { pid, source })?;
    tracing::debug!(pid, start_time = st.start_time, "started pause process");
    Ok(PauseProcess {
        pid,
        start_time: st.start_time,
    })
}

/// The PID namespace containers of the pod join.
pub fn pid_ns_path(p: &PauseProcess) -> PathBuf {
    PathBuf::from(format!("/proc/{}/ns/pid", p.pid))
}

/// Whether the recorded pause process still runs (same pid and start time, not a zombie).
pub fn is_alive(p: &PauseProcess) -> bool {
    match read_stat(p.pid) {
        Ok(st) => st.start_time == p.start_time && st.state != 'Z' && st.state != 'X',
        Err(_) => false,
    }
}

/// SIGKILL the pause process (which takes the pod's PID namespace and every process in it
/// down) and wait briefly until it is gone. Idempotent: a dead or recycled pid is `Ok`.
pub fn kill_pause(p: &PauseProcess) -> Result<(), PauseError> {
    // A pidfd pins the identity: after checking the start time through it being still
    // ours, the signal cannot hit a recycled pid.
    let pid = match rustix::process::Pid::from_raw(p.pid) {
        Some(pid) if p.pid > 1 => pid,
        _ => return Ok(()),
    };
    let fd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(e) => {
            return Err(PauseError::Kill {
                pid: p.pid,
                source: e.into(),
            });
        }
    };
    if !is_alive(p) {
        return Ok(());
    }
    match rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => {
            return Err(PauseError::Kill {
                pid: p.pid,
                source: e.into(),
            });
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while is_alive(p) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    tracing::debug!(pid = p.pid, "killed pause process");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_stat_fields() {
        let line = "1234 (a) b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 50 \
                    18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat(&own).unwrap().start_time > 0);
    }

    #[test]
    fn dead_pid_is_not_alive_and_kill_is_ok() {
        let p = PauseProcess {
            pid: i32::MAX - 1,
            start_time: 1,
        };
        assert!(!is_alive(&p));
        kill_pause(&p).unwrap();
        // Our own pid with a wrong start time is "recycled": not alive, not signalled.
        let me = PauseProcess {
            pid: std::process::id() as i32,
            start_time: 1,
        };
        assert!(!is_alive(&me));
        kill_pause(&me).unwrap();
        assert_eq!(
            pid_ns_path(&me),
            PathBuf::from(format!("/proc/{}/ns/pid", me.pid))
        );
    }

    #[test]
    fn spawn_missing_binary() {
        let e = spawn_pause(Path::new("/nonexistent/crust-pause")).unwrap_err();
        assert!(matches!(e, PauseError::Spawn { .. }), "{e}");
    }

    fn pause_binary() -> Option<PathBuf> {
        // target/<profile>/deps/crust-<hash> -> target/<profile>/crust-pause
        let exe = std::env::current_exe().ok()?;
        let p = exe.parent()?.parent()?.join("crust-pause");
        p.exists().then_some(p)
    }

    #[test]
    fn spawn_and_kill_root() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let Some(bin) = pause_binary() else {
            eprintln!("skipped: build crust-pause first (cargo build -p crust-monitor)");
            return;
        };
        struct Guard(PauseProcess);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = kill_pause(&self.0);
            }
        }
        let p = spawn_pause(&bin).unwrap();
        let _g = Guard(p);
        assert!(is_alive(&p));
        let theirs = std::fs::read_link(pid_ns_path(&p)).unwrap();
        let ours = std::fs::read_link("/proc/self/ns/pid").unwrap();
        assert_ne!(theirs, ours);
        let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid)).unwrap();
        let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
        assert_eq!(
            nspid.split_whitespace().last(),
            Some("1"),
            "not pid 1 inside: {nspid}"
        );
        kill_pause(&p).unwrap();
        assert!(!is_alive(&p));
        kill_pause(&p).unwrap();
    }

    #[test]
    fn sigterm_stops_pause_root() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let Some(bin) = pause_binary() else {
            return;
        };
        let p = spawn_pause(&bin).unwrap();
        // SAFETY: plain kill(2) of the process we just started.
        unsafe { libc::kill(p.pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while is_alive(&p) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let alive = is_alive(&p);
        kill_pause(&p).unwrap();
        assert!(!alive, "pause ignored SIGTERM");
    }

    /// Orphans in the pod's PID namespace are reparented to the pause process, which reaps
    /// them: no zombie is left behind.
    #[test]
    fn pause_reaps_orphans_root() {
        if !rustix::process::geteuid().is_root() || !Path::new("/usr/bin/nsenter").exists() {
            return;
        }
        let Some(bin) = pause_binary() else {
            return;
        };
        struct Guard(PauseProcess);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = kill_pause(&self.0);
            }
        }
        let p = spawn_pause(&bin).unwrap();
        let _g = Guard(p);
        let ns = format!("--pid={}", pid_ns_path(&p).display());
        let st = Command::new("nsenter")
            .args([ns.as_str(), "--", "/bin/sh", "-c", "sleep 0.1 & exit 0"])
            .status()
            .unwrap();
        assert!(st.success());
        let zombies = || {
            let mut n = 0;
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                let Ok(s) = std::fs::read_to_string(e.path().join("stat")) else {
                    continue;
                };
                let Some(rest) = s.rfind(')').map(|i| &s[i + 1..]) else {
                    continue;
                };
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() > 2 && f[1] == p.pid.to_string() && f[0] == "Z" {
                    n += 1;
                }
            }
            n
        };
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(zombies(), 0);
        assert!(is_alive(&p));
    }
}
