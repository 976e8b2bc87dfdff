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
    CreateContainerRequest, ExecSyncRequest, RunPodSandboxRequest, StartContainerRequest,
};

use crate::common::*;
use crate::shared::med_p90;

const RUNS: usize = 200;
const WARMUP: usize = 5;

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
    let t = crate::shared::tools_daemon("exec").await?;
    let res = measure(&t.d, t.tmp.path(), &t.image).await;
    leftovers::teardown(&t.d, &[]);
    drop(t);
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
