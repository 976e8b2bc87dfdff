//! End-to-end tests of `ExecSync` through the real CRI socket against real runc (and runsc
//! when installed): output and exit codes 0/3/137, the container's user/env/cwd, capped
//! output of a chatty process without deadlock, timeouts that leave no process behind,
//! bad input codes, and a 500-call probe loop that leaks no fd, child or zombie.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use crust_proto::cri::runtime_service_client::RuntimeServiceClient;
use crust_proto::cri::{ContainerStatusRequest, ExecSyncRequest, ExecSyncResponse, KeyValue};
use tonic::Code;
use tonic::transport::Channel;

/// Per-stream cap with the daemon's default 16 MiB send limit (`output_cap`).
const CAP: usize = ((16 << 20) - (64 << 10)) / 2;

async fn client(w: &World) -> Result<RuntimeServiceClient<Channel>> {
    Ok(w.rt().await?.max_decoding_message_size(64 << 20))
}

async fn exec(
    rt: &mut RuntimeServiceClient<Channel>,
    id: &str,
    cmd: &[&str],
    timeout: i64,
) -> Result<ExecSyncResponse, tonic::Status> {
    rt.exec_sync(ExecSyncRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout,
    })
    .await
    .map(tonic::Response::into_inner)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The container's init pid (verbose ContainerStatus).
async fn init_pid(w: &World, id: &str) -> Result<i32> {
    let info = w
        .rt()
        .await?
        .container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        })
        .await?
        .into_inner()
        .info;
    let v: serde_json::Value = serde_json::from_str(info.get("info").context("no info")?)?;
    Ok(v["pid"].as_i64().context("no pid")? as i32)
}

fn proc_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// (state, cmdline) of a host process.
fn proc_info(pid: i32) -> Option<(char, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat[stat.rfind(')')? + 1..].trim_start().chars().next()?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some((state, String::from_utf8_lossy(&cmd).replace('\0', " ")))
}

/// Host processes in the pid namespace of `pid`: (pid, state, cmdline).
fn pid_ns_members(pid: i32) -> Vec<(i32, char, String)> {
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    proc_pids()
        .into_iter()
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&ns)
        })
        .filter_map(|p| proc_info(p).map(|(s, c)| (p, s, c)))
        .collect()
}

/// Running (non-zombie) host processes whose command line contains `needle`.
fn running_with(needle: &str) -> Vec<(i32, char, String)> {
    proc_pids()
        .into_iter()
        .filter_map(|p| proc_info(p).map(|(s, c)| (p, s, c)))
        .filter(|(_, s, c)| *s != 'Z' && c.contains(needle))
        .collect()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn children(pid: u32) -> HashSet<i32> {
    let mut out = HashSet::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let c = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(c.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    out
}

fn exec_files(w: &World, id: &str) -> Vec<String> {
    std::fs::read_dir(w.env.daemon.runroot().join("containers").join(id))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("exec-"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sync_output_codes_timeouts_and_errors() -> Result<()> {
    let w = World::new().await?;
    let pod = w.run_pod(&w.pod_config("exec")).await?;
    let mut cfg = w.ctr_config("exec", &["sleep", "3600"]);
    cfg.envs = vec![KeyValue {
        key: "FOO".into(),
        value: "from-config".into(),
    }];
    cfg.working_dir = "/bin".into();
    sc(&mut cfg).run_as_user = Some(crust_proto::cri::Int64Value { value: 1000 });
    let id = w.run(&pod, &cfg).await?;
    let mut rt = client(&w).await?;

    // Exit codes 0/3/137, stdout and stderr apart.
    let r = exec(&mut rt, &id, &["true"], 0).await?;
    assert_eq!((r.exit_code, r.stdout.len(), r.stderr.len()), (0, 0, 0));
    let r = exec(
        &mut rt,
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        5,
    )
    .await?;
    assert_eq!(r.exit_code, 3, "{r:?}");
    assert_eq!(
        (text(&r.stdout), text(&r.stderr)),
        ("out\n".into(), "err\n".into())
    );
    let r = exec(&mut rt, &id, &["sh", "-c", "kill -9 $$"], 5).await?;
    assert_eq!(r.exit_code, 137, "{r:?}");

    // The container's own user, environment and working directory.
    let r = exec(&mut rt, &id, &["sh", "-c", "echo $FOO; id -u; pwd"], 5).await?;
    assert_eq!(text(&r.stdout), "from-config\n1000\n/bin\n", "{r:?}");

    // A missing binary is a failed command, not a failed RPC.
    let r = exec(&mut rt, &id, &["/no/such/binary"], 5).await?;
    assert_ne!(r.exit_code, 0, "{r:?}");

    // A chatty process (40 MiB on each stream) neither blocks nor breaks the response.
    let t = Instant::now();
    let chatty = "dd if=/dev/zero bs=1048576 count=40 2>/dev/null; \
                  exec 3>&2 2>/dev/null; dd if=/dev/zero bs=1048576 count=40 >&3; exit 4";
    let r = exec(&mut rt, &id, &["sh", "-c", chatty], 30).await?;
    assert_eq!(r.exit_code, 4);
    assert_eq!((r.stdout.len(), r.stderr.len()), (CAP, CAP));
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());

    // Timeout: the whole tree is gone when the call returns, and the answer is CRI-O's.
    let t = Instant::now();
    let r = exec(
        &mut rt,
        &id,
        &["sh", "-c", "sleep 1001 & sleep 1002; echo never"],
        1,
    )
    .await?;
    let took = t.elapsed();
    let left = [running_with("sleep 1001"), running_with("sleep 1002")].concat();
    assert!(left.is_empty(), "survivors: {left:?}");
    assert_eq!(r.exit_code, -1, "{r:?}");
    assert_eq!(text(&r.stderr), "command timed out");
    assert!(!text(&r.stdout).contains("never"));
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // A process that ignores SIGTERM/SIGINT/SIGHUP is killed too.
    let r = exec(
        &mut rt,
        &id,
        &["sh", "-c", "trap '' TERM INT HUP; sleep 1003"],
        1,
    )
    .await?;
    assert_eq!(r.exit_code, -1);
    assert!(running_with("sleep 1003").is_empty());
    assert!(exec_files(&w, &id).is_empty(), "{:?}", exec_files(&w, &id));

    // Bad input.
    let e = exec(&mut rt, &id, &[], 0).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("cmd"), "{e:?}");
    let e = exec(&mut rt, "", &["true"], 0).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = exec(&mut rt, "0123456789abcdef-nope", &["true"], 0)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = exec(&mut rt, &id, &["true"], -1).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // Stopped (and created, never started) containers refuse exec.
    w.stop(&id, 0).await?;
    let e = exec(&mut rt, &id, &["true"], 0).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains(&id) && e.message().contains("exited"),
        "{e:?}"
    );
    let created = w
        .create(&pod, &w.ctr_config("created", &["sleep", "3600"]))
        .await?;
    let e = exec(&mut rt, &created, &["true"], 0).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("created"), "{e:?}");

    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_probe_loop_leaks_nothing() -> Result<()> {
    let w = World::new().await?;
    let pod = w.run_pod(&w.pod_config("probe")).await?;
    let id = w
        .run(&pod, &w.ctr_config("probe", &["sleep", "3600"]))
        .await?;
    let init = init_pid(&w, &id).await?;
    let daemon = w.env.daemon.pid().context("daemon pid")?;
    let mut rt = client(&w).await?;
    // Warm up (lazy initialisation in the daemon must not count as a leak).
    for _ in 0..5 {
        assert_eq!(exec(&mut rt, &id, &["true"], 5).await?.exit_code, 0);
    }
    let (fds, kids) = (fd_count(daemon), children(daemon));
    for i in 0..500 {
        let (cmd, want): (&[&str], i32) = match i % 5 {
            0 => (&["sh", "-c", "exit 3"], 3),
            1 => (&["sh", "-c", "echo x; echo y >&2"], 0),
            _ => (&["true"], 0),
        };
        let r = exec(&mut rt, &id, cmd, 5).await?;
        assert_eq!(r.exit_code, want, "call {i}: {r:?}");
    }
    // Children are reaped synchronously; give closed fds a moment to be released by
    // background tasks.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (fd_count(daemon) > fds || children(daemon) != kids) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        fd_count(daemon) <= fds,
        "daemon fds {fds} -> {}",
        fd_count(daemon)
    );
    assert_eq!(children(daemon), kids, "daemon children changed");
    let members = pid_ns_members(init);
    assert!(
        members.iter().all(|(_, s, _)| *s != 'Z'),
        "zombies in the container: {members:?}"
    );
    assert_eq!(members.len(), 1, "only init is left: {members:?}");
    assert!(exec_files(&w, &id).is_empty());
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

fn runsc_available() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("runsc").is_file()))
        .unwrap_or(false)
        || std::path::Path::new("/usr/bin/runsc").is_file()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sync_with_runsc() -> Result<()> {
    if !runsc_available() {
        eprintln!("skipping: runsc is not installed (apt-get install runsc)");
        return Ok(());
    }
    let w = World::new().await?;
    let pod = w.run_pod_with(&w.pod_config("gv"), "runsc").await?;
    let id = w.run(&pod, &w.ctr_config("gv", &["sleep", "3600"])).await?;
    let mut rt = client(&w).await?;
    let r = exec(
        &mut rt,
        &id,
        &["sh", "-c", "cat /proc/version; echo e >&2; exit 3"],
        10,
    )
    .await?;
    assert_eq!(r.exit_code, 3, "{r:?}");
    assert_eq!(text(&r.stderr), "e\n");
    let host = std::fs::read_to_string("/proc/version")?;
    assert_ne!(text(&r.stdout), host, "runsc must not show the host kernel");
    assert_eq!(exec(&mut rt, &id, &["true"], 10).await?.exit_code, 0);
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}
