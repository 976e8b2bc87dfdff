//! ExecSync benchmark (part of `make bench`; `CRUST_BENCH_ONLY=exec` runs it alone).
//!
//! Through the CRI socket of a real daemon (release build, runc): [`RUNS`] `ExecSync`
//! calls of `true` in one running container, median and p90, next to bare
//! `runc --root <crust's runc root> exec <same container> true` in the same run, calls
//! interleaved so both see the same machine noise. The bare call reads runc's stdout and
//! stderr like crust does. Goal (issue 5): ExecSync within 1.3x of bare runc exec.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crust_proto::cri::{
    CreateContainerRequest, ExecSyncRequest, ImageSpec, PullImageRequest, RunPodSandboxRequest,
    StartContainerRequest,
};

use crate::common::*;

const RUNS: usize = 200;
const WARMUP: usize = 5;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, p90) in ms.
fn med_p90(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let p90 = ((v.len() * 9) / 10).min(v.len() - 1);
    (ms(v[v.len() / 2]), ms(v[p90]))
}

/// One bare `runc exec` of `true`, output collected like crust collects it.
fn bare_exec(root: &Path, id: &str) -> Result<Duration> {
    let t = Instant::now();
    let out = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["exec", id, "true"])
        .stdin(Stdio::null())
        .output()
        .context("run runc exec")?;
    let el = t.elapsed();
    if !out.status.success() {
        bail!(
            "runc exec: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(el)
}

pub async fn run() -> Result<()> {
    let reg = Registry::start()?;
    let img = tools_image("bench-exec")?;
    push_image(&reg, "bench/tools", "1", &img)?;
    let tmp = tempfile::Builder::new()
        .prefix("crust-bench-exec-")
        .tempdir()?;
    let d = Daemon::start(&tmp.path().join("d"), &registries_conf(&reg.host, "")).await?;
    let image = format!("{}/bench/tools:1", reg.host);
    d.images()
        .await?
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .context("pull bench image")?;
    let res = measure(&d, tmp.path(), &image).await;
    leftovers::teardown(&d, &[]);
    drop(d);
    res
}

async fn measure(d: &Daemon, base: &Path, image: &str) -> Result<()> {
    let mut rt = d.runtime().await?;
    let pcfg = pod_config("bench-exec", &base.join("logs"));
    let pod = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pcfg.clone()),
            runtime_handler: String::new(),
        })
        .await
        .context("RunPodSandbox")?
        .into_inner()
        .pod_sandbox_id;
    let mut ccfg = ctr_config("bench-exec", image, &["sleep", "3600"]);
    sc(&mut ccfg).namespace_options = pcfg
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone());
    let id = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod,
            config: Some(ccfg),
            sandbox_config: Some(pcfg),
        })
        .await
        .context("CreateContainer")?
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .context("StartContainer")?;
    let root = d.runroot().join("runtimes/runc");
    let req = || ExecSyncRequest {
        container_id: id.clone(),
        cmd: vec!["true".into()],
        timeout: 10,
    };
    let (mut crust, mut bare) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for i in 0..WARMUP + RUNS {
        let t = Instant::now();
        let r = rt.exec_sync(req()).await.context("ExecSync")?.into_inner();
        let el = t.elapsed();
        if r.exit_code != 0 {
            bail!("ExecSync true: exit code {}: {r:?}", r.exit_code);
        }
        let b = bare_exec(&root, &id)?;
        if i >= WARMUP {
            crust.push(el);
            bare.push(b);
        }
    }
    let (c, b) = (med_p90(crust), med_p90(bare));
    println!();
    println!(
        "exec: {RUNS} ExecSync calls of `true` in one running runc container, interleaved with bare `runc exec`"
    );
    println!("{:<18} | {:>9} | {:>9}", "operation", "median ms", "p90 ms");
    println!("{:<18} | {:>9.2} | {:>9.2}", "ExecSync true", c.0, c.1);
    println!("{:<18} | {:>9.2} | {:>9.2}", "bare runc exec", b.0, b.1);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goals: ExecSync <= 1.3x bare runc exec ({:.2}x median, {:.2}x p90, {})",
        c.0 / b.0,
        c.1 / b.1,
        verdict(c.0 <= 1.3 * b.0)
    );
    Ok(())
}
