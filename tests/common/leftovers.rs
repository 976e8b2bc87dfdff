//! Cleanup and leak detection for pod/container tests.
//!
//! [`remove_all_pods`] stops and removes everything through the daemon (the path a kubelet
//! uses). [`scan`] then looks for what a correct runtime must not leave behind: mounts
//! under the test's temp dir, processes (monitors, container processes), cgroup
//! directories and files named after a container id, bundles under
//! `<runroot>/containers` and pinned namespaces under `<runroot>/pods`. [`teardown`] is
//! the `Drop` path: best effort through the daemon, then by force (runtime `delete
//! --force`, SIGKILL, rmdir), so a failing test does not poison the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, bail};
use crust_proto::cri::{
    ListContainersRequest, ListPodSandboxRequest, RemoveContainerRequest, RemovePodSandboxRequest,
    StopContainerRequest, StopPodSandboxRequest,
};

use super::daemon::Daemon;

/// Stop (timeout 0) and remove every container, then stop and remove every pod.
pub async fn remove_all_pods(d: &Daemon) -> Result<()> {
    let mut rt = d.runtime().await?;
    let mut errors = Vec::new();
    let ctrs = rt
        .list_containers(ListContainersRequest::default())
        .await?
        .into_inner()
        .containers;
    for c in ctrs {
        let id = c.id;
        if let Err(e) = rt
            .stop_container(StopContainerRequest {
                container_id: id.clone(),
                timeout: 0,
            })
            .await
        {
            errors.push(format!("StopContainer {id}: {e}"));
        }
        if let Err(e) = rt
            .remove_container(RemoveContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            errors.push(format!("RemoveContainer {id}: {e}"));
        }
    }
    let pods = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await?
        .into_inner()
        .items;
    for p in pods {
        let id = p.id;
        if let Err(e) = rt
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
        {
            errors.push(format!("StopPodSandbox {id}: {e}"));
        }
        if let Err(e) = rt
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
        {
            errors.push(format!("RemovePodSandbox {id}: {e}"));
        }
    }
    if !errors.is_empty() {
        bail!("cleanup through the daemon failed: {}", errors.join("; "));
    }
    Ok(())
}

fn proc_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Processes that belong to this test: cmdline mentions `base` or cgroup names an id.
/// The daemon itself and this process are excluded.
pub fn stray_processes(d: &Daemon, ids: &[String]) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let daemon = d.pid().map(|p| p as i32);
    let base = d.base.display().to_string();
    let mut out = Vec::new();
    for pid in proc_pids() {
        if pid == me || Some(pid) == daemon {
            continue;
        }
        let cmd = cmdline(pid);
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if cmd.contains(&base) || ids.iter().any(|id| cg.contains(id.as_str())) {
            out.push((pid, cmd));
        }
    }
    out
}

/// Directories under `/sys/fs/cgroup/*` (depth <= 5) whose name contains one of `ids`.
pub fn stray_cgroups(ids: &[String]) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, ids: &[String], out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.filter_map(|e| e.ok()) {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if ids.iter().any(|id| name.contains(id.as_str())) {
                out.push(p);
            } else if depth > 0 {
                walk(&p, depth - 1, ids, out);
            }
        }
    }
    let mut out = Vec::new();
    if !ids.is_empty() {
        walk(Path::new("/sys/fs/cgroup"), 5, ids, &mut out);
    }
    out
}

/// Files or dirs below `dir` whose name contains one of `ids` (not following symlinks).
fn named_after(dir: &Path, ids: &[String], out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if ids.iter().any(|id| name.contains(id.as_str())) {
            out.push(p.clone());
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            named_after(&p, ids, out);
        }
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Mount points at or below `base` (from /proc/self/mountinfo).
pub fn mounts_below(base: &Path) -> Vec<String> {
    let b = base.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&b)))
        .map(str::to_string)
        .collect()
}

/// Everything this daemon's containers (`ids`) left behind, one description per item.
pub fn scan(d: &Daemon, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for m in mounts_below(&d.base) {
        out.push(format!("mount: {m}"));
    }
    for (pid, cmd) in stray_processes(d, ids) {
        out.push(format!("process {pid}: {cmd}"));
    }
    for c in stray_cgroups(ids) {
        out.push(format!("cgroup: {}", c.display()));
    }
    let run = d.runroot();
    for e in entries(&run.join("containers")) {
        out.push(format!("runroot containers entry: {}", e.display()));
    }
    for e in entries(&run.join("pods")) {
        out.push(format!("runroot pods entry: {}", e.display()));
    }
    let mut named = Vec::new();
    named_after(&d.base, ids, &mut named);
    for p in named {
        out.push(format!("file named after a container: {}", p.display()));
    }
    out.sort();
    out.dedup();
    out
}

/// Drop path: cleanup through the daemon (bounded), then force-remove what remains.
pub fn teardown(d: &Daemon, ids: &[String]) {
    let sock_ok = d.sock.exists() && d.pid().is_some();
    if sock_ok {
        let base = d.base.clone();
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(60), remove_all_pods(d))
                        .await
                        .ok()
                })
            });
            if let Ok(Some(Err(e))) = h.join() {
                eprintln!("teardown {}: {e:#}", base.display());
            }
        });
    }
    force_cleanup(d, ids);
}

/// Kill and delete by force whatever a test left (runtime state, processes, cgroups).
pub fn force_cleanup(d: &Daemon, ids: &[String]) {
    let run = d.runroot();
    let mut all_ids: Vec<String> = ids.to_vec();
    for e in entries(&run.join("containers")) {
        if let Some(n) = e.file_name().and_then(|n| n.to_str()) {
            all_ids.push(n.to_string());
        }
    }
    for handler in ["runc", "runsc", "crun", "youki"] {
        let root = run.join("runtimes").join(handler);
        if !root.exists() {
            continue;
        }
        for id in &all_ids {
            let mut cmd = Command::new(handler);
            cmd.arg("--root").arg(&root);
            if handler == "runsc" {
                cmd.arg("--platform=ptrace");
            }
            let _ = cmd
                .args(["delete", "--force", id])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    for (pid, _) in stray_processes(d, &all_ids) {
        if let Some(p) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut cgs = stray_cgroups(&all_ids);
    cgs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for c in cgs {
        let _ = std::fs::remove_dir(&c);
    }
}
