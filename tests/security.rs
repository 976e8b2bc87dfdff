//! End-to-end tests of the container security context, each field observed from inside
//! the container through its log output: run_as_user/group/username and supplemental
//! groups (`id`), capabilities add/drop/ALL (`CapEff` in /proc/self/status), read-only
//! rootfs, masked and read-only paths (/proc/self/mountinfo), privileged, no_new_privs,
//! seccomp (RuntimeDefault/Unconfined), and CRI mounts (read-only, read-write, onto a file).
#![allow(clippy::unwrap_used)]

mod common;

use anyhow::{Context, Result};
use common::*;
use crust_proto::cri::security_profile::ProfileType;
use crust_proto::cri::{Capability, ContainerConfig, SecurityProfile};

/// Run `script` with `sh -c` in `pod` after `tweak`ing the config; returns its output.
async fn observe(
    w: &World,
    pod: &str,
    script: &str,
    tweak: impl FnOnce(&mut ContainerConfig),
) -> Result<String> {
    let mut cfg = w.ctr_config("sc", &["sh", "-c", script]);
    tweak(&mut cfg);
    let (st, out) = w.run_to_exit(pod, &cfg).await?;
    anyhow::ensure!(
        st.exit_code == 0,
        "{script}: exit {} output {out}",
        st.exit_code
    );
    Ok(out)
}

/// `CapEff` of the container's shell as a bit set.
fn cap_eff(out: &str) -> Result<u64> {
    let v = out
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .with_context(|| format!("no CapEff in {out}"))?;
    Ok(u64::from_str_radix(v.trim(), 16)?)
}

const CAP_CHOWN: u64 = 1 << 0;
const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_SYS_ADMIN: u64 = 1 << 21;
const CAP_SYS_TIME: u64 = 1 << 25;
const CAPS: &str = "grep Cap /proc/self/status";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_groups() -> Result<()> {
    let w = World::new().await?;
    let pod = w.run_pod(&w.pod_config("users")).await?;
    let out = observe(&w, &pod, "id", |c| {
        let s = sc(c);
        s.run_as_user = Some(crust_proto::cri::Int64Value { value: 1000 });
        s.run_as_group = Some(crust_proto::cri::Int64Value { value: 2000 });
        s.supplemental_groups = vec![3000, 4000];
    })
    .await?;
    assert!(out.contains("uid=1000"), "{out}");
    assert!(out.contains("gid=2000"), "{out}");
    assert!(
        out.contains("3000") && out.contains("4000"),
        "supplemental groups: {out}"
    );

    let out = observe(&w, &pod, "id", |c| {
        sc(c).run_as_username = "www-data".into()
    })
    .await?;
    assert!(out.contains("uid=33(www-data) gid=33(www-data)"), "{out}");

    let out = observe(&w, &pod, "id", |_| {}).await?;
    assert!(out.contains("uid=0(root) gid=0(root)"), "{out}");
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_add_drop_all() -> Result<()> {
    let w = World::new().await?;
    let pod = w.run_pod(&w.pod_config("caps")).await?;
    let default = cap_eff(&observe(&w, &pod, CAPS, |_| {}).await?)?;
    assert!(
        default & CAP_CHOWN != 0,
        "default set has CHOWN: {default:#x}"
    );
    assert!(
        default & CAP_SYS_ADMIN == 0,
        "default set lacks SYS_ADMIN: {default:#x}"
    );
    assert!(
        default & CAP_NET_ADMIN == 0,
        "default set lacks NET_ADMIN: {default:#x}"
    );

    let only = cap_eff(
        &observe(&w, &pod, CAPS, |c| {
            sc(c).capabilities = Some(Capability {
                drop_capabilities: vec!["ALL".into()],
                add_capabilities: vec!["NET_ADMIN".into(), "CAP_SYS_TIME".into()],
                ..Default::default()
            })
        })
        .await?,
    )?;
    assert_eq!(only, CAP_NET_ADMIN | CAP_SYS_TIME, "{only:#x}");

    let dropped = cap_eff(
        &observe(&w, &pod, CAPS, |c| {
            sc(c).capabilities = Some(Capability {
                drop_capabilities: vec!["CHOWN".into()],
                ..Default::default()
            })
        })
        .await?,
    )?;
    assert_eq!(
        dropped,
        default & !CAP_CHOWN,
        "{dropped:#x} vs {default:#x}"
    );
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

/// A path of runc's default masked list that exists on this kernel (/proc/kcore needs
/// CONFIG_PROC_KCORE; runc skips masking paths that do not exist).
fn masked_probe() -> &'static str {
    [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or("/proc/keys")
}

const WRITE: &str =
    "if echo x > /probe 2>/dev/null; then echo WRITE_OK; else echo WRITE_FAILED; fi";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_rootfs_masked_and_readonly_paths() -> Result<()> {
    let w = World::new().await?;
    let pod = w.run_pod(&w.pod_config("ro")).await?;
    let out = observe(&w, &pod, WRITE, |c| sc(c).readonly_rootfs = true).await?;
    assert!(out.contains("WRITE_FAILED"), "{out}");
    let out = observe(&w, &pod, WRITE, |_| {}).await?;
    assert!(out.contains("WRITE_OK"), "{out}");

    // Default masked paths (runc's list): a masked file is covered by a mount and reads
    // empty; default read-only paths: /proc/sys is a read-only mount.
    let probe = masked_probe();
    let script = format!(
        "grep -c ' {probe} ' /proc/self/mountinfo; \
         echo masked=$(cat {probe} 2>/dev/null | wc -c); \
         grep ' /proc/sys ' /proc/self/mountinfo"
    );
    let out = observe(&w, &pod, &script, |_| {}).await?;
    let mut lines = out.lines();
    assert_ne!(lines.next(), Some("0"), "{probe} must be masked: {out}");
    assert!(out.contains("masked=0"), "{out}");
    let sys = out
        .lines()
        .find(|l| l.contains(" /proc/sys "))
        .unwrap_or_default();
    assert!(
        sys.contains(" ro,") || sys.contains(" ro "),
        "/proc/sys must be read-only: {out}"
    );

    // Explicit CRI lists replace the defaults.
    let script = "echo cpuinfo=$(cat /proc/cpuinfo | wc -c); \
                  if echo x > /proc/sys/kernel/domainname 2>/dev/null; then echo SYS_RW; else echo SYS_RO; fi; \
                  if echo x > /tmp/probe 2>/dev/null; then echo TMP_RW; else echo TMP_RO; fi";
    let out = observe(&w, &pod, script, |c| {
        let s = sc(c);
        s.masked_paths = vec!["/proc/cpuinfo".into()];
        s.readonly_paths = vec!["/tmp".into(), "/proc/sys".into()];
    })
    .await?;
    assert!(out.contains("cpuinfo=0"), "{out}");
    assert!(out.contains("SYS_RO"), "{out}");
    assert!(out.contains("TMP_RO"), "{out}");
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_no_new_privs_and_seccomp() -> Result<()> {
    let w = World::new().await?;
    let mut pcfg = w.pod_config("priv");
    pod_sc(&mut pcfg).privileged = true;
    let pod = w.run_pod(&pcfg).await?;
    let script = format!(
        "grep -E 'Cap|NoNewPrivs|Seccomp:' /proc/self/status; \
         echo masked_mounts=$(grep -c ' {} ' /proc/self/mountinfo); \
         if [ -e /dev/kmsg ]; then echo KMSG; fi; \
         if echo x > /proc/sys/kernel/domainname 2>/dev/null; then echo SYS_RW; else echo SYS_RO; fi",
        masked_probe()
    );
    let script = script.as_str();
    let field = |out: &str, k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };

    let out = observe(&w, &pod, script, |c| sc(c).privileged = true).await?;
    let caps = cap_eff(&out)?;
    assert!(caps & CAP_SYS_ADMIN != 0, "privileged has SYS_ADMIN: {out}");
    assert!(
        out.contains("masked_mounts=0"),
        "privileged: nothing masked: {out}"
    );
    if std::path::Path::new("/dev/kmsg").exists() {
        assert!(out.contains("KMSG"), "privileged sees host devices: {out}");
    }
    assert!(
        out.contains("SYS_RW"),
        "privileged: /proc/sys writable: {out}"
    );
    assert_eq!(
        field(&out, "Seccomp:"),
        "0",
        "privileged is unconfined: {out}"
    );

    let out = observe(&w, &pod, script, |_| {}).await?;
    assert!(
        !out.contains("KMSG"),
        "unprivileged: no host devices: {out}"
    );
    assert!(
        out.contains("SYS_RO"),
        "unprivileged: /proc/sys read-only: {out}"
    );
    assert_eq!(field(&out, "NoNewPrivs:"), "0", "{out}");

    let out = observe(&w, &pod, script, |c| {
        let s = sc(c);
        s.no_new_privs = true;
        s.seccomp = Some(SecurityProfile {
            profile_type: ProfileType::Unconfined as i32,
            localhost_ref: String::new(),
        });
    })
    .await?;
    assert_eq!(field(&out, "NoNewPrivs:"), "1", "{out}");
    assert_eq!(field(&out, "Seccomp:"), "0", "Unconfined: {out}");

    let out = observe(&w, &pod, script, |c| {
        sc(c).seccomp = Some(SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        });
    })
    .await?;
    assert_eq!(field(&out, "Seccomp:"), "2", "RuntimeDefault: {out}");
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cri_mounts_read_only_read_write_and_onto_files() -> Result<()> {
    let w = World::new().await?;
    let pod = w.run_pod(&w.pod_config("mounts")).await?;
    let ro = w.env.base().join("ro-data");
    let rw = w.env.base().join("rw-data");
    let term = w.env.base().join("termination-log");
    std::fs::create_dir_all(&ro)?;
    std::fs::create_dir_all(&rw)?;
    std::fs::write(ro.join("hello.txt"), "hello-from-host\n")?;
    std::fs::write(&term, "")?;
    let script = "cat /data/hello.txt; \
                  if echo x > /data/new 2>/dev/null; then echo RO_WRITE_OK; else echo RO_WRITE_FAILED; fi; \
                  echo written > /rw/out; echo bye > /dev/termination-log";
    let mut cfg = w.ctr_config("mounts", &["sh", "-c", script]);
    let mount = |c: &str, h: &std::path::Path, readonly: bool| crust_proto::cri::Mount {
        container_path: c.into(),
        host_path: h.display().to_string(),
        readonly,
        ..Default::default()
    };
    cfg.mounts = vec![
        mount("/data", &ro, true),
        mount("/rw", &rw, false),
        mount("/dev/termination-log", &term, false),
    ];
    let id = w.create(&pod, &cfg).await?;
    w.start(&id).await?;
    let st = w.wait_exit(&id).await?;
    let pod_cfg = w.pods.lock().unwrap().get(&pod).cloned().unwrap();
    let out = w.output(&pod_cfg, &cfg)?;
    assert_eq!(st.exit_code, 0, "{out}");
    assert!(out.contains("hello-from-host"), "{out}");
    assert!(out.contains("RO_WRITE_FAILED"), "{out}");
    assert!(!ro.join("new").exists());
    assert_eq!(std::fs::read_to_string(rw.join("out"))?, "written\n");
    assert_eq!(std::fs::read_to_string(&term)?, "bye\n");
    let data = st
        .mounts
        .iter()
        .find(|m| m.container_path == "/data")
        .with_context(|| format!("status mounts {:?}", st.mounts))?;
    assert!(data.readonly, "{data:?}");
    assert_eq!(data.host_path, ro.display().to_string());
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}
