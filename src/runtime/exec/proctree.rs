//! Killing an exec'd process tree: on an ExecSync timeout or when a streaming client goes
//! away, the exec'd process *and everything it started* must be gone before the call
//! returns (a kubelet probe that timed out must not leave `sleep`s behind).
//!
//! Killing only the top pid (what conmon's exec timeout does) orphans its children into
//! the container, where a non-reaping init keeps them forever. Killing the tree one by one
//! races with forks. So the tree is frozen first: SIGSTOP the top pid, then read the
//! children of every stopped process (`/proc/<pid>/task/*/children`, all threads) and stop
//! those, until a pass finds no new pid. A stopped process cannot fork, so the set is then
//! complete. Then SIGKILL every frozen pid (SIGKILL also ends a stop) and wait until none
//! is running any more.
//!
//! All `/proc` reading goes through [`ProcFs`] (a root path) and signals through a
//! closure, so the walk is unit-tested on a fake `/proc` tree.

use std::path::PathBuf;
use std::time::Duration;

use rustix::process::{Pid, Signal};

/// Safety bound on the freeze passes (a pass only repeats when it found new pids).
const MAX_PASSES: usize = 64;

/// A `/proc`-like tree at `root` (`/proc` on the host, a temp dir in tests).
#[derive(Debug, Clone)]
pub struct ProcFs {
    /// Usually `/proc`.
    pub root: PathBuf,
}

impl Default for ProcFs {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/proc"),
        }
    }
}

impl ProcFs {
    /// Children of every thread of `pid` (Linux >= 3.5 with `CONFIG_PROC_CHILDREN`, on in
    /// every distribution kernel). A vanished process has none.
    pub fn children(&self, pid: i32) -> Vec<i32> {
        let Ok(tasks) = std::fs::read_dir(self.root.join(pid.to_string()).join("task")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `(state, ppid)` from `/proc/<pid>/stat` (the fields after the parenthesised comm,
    /// which may itself contain spaces and parentheses).
    pub fn stat(&self, pid: i32) -> Option<(char, i32)> {
        let s = std::fs::read_to_string(self.root.join(pid.to_string()).join("stat")).ok()?;
        let rest = &s[s.rfind(')')? + 1..];
        let mut f = rest.split_whitespace();
        let state = f.next()?.chars().next()?;
        let ppid = f.next()?.parse().ok()?;
        Some((state, ppid))
    }

    /// Whether `pid` still runs: present and neither a zombie (`Z`) nor dead (`X`).
    /// A zombie has released everything but its exit status, which its parent collects.
    pub fn is_running(&self, pid: i32) -> bool {
        matches!(self.stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
    }

    /// Freeze the trees rooted at `roots` (SIGSTOP, parents before their children, until
    /// no new descendant appears) and return every pid frozen, roots first.
    pub fn freeze(&self, roots: &[i32], mut signal: impl FnMut(i32, Signal)) -> Vec<i32> {
        let mut frozen: Vec<i32> = Vec::new();
        for &r in roots {
            if r > 0 && !frozen.contains(&r) {
                signal(r, Signal::STOP);
                frozen.push(r);
            }
        }
        for _ in 0..MAX_PASSES {
            let mut found = false;
            let mut i = 0;
            while i < frozen.len() {
                for c in self.children(frozen[i]) {
                    if !frozen.contains(&c) {
                        signal(c, Signal::STOP);
                        frozen.push(c);
                        found = true;
                    }
                }
                i += 1;
            }
            if !found {
                break;
            }
        }
        frozen
    }

    /// Freeze then SIGKILL the trees at `roots`; returns the pids killed.
    pub fn kill_tree(&self, roots: &[i32], mut signal: impl FnMut(i32, Signal)) -> Vec<i32> {
        let pids = self.freeze(roots, &mut signal);
        for &p in &pids {
            signal(p, Signal::KILL);
        }
        pids
    }

    /// Wait until none of `pids` runs any more (gone or a zombie), polling; `false` when
    /// `limit` passed first.
    pub async fn wait_gone(&self, pids: &[i32], limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut pause = Duration::from_micros(200);
        loop {
            if !pids.iter().any(|&p| self.is_running(p)) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}

/// Send `sig` to host pid `pid`; a process that is already gone is fine.
pub fn signal_host(pid: i32, sig: Signal) {
    let Some(p) = Pid::from_raw(pid) else {
        return;
    };
    if let Err(e) = rustix::process::kill_process(p, sig)
        && e != rustix::io::Errno::SRCH
    {
        tracing::warn!(pid, signal = ?sig, error = %e, "cannot signal exec'd process");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A fake `/proc`: `tree` is (pid, ppid, state, children of thread 1, children of
    /// thread 2).
    fn fake(tree: &[(i32, i32, char, &str, &str)]) -> (tempfile::TempDir, ProcFs) {
        let t = tempfile::tempdir().unwrap();
        for (pid, ppid, st, c1, c2) in tree {
            let d = t.path().join(pid.to_string());
            for (tid, c) in [(*pid, c1), (pid + 10000, c2)] {
                let td = d.join("task").join(tid.to_string());
                std::fs::create_dir_all(&td).unwrap();
                std::fs::write(td.join("children"), c).unwrap();
            }
            std::fs::write(
                d.join("stat"),
                format!("{pid} (a (b) c) {st} {ppid} 1 1 0 -1 4194560"),
            )
            .unwrap();
        }
        let fs = ProcFs {
            root: t.path().to_path_buf(),
        };
        (t, fs)
    }

    #[test]
    fn stat_parses_odd_comm() {
        let (_t, fs) = fake(&[(7, 1, 'S', "", ""), (8, 7, 'Z', "", "")]);
        assert_eq!(fs.stat(7), Some(('S', 1)));
        assert!(fs.is_running(7));
        assert!(!fs.is_running(8));
        assert!(!fs.is_running(9));
    }

    #[test]
    fn freezes_whole_tree_parents_first_then_kills() {
        // 10 -> 11 (thread 1), 12 (thread 2); 11 -> 13; 13 -> 14 15; 20 is unrelated.
        let (_t, fs) = fake(&[
            (10, 5, 'S', "11 ", "12"),
            (11, 10, 'S', "13", ""),
            (12, 10, 'R', "", ""),
            (13, 11, 'S', "14 15\n", ""),
            (14, 13, 'S', "", ""),
            (15, 13, 'S', "", ""),
            (20, 1, 'S', "", ""),
        ]);
        let mut sent = Vec::new();
        let killed = fs.kill_tree(&[10], |p, s| sent.push((p, s)));
        assert_eq!(killed, [10, 11, 12, 13, 14, 15]);
        let stops: Vec<_> = sent
            .iter()
            .filter(|(_, s)| *s == Signal::STOP)
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(stops, [10, 11, 12, 13, 14, 15]);
        // Every stop comes before the first kill.
        let first_kill = sent.iter().position(|(_, s)| *s == Signal::KILL).unwrap();
        assert_eq!(first_kill, 6);
        assert_eq!(sent.len(), 12);
    }

    #[test]
    fn duplicate_and_missing_roots() {
        let (_t, fs) = fake(&[(10, 5, 'S', "11", ""), (11, 10, 'S', "", "")]);
        let mut n = 0;
        assert_eq!(fs.freeze(&[10, 11, 10, 0, 99], |_, _| n += 1), [10, 11, 99]);
        assert_eq!(n, 3);
    }

    #[tokio::test]
    async fn wait_gone_treats_zombies_as_gone() {
        let (t, fs) = fake(&[(10, 5, 'Z', "", ""), (11, 5, 'S', "", "")]);
        assert!(fs.wait_gone(&[10, 12], Duration::from_millis(1)).await);
        assert!(!fs.wait_gone(&[11], Duration::from_millis(20)).await);
        std::fs::remove_dir_all(t.path().join("11")).unwrap();
        assert!(fs.wait_gone(&[11], Duration::from_millis(20)).await);
    }

    #[test]
    fn real_proc_children_of_self() {
        let mut c = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = i32::try_from(std::process::id()).unwrap();
        let pid = i32::try_from(c.id()).unwrap();
        let fs = ProcFs::default();
        assert!(fs.children(me).contains(&pid));
        assert_eq!(fs.stat(pid).map(|s| s.1), Some(me));
        let killed = fs.kill_tree(&[pid], signal_host);
        assert_eq!(killed, [pid]);
        c.wait().unwrap();
    }
}
