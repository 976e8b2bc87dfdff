//! Integration tests: the real monitor binary driving runc 1.1 (/usr/sbin/runc) on a
//! busybox bundle. Need root; skipped (pass trivially) when not root or runc/busybox
//! are missing. Each test cleans up with a Drop guard: `runc delete --force` (which
//! also removes the cgroup), kill of the monitor, temp dir removal.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, bail};
use crust_proto::monitor as pb;
use prost::Message;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const RUNC: &str = "/usr/sbin/runc";
static SEQ: AtomicU32 = AtomicU32::new(0);

fn usable() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && Path::new(RUNC).exists() && Path::new("/bin/busybox").exists()
}

struct Ctr {
    dir: tempfile::TempDir,
    id: String,
    monitor_pid: i32,
    pid: i32,
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = self.runc(&["delete", "--force", &self.id]);
        if self.monitor_pid > 0 {
            // SAFETY: plain kill of the monitor we spawned.
            unsafe { libc::kill(self.monitor_pid, libc::SIGKILL) };
        }
    }
}

struct Opts<'a> {
    args: &'a [&'a str],
    memory_limit: Option<i64>,
    stdin: bool,
    via_shell: bool,
    tty: bool,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            args: &["true"],
            memory_limit: None,
            stdin: false,
            via_shell: false,
            tty: false,
        }
    }
}

impl Ctr {
    fn p(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }

    fn runc(&self, args: &[&str]) -> Result<std::process::Output> {
        let out = Command::new(RUNC)
            .arg("--root")
            .arg(self.p("runc"))
            .args(args)
            .output()?;
        Ok(out)
    }

    /// Builds the bundle, spawns the monitor and waits for its sync result.
    fn create(o: Opts<'_>) -> Result<(Ctr, pb::sync_result::Result)> {
        let dir = tempfile::Builder::new().prefix("crm").tempdir_in("/tmp")?;
        let id = format!(
            "crm-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let mut c = Ctr {
            dir,
            id,
            monitor_pid: 0,
            pid: 0,
        };
        let bundle = c.p("bundle");
        let bin = bundle.join("rootfs/bin");
        std::fs::create_dir_all(&bin)?;
        std::fs::copy("/bin/busybox", bin.join("busybox"))?;
        for l in ["sh", "echo", "cat", "sleep", "true", "stty"] {
            std::os::unix::fs::symlink("busybox", bin.join(l))?;
        }
        let st = Command::new(RUNC)
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .status()?;
        anyhow::ensure!(st.success(), "runc spec failed");
        let cfg_path = bundle.join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
        cfg["process"]["args"] = serde_json::json!(o.args);
        cfg["process"]["terminal"] = o.tty.into();
        if let Some(p) = cfg["process"].as_object_mut() {
            p.remove("oomScoreAdj");
        }
        cfg["linux"]["cgroupsPath"] = format!("/{}", c.id).into();
        if let Some(l) = o.memory_limit {
            cfg["linux"]["resources"]["memory"] = serde_json::json!({ "limit": l, "swap": l });
        }
        std::fs::write(&cfg_path, serde_json::to_vec(&cfg)?)?;

        let mut fds = [0; 2];
        // SAFETY: fds is a valid array; we own both new fds.
        let (r, w) = unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        let mon = env!("CARGO_BIN_EXE_crust-monitor");
        let mut margs: Vec<std::ffi::OsString> = vec![
            "--id".into(),
            c.id.clone().into(),
            "--bundle".into(),
            bundle.clone().into(),
            "--runtime".into(),
            RUNC.into(),
            "--runtime-root".into(),
            c.p("runc").into(),
            "--log-path".into(),
            c.p("ctr.log").into(),
            "--exit-file".into(),
            c.p("exit").into(),
            "--socket".into(),
            c.p("mon.sock").into(),
            "--sync-fd".into(),
            // Directly spawned: the sync pipe is stdout, as the daemon passes it (no code
            // between fork and exec). Via the shell: fd 3, the other kind of sync fd.
            if o.via_shell { "3" } else { "1" }.into(),
        ];
        if o.stdin {
            margs.push("--stdin".into());
        }
        if o.tty {
            margs.push("--tty".into());
        }
        let mut cmd = if o.via_shell {
            let mut s = Command::new("/bin/sh");
            s.arg("-c")
                .arg("\"$0\" \"$@\"; exec sleep 100 3>&-")
                .arg(mon)
                .args(&margs);
            s
        } else {
            let mut s = Command::new(mon);
            s.args(&margs);
            s
        };
        cmd.stdin(std::process::Stdio::null());
        if o.via_shell {
            cmd.stdout(std::process::Stdio::null());
            let wfd = w.as_raw_fd();
            // SAFETY: dup2 is async-signal-safe; it clears CLOEXEC on fd 3 only.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(wfd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        } else {
            cmd.stdout(std::process::Stdio::from(w.try_clone()?));
        }
        let mut child = cmd.spawn()?;
        // Our copies of the write end (the command holds one) must go for end-of-file.
        drop(cmd);
        drop(w);
        let mut buf = Vec::new();
        std::fs::File::from(r).read_to_end(&mut buf)?;
        if o.via_shell {
            // The spawner keeps running; kill it hard to prove the monitor does not care.
            child.kill()?;
            child.wait()?;
        } else {
            let st = child.wait()?;
            anyhow::ensure!(st.success(), "monitor parent exited {st}");
        }
        let sync = pb::SyncResult::decode_length_delimited(&buf[..]).context("decode sync")?;
        c.monitor_pid = sync.monitor_pid;
        let res = sync.result.context("empty sync result")?;
        if let pb::sync_result::Result::Pid(p) = res {
            c.pid = p;
        }
        Ok((c, res))
    }

    fn start(&self) -> Result<()> {
        let out = self.runc(&["start", &self.id])?;
        anyhow::ensure!(
            out.status.success(),
            "runc start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn wait_exit(&self) -> Result<serde_json::Value> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(b) = std::fs::read(self.p("exit")) {
                return Ok(serde_json::from_slice(&b)?);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("no exit file after 30s")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.p("ctr.log")).unwrap_or_default()
    }

    fn request(&self, r: pb::request::Request) -> Result<(UnixStream, pb::Response)> {
        let mut s = UnixStream::connect(self.p("mon.sock"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(&pb::Request { request: Some(r) }.encode_length_delimited_to_vec())?;
        // Read the varint length byte by byte, then exactly the body.
        let mut len = Vec::new();
        loop {
            let mut b = [0u8];
            s.read_exact(&mut b)?;
            len.push(b[0]);
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let n = prost::decode_length_delimiter(&len[..])?;
        let mut body = vec![0; n];
        s.read_exact(&mut body)?;
        Ok((s, pb::Response::decode(&body[..])?))
    }
}

fn read_frame(s: &mut UnixStream) -> Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 5];
    s.read_exact(&mut h)?;
    let mut d = vec![0; u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize];
    s.read_exact(&mut d)?;
    Ok((h[0], d))
}

fn frame(id: u8, d: &[u8]) -> Vec<u8> {
    let mut v = vec![id];
    v.extend_from_slice(&(d.len() as u32).to_be_bytes());
    v.extend_from_slice(d);
    v
}

fn run_to_exit(args: &[&str], memory_limit: Option<i64>) -> Result<(Ctr, serde_json::Value)> {
    let (c, res) = Ctr::create(Opts {
        args,
        memory_limit,
        ..Default::default()
    })?;
    anyhow::ensure!(
        matches!(res, pb::sync_result::Result::Pid(_)),
        "create failed: {res:?}"
    );
    c.start()?;
    let e = c.wait_exit()?;
    Ok((c, e))
}

#[test]
fn echo_to_log_in_cri_format_exit_0() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (c, e) = run_to_exit(&["sh", "-c", "echo out; echo err >&2; echo -n tail"], None)?;
    assert_eq!(e["exit_code"], 0);
    assert_eq!(e["oom_killed"], false);
    let log = c.log();
    let mut recs = Vec::new();
    for line in log.lines() {
        let (ts, rest) = line.split_once(' ').unwrap();
        assert_eq!(ts.len(), 30, "{line}");
        assert!(
            ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.',
            "{line}"
        );
        recs.push(rest.to_string());
    }
    recs.sort();
    assert_eq!(
        recs,
        ["stderr F err", "stdout F out", "stdout F tail"],
        "log:\n{log}"
    );
    Ok(())
}

#[test]
fn exit_code_3() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (_c, e) = run_to_exit(&["sh", "-c", "exit 3"], None)?;
    assert_eq!(
        (e["exit_code"].as_i64(), e["signal"].as_i64()),
        (Some(3), Some(0))
    );
    Ok(())
}

#[test]
fn killed_by_sigkill_is_137() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    // PID 1 ignores signals it has no handler for, even SIGKILL from inside: kill a child.
    let (_c, e) = run_to_exit(&["sh", "-c", "sh -c 'kill -9 $$'; exit $?"], None)?;
    assert_eq!(e["exit_code"], 137);
    Ok(())
}

#[test]
fn runc_kill_9_gives_137_signal_9() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (c, _) = Ctr::create(Opts {
        args: &["sleep", "100"],
        ..Default::default()
    })?;
    c.start()?;
    c.runc(&["kill", &c.id, "KILL"])?;
    let e = c.wait_exit()?;
    assert_eq!(
        (e["exit_code"].as_i64(), e["signal"].as_i64()),
        (Some(137), Some(9))
    );
    Ok(())
}

#[test]
fn oom_is_detected() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (_c, e) = run_to_exit(
        &[
            "sh",
            "-c",
            "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
        ],
        Some(8 << 20),
    )?;
    assert_eq!(e["oom_killed"], true, "{e}");
    assert_eq!(e["exit_code"], 137);
    Ok(())
}

#[test]
fn create_error_is_reported() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (c, res) = Ctr::create(Opts {
        args: &["/nonexistent"],
        ..Default::default()
    })?;
    // runc 1.1 checks the executable at create time.
    match res {
        pb::sync_result::Result::Error(e) => assert!(e.contains("runtime create failed"), "{e}"),
        pb::sync_result::Result::Pid(_) => bail!("create unexpectedly succeeded"),
    }
    assert!(!c.p("exit").exists());
    Ok(())
}

#[test]
fn attach_receives_output_and_exit() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (c, _) = Ctr::create(Opts {
        args: &["sh", "-c", "while true; do echo tick; sleep 0.2; done"],
        ..Default::default()
    })?;
    c.start()?;
    let (mut a1, r) = c.request(pb::request::Request::Attach(pb::Attach { stdin: false }))?;
    assert_eq!(r.error, "");
    let (mut a2, _) = c.request(pb::request::Request::Attach(pb::Attach { stdin: false }))?;
    for a in [&mut a1, &mut a2] {
        let (id, d) = read_frame(a)?;
        assert_eq!((id, d.as_slice()), (1, &b"tick\n"[..]));
    }
    let (_, st) = c.request(pb::request::Request::Status(pb::Status {}))?;
    assert!(st.running);
    assert_eq!(st.pid, c.pid);
    c.runc(&["kill", &c.id, "KILL"])?;
    loop {
        let (id, d) = read_frame(&mut a1)?;
        if id == 4 {
            assert_eq!(i32::from_be_bytes(d[..4].try_into()?), 137);
            break;
        }
    }
    assert_eq!(c.wait_exit()?["exit_code"], 137);
    assert!(c.log().contains(" stdout F tick\n"));
    Ok(())
}

#[test]
fn stdin_via_attach_to_cat() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (c, _) = Ctr::create(Opts {
        args: &["cat"],
        stdin: true,
        ..Default::default()
    })?;
    c.start()?;
    let (mut a, r) = c.request(pb::request::Request::Attach(pb::Attach { stdin: true }))?;
    assert_eq!(r.error, "");
    a.write_all(&frame(0, b"hello\n"))?;
    let (id, d) = read_frame(&mut a)?;
    assert_eq!((id, d.as_slice()), (1, &b"hello\n"[..]));
    a.write_all(&frame(3, b""))?;
    assert_eq!(c.wait_exit()?["exit_code"], 0);
    assert!(c.log().ends_with(" stdout F hello\n"), "{}", c.log());
    Ok(())
}

#[test]
fn reopen_log() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (c, _) = Ctr::create(Opts {
        args: &["cat"],
        stdin: true,
        ..Default::default()
    })?;
    c.start()?;
    let (mut a, _) = c.request(pb::request::Request::Attach(pb::Attach { stdin: true }))?;
    a.write_all(&frame(0, b"one\n"))?;
    read_frame(&mut a)?;
    std::fs::rename(c.p("ctr.log"), c.p("ctr.log.1"))?;
    let (_, r) = c.request(pb::request::Request::ReopenLog(pb::ReopenLog {}))?;
    assert_eq!(r.error, "");
    a.write_all(&frame(0, b"two\n"))?;
    read_frame(&mut a)?;
    a.write_all(&frame(3, b""))?;
    c.wait_exit()?;
    assert!(std::fs::read_to_string(c.p("ctr.log.1"))?.ends_with(" stdout F one\n"));
    assert!(c.log().ends_with(" stdout F two\n"));
    Ok(())
}

#[test]
fn monitor_survives_killed_spawner() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (c, res) = Ctr::create(Opts {
        args: &["sleep", "100"],
        via_shell: true,
        ..Default::default()
    })?;
    assert!(matches!(res, pb::sync_result::Result::Pid(_)));
    c.start()?;
    let (_, st) = c.request(pb::request::Request::Status(pb::Status {}))?;
    assert!(st.running);
    // SAFETY: signal 0 only checks existence.
    assert_eq!(unsafe { libc::kill(c.monitor_pid, 0) }, 0);
    c.runc(&["kill", &c.id, "KILL"])?;
    assert_eq!(c.wait_exit()?["exit_code"], 137);
    Ok(())
}

#[test]
fn tty_output_and_resize() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (c, res) = Ctr::create(Opts {
        args: &["sh", "-c", "sleep 1; stty size"],
        tty: true,
        ..Default::default()
    })?;
    anyhow::ensure!(
        matches!(res, pb::sync_result::Result::Pid(_)),
        "create failed: {res:?}"
    );
    let (_, r) = c.request(pb::request::Request::Resize(pb::Resize {
        rows: 30,
        cols: 100,
    }))?;
    assert_eq!(r.error, "");
    let (mut a, _) = c.request(pb::request::Request::Attach(pb::Attach { stdin: false }))?;
    c.start()?;
    let mut out = Vec::new();
    loop {
        let (id, d) = read_frame(&mut a)?;
        if id == 4 {
            break;
        }
        assert_eq!(id, 1);
        out.extend_from_slice(&d);
    }
    assert_eq!(String::from_utf8_lossy(&out).trim(), "30 100");
    assert_eq!(c.wait_exit()?["exit_code"], 0);
    assert!(c.log().contains(" stdout F 30 100"), "{}", c.log());
    Ok(())
}

#[test]
fn resize_without_tty_is_an_error() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (c, _) = Ctr::create(Opts {
        args: &["true"],
        ..Default::default()
    })?;
    let (_, r) = c.request(pb::request::Request::Resize(pb::Resize {
        rows: 1,
        cols: 1,
    }))?;
    assert!(r.error.contains("no terminal"), "{}", r.error);
    Ok(())
}

#[test]
fn slow_attacher_does_not_block_logging() -> Result<()> {
    if !usable() {
        return Ok(());
    }
    let (c, _) = Ctr::create(Opts {
        args: &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 60000 ]; do echo line-$i; i=$((i+1)); done",
        ],
        ..Default::default()
    })?;
    // Attached but never reads: its socket buffer fills and it gets disconnected.
    let (_idle, _) = c.request(pb::request::Request::Attach(pb::Attach { stdin: false }))?;
    c.start()?;
    assert_eq!(c.wait_exit()?["exit_code"], 0);
    let log = c.log();
    let mut n = 0;
    let mut line = String::new();
    for rec in log.lines() {
        let mut f = rec.splitn(4, ' ');
        let (_ts, stream, tag, content) = (f.next(), f.next(), f.next(), f.next().unwrap_or(""));
        assert_eq!(stream, Some("stdout"));
        line.push_str(content);
        if tag == Some("F") {
            assert_eq!(line, format!("line-{n}"));
            n += 1;
            line.clear();
        }
    }
    assert_eq!(n, 60000);
    Ok(())
}
