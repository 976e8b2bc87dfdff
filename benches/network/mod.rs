//! Pod networking benchmark (part of `make bench`; `CRUST_BENCH_ONLY=network` runs it
//! alone).
//!
//! [`RUNS`] pods created (RunPodSandbox) and stopped (StopPodSandbox) through CRI with the
//! default chain crust ships (bridge + host-local + portmap + loopback, on a throw-away
//! bridge and subnet), next to the floor measured in the same run, interleaved run by
//! run: `ip netns add` plus the same plugins invoked directly in sequence with the same
//! configs and `prevResult` chaining (ADD), then DEL in reverse and `ip netns del`. The
//! pods use the kubelet's default namespaces (pod network/IPC/UTS, container pid), so no
//! pause process is involved. Goal (issue 4): crust within 1.3x of the floor.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crust_proto::cri::{RemovePodSandboxRequest, RunPodSandboxRequest, StopPodSandboxRequest};
use serde_json::Value;

use crate::common::net::{PLUGIN_DIR, TestNet, use_network, wait_network_ready};
use crate::common::*;
use crate::shared::med_p90;

const RUNS: usize = 50;

/// One plugin run the way a shell script would: env, config on stdin, result on stdout.
fn plugin(cmd: &str, conf: &Value, id: &str, netns: &str) -> Result<Value> {
    let t = conf["type"].as_str().context("plugin type")?;
    let mut child = Command::new(Path::new(PLUGIN_DIR).join(t))
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_INFRA_CONTAINER_ID={id}"),
        )
        .env("CNI_PATH", PLUGIN_DIR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run plugin {t}"))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(&serde_json::to_vec(conf)?)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{t} {cmd}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn ip_netns(args: &[&str]) -> Result<()> {
    let st = Command::new("ip")
        .arg("netns")
        .args(args)
        .stdin(Stdio::null())
        .status()
        .context("run ip netns")?;
    if !st.success() {
        bail!("ip netns {args:?}: {st}");
    }
    Ok(())
}

/// Each plugin's config as a runtime builds it from the list.
fn plugin_conf(list: &Value, p: &Value, prev: &Value) -> Value {
    let mut c = p.clone();
    c["name"] = list["name"].clone();
    c["cniVersion"] = list["cniVersion"].clone();
    if !prev.is_null() {
        c["prevResult"] = prev.clone();
    }
    c
}

/// The floor: (create, stop) of one namespace + direct plugin chain; on failure the
/// chain is DELeted and the namespace removed before the error is returned.
fn floor_run(list: &Value, i: usize) -> Result<(Duration, Duration)> {
    let name = format!("crtbench-{}-{i}", std::process::id());
    let id = format!("{:064x}", (std::process::id() as u128) << 32 | i as u128);
    let netns = format!("/var/run/netns/{name}");
    let res = floor_once(list, &name, &id, &netns);
    if res.is_err() {
        if let Some(plugins) = list["plugins"].as_array() {
            for p in plugins.iter().rev() {
                let _ = plugin("DEL", &plugin_conf(list, p, &Value::Null), &id, &netns);
            }
        }
        let _ = ip_netns(&["del", &name]);
    }
    res
}

fn floor_once(list: &Value, name: &str, id: &str, netns: &str) -> Result<(Duration, Duration)> {
    let plugins = list["plugins"].as_array().context("plugins")?;
    let t = Instant::now();
    ip_netns(&["add", name])?;
    let mut prev = Value::Null;
    for p in plugins {
        let r = plugin("ADD", &plugin_conf(list, p, &prev), id, netns)?;
        if !r.is_null() {
            prev = r;
        }
    }
    let create = t.elapsed();
    let t = Instant::now();
    for p in plugins.iter().rev() {
        plugin("DEL", &plugin_conf(list, p, &prev), id, netns)?;
    }
    ip_netns(&["del", name])?;
    Ok((create, t.elapsed()))
}

pub async fn run() -> Result<()> {
    let net = TestNet::new()?;
    let conflist = net.conflist(&[]);
    net.install("10-bench.conflist", &conflist)?;
    let list: Value = serde_json::from_str(&conflist)?;
    let tmp = tempfile::Builder::new()
        .prefix("crust-bench-net-")
        .tempdir()?;
    let mut d = Daemon::start(&tmp.path().join("d"), &registries_conf("127.0.0.1:1", "")).await?;
    use_network(&mut d, &net, &[]).await?;
    wait_network_ready(&d, true, Duration::from_secs(5)).await?;
    let res = measure(&d, tmp.path(), &list).await;
    let _ = leftovers::remove_all_pods(&d).await;
    drop(d);
    let left = net.leftovers();
    if !left.is_empty() {
        eprintln!("network bench left (now removed): {left:?}");
    }
    drop(net);
    res
}

async fn measure(d: &Daemon, base: &Path, list: &Value) -> Result<()> {
    let mut rt = d.runtime().await?;
    let logs = base.join("logs");
    let (mut create, mut stop, mut remove, mut f_create, mut f_stop) =
        (vec![], vec![], vec![], vec![], vec![]);
    // Warm-up (bridge creation, first iptables chains) outside the measurement.
    floor_run(list, RUNS)?;
    for i in 0..RUNS {
        let cfg = pod_config("netbench", &logs);
        let t = Instant::now();
        let pod = rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(cfg),
                runtime_handler: String::new(),
            })
            .await
            .context("RunPodSandbox")?
            .into_inner()
            .pod_sandbox_id;
        create.push(t.elapsed());
        let t = Instant::now();
        rt.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .context("StopPodSandbox")?;
        stop.push(t.elapsed());
        let t = Instant::now();
        rt.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .context("RemovePodSandbox")?;
        remove.push(t.elapsed());
        let (c, s) = floor_run(list, i)?;
        f_create.push(c);
        f_stop.push(s);
    }
    let rows = [
        ("pod create (CNI)", med_p90(create)),
        ("floor create", med_p90(f_create)),
        ("pod stop (CNI)", med_p90(stop)),
        ("floor stop", med_p90(f_stop)),
        ("pod remove", med_p90(remove)),
    ];
    println!();
    println!(
        "network: {RUNS} runs, chain bridge+host-local+portmap+loopback ({PLUGIN_DIR}); floor = ip netns add/del + the same plugins run directly"
    );
    println!("{:<18} | {:>9} | {:>9}", "operation", "median ms", "p90 ms");
    for (n, (med, p90)) in &rows {
        println!("{n:<18} | {med:>9.2} | {p90:>9.2}");
    }
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let (c, fc, s, fs) = (rows[0].1.0, rows[1].1.0, rows[2].1.0, rows[3].1.0);
    println!(
        "goals: pod create <= 1.3x floor ({:.2}x, {}), pod stop <= 1.3x floor ({:.2}x, {})",
        c / fc,
        verdict(c <= 1.3 * fc),
        s / fs,
        verdict(s <= 1.3 * fs),
    );
    Ok(())
}
