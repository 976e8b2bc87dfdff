//! The runtime driver and monitor client against real runc 1.1 (`/usr/sbin/runc`) and the
//! real `crust-monitor` (built by `cargo build -p crust-monitor`, found in the target
//! directory next to this test's executable): spawn -> start -> state -> kill -> exit
//! file -> delete, a failing create, update/pause/resume, and handler resolution.
//!
//! Needs root, runc and /bin/busybox; each test prints why and passes when they are
//! missing. Every container is cleaned up by a Drop guard (runc delete --force, kill of
//! the monitor, removal of the cgroup directories) even when an assertion fails.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use crust::monitor::{self, MonitorError, SpawnRequest};
use crust::runtime::{Handlers, OciRuntime};

const RUNC: &str = "/usr/sbin/runc";
static SEQ: AtomicU32 = AtomicU32::new(0);

fn monitor_binary() -> Option<PathBuf> {
    // target/<profile>/deps/runtime_driver-<hash> -> target/<profile>/crust-monitor
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("crust-monitor");
    p.exists().then_some(p)
}

/// Why the test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root".into());
    }
    for p in [RUNC, "/bin/busybox"] {
        if !Path::new(p).exists() {
            return Some(format!("{p} missing"));
        }
    }
    if monitor_binary().is_none() {
        return Some("crust-monitor not built (run `cargo build -p crust-monitor`)".into());
    }
    None
}

macro_rules! require_host {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipping: {why}");
            return Ok(());
        }
    };
}

/// One container's bundle and everything to clean up.
struct Ctr {
    dir: tempfile::TempDir,
    id: String,
    runtime: OciRuntime,
    monitor_pid: i32,
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = Command::new(RUNC)
            .arg("--root")
            .arg(&self.runtime.root)
            .args(["delete", "--force", &self.id])
            .output();
        if self.monitor_pid > 0
            && let Some(pid) = rustix::process::Pid::from_raw(self.monitor_pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        // runc removes the cgroup on delete; make sure nothing is left if it did not.
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir(e.path().join(&self.id));
            }
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&self.id));
    }
}

impl Ctr {
    fn new(args: &[&str]) -> Result<Ctr> {
        let dir = tempfile::Builder::new().prefix("crd").tempdir_in("/tmp")?;
        let id = format!(
            "crust-rd-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let runtime = OciRuntime {
            path: RUNC.into(),
            root: dir.path().join("runc-root"),
            args: vec![],
        };
        let c = Ctr {
            dir,
            id,
            runtime,
            monitor_pid: 0,
        };
        let bundle = c.bundle();
        let bin = bundle.join("rootfs/bin");
        std::fs::create_dir_all(&bin)?;
        std::fs::copy("/bin/busybox", bin.join("busybox"))?;
        for l in ["sh", "sleep", "true", "echo"] {
            std::os::unix::fs::symlink("busybox", bin.join(l))?;
        }
        let st = Command::new(RUNC)
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .status()?;
        ensure!(st.success(), "runc spec failed: {st}");
        let cfg_path = bundle.join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
        cfg["process"]["args"] = serde_json::json!(args);
        cfg["process"]["terminal"] = false.into();
        // Never ask for an oom_score_adj below ours (no CAP_SYS_RESOURCE here).
        if let Some(p) = cfg["process"].as_object_mut() {
            p.remove("oomScoreAdj");
        }
        cfg["linux"]["cgroupsPath"] = format!("/{}", c.id).into();
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
        Ok(c)
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("b")
    }

    fn request(&self) -> SpawnRequest {
        let b = self.bundle();
        SpawnRequest {
            monitor_path: monitor_binary().unwrap_or_default(),
            id: self.id.clone(),
            bundle: b.clone(),
            runtime: self.runtime.clone(),
            log_path: b.join("ctr.log"),
            exit_file: b.join("exit.json"),
            socket: b.join("ctl.sock"),
            tty: false,
            stdin: false,
            stdin_once: false,
        }
    }

    async fn spawn(&mut self) -> Result<monitor::Spawned, MonitorError> {
        let s = monitor::spawn(&self.request()).await?;
        self.monitor_pid = s.monitor_pid;
        Ok(s)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.bundle().join("ctr.log")).unwrap_or_default()
    }
}

#[tokio::test]
async fn lifecycle_spawn_start_kill_exit_delete() -> Result<()> {
    require_host!();
    let mut c = Ctr::new(&[
        "sh",
        "-c",
        "trap 'exit 143' TERM; echo ready; while true; do sleep 0.05; done",
    ])?;
    let req = c.request();
    let spawned = c.spawn().await.context("spawn")?;
    ensure!(spawned.pid > 0 && spawned.monitor_pid > 0, "{spawned:?}");
    assert!(monitor::process_alive(spawned.monitor_pid));

    let st = c
        .runtime
        .state(&c.id)
        .await?
        .context("state after create")?;
    assert_eq!(st.status, "created");
    assert_eq!(st.pid, spawned.pid);
    assert_eq!(st.bundle, c.bundle());

    c.runtime.start(&c.id).await?;
    let st = c.runtime.state(&c.id).await?.context("state after start")?;
    assert_eq!(st.status, "running");
    let ms = monitor::status(&req.socket).await?;
    assert!(ms.running);
    assert_eq!(ms.pid, spawned.pid);

    // Wait for the trap to be installed (the echo comes after it).
    let t0 = std::time::Instant::now();
    while !c.log().contains(" stdout F ready\n") {
        ensure!(
            t0.elapsed() < Duration::from_secs(10),
            "no output: {}",
            c.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    monitor::reopen_log(&req.socket).await?;

    let before_kill = SystemTime::now();
    c.runtime.kill(&c.id, 15, false).await?;
    let exit = monitor::wait_exit_file(&req.exit_file, Duration::from_secs(20))
        .await?
        .context("no exit file")?;
    assert_eq!(exit.exit_code, 143, "{exit:?}");
    assert!(!exit.oom_killed);
    assert!(
        exit.finished_at >= before_kill - Duration::from_secs(1),
        "{exit:?}"
    );
    assert!(exit.finished_at <= SystemTime::now() + Duration::from_secs(1));

    let st = c.runtime.state(&c.id).await?.context("state after exit")?;
    assert_eq!(st.status, "stopped");
    // Kill after exit is success (CRI StopContainer is idempotent).
    c.runtime.kill(&c.id, 9, false).await?;
    c.runtime.delete(&c.id, false).await?;
    assert_eq!(c.runtime.state(&c.id).await?, None);
    c.runtime.delete(&c.id, false).await?;
    c.runtime.kill(&c.id, 9, true).await?;

    // The monitor removes its socket and exits after writing the exit file.
    let t0 = std::time::Instant::now();
    while monitor::process_alive(spawned.monitor_pid) {
        ensure!(
            t0.elapsed() < Duration::from_secs(10),
            "monitor still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match monitor::status(&req.socket).await {
        Err(MonitorError::Gone { .. }) => {}
        other => bail!("expected Gone, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn create_failure_carries_runc_message() -> Result<()> {
    require_host!();
    let mut c = Ctr::new(&["/nonexistent-crust-binary"])?;
    match c.spawn().await {
        Err(MonitorError::CreateFailed { id, message }) => {
            assert_eq!(id, c.id);
            assert!(message.contains("runtime create failed"), "{message}");
            assert!(message.contains("nonexistent-crust-binary"), "{message}");
            // runc's logrus framing is stripped down to its message.
            assert!(!message.contains("level=error"), "{message}");
        }
        other => bail!("expected CreateFailed, got {other:?}"),
    }
    assert!(!c.bundle().join("exit.json").exists());
    assert!(!c.bundle().join("ctl.sock").exists());
    Ok(())
}

#[tokio::test]
async fn update_pause_resume() -> Result<()> {
    require_host!();
    let mut c = Ctr::new(&["sleep", "1000"])?;
    c.spawn().await?;
    c.runtime.start(&c.id).await?;
    let res: oci_spec::runtime::LinuxResources =
        serde_json::from_str(r#"{"memory":{"limit":67108864},"cpu":{"shares":512}}"#)?;
    c.runtime.update(&c.id, &res).await?;
    c.runtime.pause(&c.id).await?;
    assert_eq!(
        c.runtime.state(&c.id).await?.context("state")?.status,
        "paused"
    );
    c.runtime.resume(&c.id).await?;
    assert_eq!(
        c.runtime.state(&c.id).await?.context("state")?.status,
        "running"
    );
    // Resume of a running container is refused with runc's message.
    let e = c.runtime.resume(&c.id).await.unwrap_err();
    assert!(e.to_string().contains("not paused"), "{e}");
    c.runtime.kill(&c.id, 9, false).await?;
    let exit = monitor::wait_exit_file(&c.request().exit_file, Duration::from_secs(20))
        .await?
        .context("no exit file")?;
    assert_eq!((exit.exit_code, exit.signal), (137, 9));
    c.runtime.delete(&c.id, true).await?;
    Ok(())
}

#[tokio::test]
async fn start_unknown_container_is_not_found() -> Result<()> {
    require_host!();
    let dir = tempfile::tempdir()?;
    let rt = OciRuntime {
        path: RUNC.into(),
        root: dir.path().join("root"),
        args: vec![],
    };
    let e = rt.start("crust-rd-missing").await.unwrap_err();
    assert_eq!(e.kind(), crust::runtime::ErrorKind::NotFound, "{e}");
    assert_eq!(rt.state("crust-rd-missing").await?, None);
    Ok(())
}

#[test]
fn handlers_resolve_runc_on_this_host() -> Result<()> {
    if !Path::new(RUNC).exists() {
        eprintln!("skipping: {RUNC} missing");
        return Ok(());
    }
    let mut cfg = crust::config::CrustConfig::default();
    if let Some(m) = monitor_binary() {
        cfg.runtime.monitor_path = m;
    }
    let hs = Handlers::from_config(&cfg)?;
    let runc = hs.get("")?;
    assert_eq!(runc.name, "runc");
    assert!(runc.runtime.path.ends_with("runc"));
    assert_eq!(runc.runtime.root, Path::new("/run/crust/runtimes/runc"));
    if monitor_binary().is_some() {
        assert_eq!(runc.unavailable, None);
    }
    assert!(hs.get("no-such-handler").is_err());
    Ok(())
}
