//! End-to-end tests of operating crust as a node service: the Prometheus endpoint, the
//! clean-shutdown marker (graceful stop skips the start-up check, kill -9 runs it),
//! `crust status`, `crust check [--repair]` on a consistent and on a damaged store, and
//! `crust wipe [--images]` removing running containers and images.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use common::daemon::crust_bin;
use common::registry::free_port;
use common::*;
use crust_proto::cri::{
    ContainerState, ListContainersRequest, ListImagesRequest, ListPodSandboxRequest, VersionRequest,
};

/// Run `crust <args>` with the daemon's config flags (root, runroot, socket, config files).
fn crust(d: &Daemon, args: &[&str]) -> Result<(i32, String, String)> {
    let b = &d.base;
    let out = Command::new(crust_bin())
        .arg("--config")
        .arg(b.join("crust.toml"))
        .arg("--config-dir")
        .arg(b.join("crust.conf.d"))
        .arg("--root")
        .arg(&d.root)
        .arg("--runroot")
        .arg(d.runroot())
        .arg("--listen")
        .arg(&d.sock)
        .arg("--registries-conf")
        .arg(&d.registries_conf)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `GET /metrics` on 127.0.0.1:`port`; returns the body.
fn scrape(port: u16) -> Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).context("connect metrics")?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    anyhow::ensure!(out.starts_with("HTTP/1.1 200 OK"), "bad answer: {out}");
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// The value of the sample line starting with `prefix` (labels included).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn enable_metrics(d: &Daemon, port: u16) -> Result<()> {
    std::fs::write(
        d.base.join("crust.conf.d/50-metrics.toml"),
        format!("[crust.metrics]\nenable = true\naddress = \"127.0.0.1:{port}\"\n"),
    )?;
    Ok(())
}

/// An image whose second layer no other test image has (so pulling it downloads bytes).
fn unique_image(seed: u64) -> Result<Image> {
    let mut x = seed | 1;
    let payload: Vec<u8> = (0..65536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let extra = LayerBuilder::new()
        .file("payload", &payload, 0o644)?
        .finish(Comp::Gzip)?;
    build_image(vec![busybox_layer()?, extra], &ImageOpts::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_marker_and_status() -> Result<()> {
    let mut w = World::new().await?;
    let marker = w.env.daemon.root.join("clean.shutdown");
    // First start had no marker: the check ran.
    assert!(w.env.daemon.log_text().contains("no clean-shutdown marker"));
    // Graceful stop writes the marker; the next start consumes it and skips the check.
    let port = free_port()?;
    enable_metrics(&w.env.daemon, port)?;
    w.env.daemon.stop();
    assert!(marker.exists(), "no marker after SIGTERM");
    w.env.daemon.spawn().await?;
    assert!(!marker.exists(), "marker not consumed at start-up");
    assert!(
        w.env
            .daemon
            .log_text()
            .contains("clean shutdown marker found: skipping the storage check")
    );

    // RPCs, a pull and a running container show up in the scrape.
    let mut rt = w.rt().await?;
    rt.version(VersionRequest::default()).await?;
    rt.version(VersionRequest::default()).await?;
    // A layer the daemon does not have yet, so the pull downloads bytes.
    let img = unique_image(0x2545_f491_4f6c_dd1d)?;
    push_image(&w.env.registry, "e2e/metrics", "1", &img)?;
    w.env.daemon.pull(&w.env.r("e2e/metrics:1")).await?;
    assert!(
        w.env
            .daemon
            .pull(&w.env.r("e2e/metrics:missing"))
            .await
            .is_err()
    );
    let pod_cfg = w.pod_config("metrics");
    let pod = w.run_pod(&pod_cfg).await?;
    let ctr = w
        .run(&pod, &w.ctr_config("sleeper", &["sleep", "3600"]))
        .await?;
    w.wait_state(
        &ctr,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;
    let m = scrape(port)?;
    assert!(
        sample(&m, "crust_rpc_requests_total{rpc=\"Version\",code=\"OK\"}").unwrap_or(0.0) >= 2.0,
        "{m}"
    );
    assert!(
        sample(
            &m,
            "crust_rpc_duration_seconds_count{rpc=\"RunPodSandbox\"}"
        ) == Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "crust_rpc_requests_total{rpc=\"PullImage\",code=\"NotFound\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "crust_image_pulls_total{result=\"success\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "crust_image_pulls_total{result=\"failure\"}"),
        Some(1.0)
    );
    assert!(
        sample(&m, "crust_image_pull_bytes_total").unwrap_or(0.0) > 1000.0,
        "{m}"
    );
    assert_eq!(sample(&m, "crust_containers{state=\"running\"}"), Some(1.0));
    assert_eq!(sample(&m, "crust_pods{state=\"ready\"}"), Some(1.0));
    assert_eq!(sample(&m, "crust_container_ooms_total"), Some(0.0));
    assert_eq!(sample(&m, "crust_storage_check_runs_total"), Some(0.0));

    // `crust status` asks the running daemon.
    let (code, out, err) = crust(&w.env.daemon, &["status", "config"])?;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("[crust.metrics]") && out.contains("enable = true"),
        "{out}"
    );
    assert!(out.contains(&format!("127.0.0.1:{port}")), "{out}");
    let (code, out, err) = crust(&w.env.daemon, &["status", "info"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert!(v["info"]["runtimeHandlers"]["runc"].is_object(), "{out}");
    let (code, out, err) = crust(&w.env.daemon, &["status", "container", &ctr[..12]])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert!(v["info"]["info"]["pid"].as_i64().unwrap_or(0) > 0, "{out}");
    assert!(v["info"]["info"]["bundle"].is_string(), "{out}");
    // Offline tools refuse while the daemon serves.
    for args in [&["check"][..], &["wipe"][..]] {
        let (code, _, err) = crust(&w.env.daemon, args)?;
        assert_eq!(code, 1);
        assert!(err.contains("a crust daemon is running"), "{err}");
    }

    // kill -9: no marker, so the next start runs the check (and counts it).
    w.env.daemon.kill9();
    assert!(!marker.exists());
    // What a crash mid-create leaves: a bundle without a record.
    let orphan = w
        .env
        .daemon
        .runroot()
        .join("containers")
        .join("a".repeat(64));
    std::fs::create_dir_all(&orphan)?;
    w.env.daemon.spawn().await?;
    let m = scrape(port)?;
    assert_eq!(
        sample(&m, "crust_storage_check_runs_total"),
        Some(1.0),
        "{m}"
    );
    assert!(
        sample(&m, "crust_storage_check_problems_total").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert!(!orphan.exists());
    assert!(w.env.daemon.log_text().contains("storage check repaired"));
    assert_eq!(
        w.env
            .daemon
            .log_text()
            .matches("no clean-shutdown marker")
            .count(),
        2
    );
    // The running container survived the crash and the check.
    let st = w.status(&ctr).await?;
    assert_eq!(st.state, ContainerState::ContainerRunning as i32);
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "{left:#?}");
    Ok(())
}

/// Write a damaged store: an incomplete layer dir and an image record naming a missing layer.
fn damage(root: &Path) -> Result<()> {
    let storage = root.join("storage");
    std::fs::create_dir_all(storage.join("layers").join("e".repeat(64)).join("diff"))?;
    let id = "d".repeat(64);
    let missing = format!("sha256:{}", "f".repeat(64));
    std::fs::write(
        storage.join("images").join(format!("{id}.json")),
        format!(
            r#"{{"id":"sha256:{id}","manifest_digest":"{missing}","repo_tags":["broken:1"],"layers":["{missing}"]}}"#
        ),
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_and_repairs() -> Result<()> {
    let mut env = Env::new().await?;
    let img = tools_image("check")?;
    push_image(&env.registry, "e2e/check", "1", &img)?;
    let good = env.daemon.pull(&env.r("e2e/check:1")).await?;
    let other = unique_image(0x9e37_79b9_7f4a_7c15)?;
    push_image(&env.registry, "e2e/check", "2", &other)?;
    let other_id = env.daemon.pull(&env.r("e2e/check:2")).await?;
    env.daemon.stop();
    let d = &env.daemon;
    let (code, out, err) = crust(d, &["check"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("consistent"), "{out}");

    damage(&d.root)?;
    // Dropping the second image's record orphans its own layer.
    let other_hex = other_id.trim_start_matches("sha256:");
    std::fs::remove_file(
        d.root
            .join("storage/images")
            .join(format!("{other_hex}.json")),
    )?;
    let orphan = d.layer_dirs().len();
    let (code, out, err) = crust(d, &["check"])?;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("incomplete-layer"), "{out}");
    assert!(out.contains("broken-image-record"), "{out}");
    assert!(err.contains("crust check --repair"), "{err}");
    assert_eq!(out.matches("orphan-layer").count(), 1, "{out}");
    // Reporting changed nothing.
    assert!(d.root.join("storage/layers").join("e".repeat(64)).exists());

    let (code, out, err) = crust(d, &["check", "--repair"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("[repaired]"), "{out}");
    // The marker of the earlier clean stop was consumed for the repair, then put back.
    assert!(d.root.join("clean.shutdown").exists());
    let (code, out, err) = crust(d, &["check"])?;
    assert_eq!(code, 0, "{out}{err}");
    // The incomplete and the orphan layer are gone, the good image's layers stay.
    assert_eq!(d.layer_dirs().len(), orphan - 2);

    // The good image survived the repair.
    env.daemon.spawn().await?;
    let imgs = env
        .daemon
        .images()
        .await?
        .list_images(ListImagesRequest::default())
        .await?
        .into_inner()
        .images;
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0].id, good);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_removes_running_containers_then_images() -> Result<()> {
    let mut w = World::new().await?;
    let pod_cfg = w.pod_config("wipe");
    let pod = w.run_pod(&pod_cfg).await?;
    let ctr = w
        .run(&pod, &w.ctr_config("sleeper", &["sleep", "3600"]))
        .await?;
    w.wait_state(
        &ctr,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;
    let pid = {
        let mut rt = w.rt().await?;
        let r = rt
            .container_status(crust_proto::cri::ContainerStatusRequest {
                container_id: ctr.clone(),
                verbose: true,
            })
            .await?
            .into_inner();
        let v: serde_json::Value = serde_json::from_str(&r.info["info"])?;
        v["pid"].as_i64().unwrap_or(0)
    };
    assert!(pid > 0);
    // Graceful stop: containers keep running without the daemon.
    w.env.daemon.stop();
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    let (code, out, err) = crust(&w.env.daemon, &["wipe"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("removed 1 pod(s) and 1 container(s)"), "{out}");
    // The container's processes, mounts, bundles and records are gone; images stay.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "container still running"
    );
    let left = w.leftovers();
    assert!(left.is_empty(), "{left:#?}");
    let records = std::fs::read_dir(w.env.daemon.root.join("state/containers"))?.count();
    assert_eq!(records, 0);
    assert!(std::fs::read_dir(w.env.daemon.root.join("storage/images"))?.count() > 0);

    let (code, out, err) = crust(&w.env.daemon, &["wipe", "--images"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("and the image store"), "{out}");
    assert!(!w.env.daemon.root.join("storage").exists());

    // A daemon started afterwards sees an empty node.
    w.env.daemon.spawn().await?;
    let mut rt = w.rt().await?;
    let ctrs = rt
        .list_containers(ListContainersRequest::default())
        .await?
        .into_inner()
        .containers;
    assert!(ctrs.is_empty());
    let pods = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await?
        .into_inner()
        .items;
    assert!(pods.is_empty());
    let imgs = w
        .env
        .daemon
        .images()
        .await?
        .list_images(ListImagesRequest::default())
        .await?
        .into_inner()
        .images;
    assert!(imgs.is_empty());
    Ok(())
}
