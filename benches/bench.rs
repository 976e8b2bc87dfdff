//! Pull benchmark (harness = false; `make bench`).
//!
//! Pushes a ~50 MB-compressed, 10-layer image to a throw-away registry, then times (median
//! of 5 runs; `CRUST_BENCH_RUNS` changes it):
//! (a) crust: PullImage through the CRI socket on a fresh daemon root per run;
//! (b) `skopeo copy` to an OCI layout + `umoci unpack` (the classic tool chain);
//! (c) the floor: plain in-process gzip decompression of the 10 layers (flate2 with the
//!     same zlib-rs build crust uses, sequential).
//! A fourth row, `crust+sync -f`, times the pull until the store's data is on disk: crust
//! makes pulled layers durable in the background (src/image/syncer.rs), and skopeo/umoci
//! do not sync at all. The CPU crust and the registry used per pull (`/proc/<pid>/stat`)
//! is printed too: on a 2-core machine the pull is CPU bound, and the registry's share
//! runs on the same cores.
//!
//! The ratios are given two ways: the ratio of the medians, and the median of the per-run
//! ratios (each crust pull against the skopeo+umoci run and the floor run right after it).
//! The machine's speed drifts over a bench run; a pair measured seconds apart sees the
//! same speed, so the paired ratio is the steadier of the two. A goal counts as met only
//! when both ratios meet it.
//!
//! Daemons run at the default log level, `info` (`CRUST_TEST_LOG_LEVEL` overrides it).
//!
//! Knobs for profiling: `CRUST_BENCH_ONLY_CRUST=1` (crust rows only),
//! `CRUST_BENCH_VERBOSE=1` (per-pull times), `CRUST_BENCH_DAEMON_LOG=<file>` (keep the last
//! daemon's log), `CRUST_BENCH_DROPIN=<toml>` (extra daemon config).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod exec;
mod lifecycle;
mod network;
mod shared;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::*;
use crust_proto::cri::{ImageSpec, PullImageRequest};

/// Runs per tool (`CRUST_BENCH_RUNS` overrides); the median is reported.
const RUNS: usize = 5;
const LAYERS: usize = 10;
/// Uncompressed bytes per layer; with the content below gzip gives ~2.5x.
const LAYER_BYTES: usize = 11 << 20;

/// Deterministic, semi-compressible content: xorshift bytes mixed with repeated text.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let text =
        b"crust pulls images into overlay layers; the quick brown fox jumps over the lazy dog. ";
    let mut out = Vec::with_capacity(len);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while out.len() < len {
        let r = next();
        if r % 2 == 0 {
            for _ in 0..4 {
                out.extend_from_slice(&next().to_le_bytes());
            }
        } else {
            let start = (r >> 8) as usize % text.len();
            out.extend_from_slice(&text[start..]);
        }
    }
    out.truncate(len);
    out
}

fn build() -> Result<Image> {
    let mut layers = Vec::new();
    for i in 0..LAYERS {
        let mut lb = LayerBuilder::new().dir(&format!("l{i}"))?;
        let data = content(i as u64 + 1, LAYER_BYTES);
        for (j, chunk) in data.chunks(1 << 20).enumerate() {
            lb = lb.file(&format!("l{i}/f{j}"), chunk, 0o644)?;
        }
        layers.push(lb.finish(Comp::Gzip)?);
    }
    build_image(layers, &ImageOpts::default())
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[0]), ms(v[v.len() - 1]))
}

/// One crust pull: (until PullImage returned, until `sync -f` returned, crust CPU ms,
/// registry CPU ms). The daemon's root is pushed onto `keep`, deleted only after every
/// run: deleting a run's files right away would perturb the next run (ext4 scans past
/// recently freed inodes when it allocates new ones, and the freed pages are reclaimed).
async fn crust_run(
    reg: &Registry,
    name: &str,
    keep: &mut Vec<tempfile::TempDir>,
) -> Result<(Duration, Duration, f64, f64)> {
    let tmp = tempfile::Builder::new().prefix("crust-bench-").tempdir()?;
    if let Ok(extra) = std::env::var("CRUST_BENCH_DROPIN") {
        let dir = tmp.path().join("d").join("crust.conf.d");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("bench.toml"), extra)?;
    }
    let d = Daemon::start(&tmp.path().join("d"), &registries_conf(&reg.host, "")).await?;
    let mut c = d.images().await?;
    let pid = d.pid().context("daemon pid")?;
    let (cpu0, reg0) = (common::registry::process_cpu_ms(pid), reg.cpu_ms());
    let t = Instant::now();
    c.pull_image(PullImageRequest {
        image: Some(ImageSpec {
            image: name.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .context("crust PullImage")?;
    let el = t.elapsed();
    let (cpu, reg_cpu) = (
        common::registry::process_cpu_ms(pid) - cpu0,
        reg.cpu_ms() - reg0,
    );
    if std::env::var_os("CRUST_BENCH_VERBOSE").is_some() {
        eprintln!(
            "pull {:.1} ms: crust cpu {cpu:.0} ms, registry cpu {reg_cpu:.0} ms",
            el.as_secs_f64() * 1000.0,
        );
    }
    if let Some(path) = std::env::var_os("CRUST_BENCH_DAEMON_LOG") {
        std::fs::write(path, d.log_text())?;
    }
    // Layers become durable in the background after PullImage returns; time until the
    // store's data is on disk too, so the table shows both.
    let st = Command::new("sync").arg("-f").arg(tmp.path()).status()?;
    if !st.success() {
        bail!("sync -f failed: {st}");
    }
    let durable = t.elapsed();
    drop(d);
    keep.push(tmp);
    Ok((el, durable, cpu, reg_cpu))
}

fn skopeo_umoci_run(name: &str, keep: &mut Vec<tempfile::TempDir>) -> Result<Duration> {
    let tmp = tempfile::Builder::new()
        .prefix("crust-bench-skopeo-")
        .tempdir()?;
    let layout = format!("{}:v1", tmp.path().join("layout").display());
    let t = Instant::now();
    let st = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci:{layout}"),
        ])
        .status()
        .context("run skopeo (make test-deps)")?;
    if !st.success() {
        bail!("skopeo copy failed: {st}");
    }
    let st = Command::new("umoci")
        .args(["unpack", "--image", &layout])
        .arg(tmp.path().join("bundle"))
        .status()
        .context("run umoci (make test-deps)")?;
    if !st.success() {
        bail!("umoci unpack failed: {st}");
    }
    let el = t.elapsed();
    keep.push(tmp);
    Ok(el)
}

/// `sync` the whole system before a timed step.
fn settle() -> Result<()> {
    let st = Command::new("sync").status().context("run sync")?;
    if !st.success() {
        bail!("sync failed: {st}");
    }
    Ok(())
}

fn floor_run(img: &Image) -> Result<Duration> {
    let t = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    for l in &img.layers {
        let mut d = flate2::read::GzDecoder::new(&l.blob[..]);
        while d.read(&mut buf)? > 0 {}
    }
    Ok(t.elapsed())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    // Daemons run at their default log level, as on a node.
    common::daemon::set_log_level("info");
    // CRUST_BENCH_ONLY=lifecycle|network|exec: that benchmark alone (`pull`: see below).
    match std::env::var("CRUST_BENCH_ONLY").as_deref() {
        Ok("lifecycle") => return lifecycle::run().await,
        Ok("network") => return network::run().await,
        Ok("exec") => return exec::run().await,
        _ => {}
    }
    let reg = Registry::start()?;
    let img = build()?;
    let compressed: usize = img.layers.iter().map(|l| l.blob.len()).sum();
    push_image(&reg, "bench/img", "v1", &img)?;
    let name = format!("{}/bench/img:v1", reg.host);
    println!(
        "image: {LAYERS} layers, {:.1} MB compressed, {:.1} MB uncompressed",
        compressed as f64 / 1e6,
        (LAYERS * LAYER_BYTES) as f64 / 1e6
    );

    let mut crust = Vec::new();
    let mut durable = Vec::new();
    let mut classic = Vec::new();
    let mut floor = Vec::new();
    let (mut cpu, mut reg_cpu) = (Vec::new(), Vec::new());
    let mut keep = Vec::new();
    // CRUST_BENCH_ONLY_CRUST=1: time crust alone (for profiling; no comparison table).
    let only_crust = std::env::var_os("CRUST_BENCH_ONLY_CRUST").is_some();
    let runs = std::env::var("CRUST_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(RUNS);
    for _ in 0..runs {
        // Every timed step starts with nothing dirty: data the previous step left in the
        // page cache would otherwise be written back during the next one.
        settle()?;
        let (returned, on_disk, c, r) = crust_run(&reg, &name, &mut keep).await?;
        crust.push(returned);
        durable.push(on_disk);
        cpu.push(c);
        reg_cpu.push(r);
        if only_crust {
            continue;
        }
        settle()?;
        classic.push(skopeo_umoci_run(&name, &mut keep)?);
        settle()?;
        floor.push(floor_run(&img)?);
    }
    drop(keep);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let cpu_line = format!(
        "cpu per crust pull (median): crust {:.0} ms, registry {:.0} ms",
        median(cpu),
        median(reg_cpu)
    );
    if only_crust {
        let (med, min, max) = stats(crust);
        println!("crust: median {med:.1} ms, min {min:.1}, max {max:.1}; {cpu_line}");
        return Ok(());
    }
    let (vs_classic, vs_floor) = (
        shared::paired(&crust, &classic),
        shared::paired(&crust, &floor),
    );
    let rows = [
        ("crust", stats(crust)),
        ("skopeo+umoci", stats(classic)),
        ("gunzip floor", stats(floor)),
        ("crust+sync -f", stats(durable)),
    ];
    let classic_ms = rows[1].1.0;
    let floor_ms = rows[2].1.0;
    println!(
        "{:<14} | {:>9} | {:>9} | {:>9} | {:>12} | {:>9}",
        "name", "median ms", "min", "max", "vs skopeo", "vs floor"
    );
    for (n, (med, min, max)) in rows {
        println!(
            "{n:<14} | {med:>9.1} | {min:>9.1} | {max:>9.1} | {:>11.2}x | {:>8.2}x",
            med / classic_ms,
            med / floor_ms
        );
    }
    let crust_ms = rows[0].1.0;
    println!(
        "paired (median of per-run ratios): crust {vs_classic:.2}x skopeo+umoci, {vs_floor:.2}x floor"
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goals: crust <= 0.40x skopeo+umoci ({}), <= 1.50x floor ({})",
        verdict(crust_ms <= 0.40 * classic_ms && vs_classic <= 0.40),
        verdict(crust_ms <= 1.50 * floor_ms && vs_floor <= 1.50)
    );
    println!("{cpu_line}");
    // CRUST_BENCH_ONLY=pull: this table alone.
    if std::env::var("CRUST_BENCH_ONLY").as_deref() == Ok("pull") {
        return Ok(());
    }
    lifecycle::run().await?;
    network::run().await?;
    exec::run().await?;
    Ok(())
}
