//! End-to-end tests of pod sandboxes through the real CRI socket: lifecycle (run, status,
//! list with filters, idempotent stop, remove), duplicate names, the pod's files
//! (hostname, /etc/hosts, resolv.conf from DNSConfig), namespaces shared by the pod's
//! containers (net/ipc/uts pinned by the sandbox, PID with NamespaceMode POD, host
//! network) and RuntimeClass handlers (runsc; unknown handler).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use common::*;
use crust_proto::cri::{
    ContainerState, ContainerStatusRequest, ListPodSandboxRequest, NamespaceMode, PodSandboxFilter,
    PodSandboxState, PodSandboxStateValue, PodSandboxStatusRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StopPodSandboxRequest,
};
use tonic::Code;

async fn pod_status(w: &World, id: &str) -> Result<crust_proto::cri::PodSandboxStatus> {
    w.rt()
        .await?
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        })
        .await
        .with_context(|| format!("PodSandboxStatus {id}"))?
        .into_inner()
        .status
        .context("no status")
}

async fn list_ids(w: &World, filter: Option<PodSandboxFilter>) -> Result<Vec<String>> {
    let mut ids: Vec<String> = w
        .rt()
        .await?
        .list_pod_sandbox(ListPodSandboxRequest { filter })
        .await?
        .into_inner()
        .items
        .into_iter()
        .map(|p| p.id)
        .collect();
    ids.sort();
    Ok(ids)
}

fn state_filter(s: PodSandboxState) -> Option<PodSandboxFilter> {
    Some(PodSandboxFilter {
        state: Some(PodSandboxStateValue { state: s as i32 }),
        ..Default::default()
    })
}

async fn stop_pod(w: &World, id: &str) -> Result<(), tonic::Status> {
    let mut rt = w
        .rt()
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .map(|_| ())
}

async fn remove_pod(w: &World, id: &str) -> Result<(), tonic::Status> {
    let mut rt = w
        .rt()
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_lifecycle_status_list_filters_stop_remove() -> Result<()> {
    let w = World::new().await?;
    let before = now_ns();
    let mut a_cfg = w.pod_config("pod-a");
    a_cfg.labels.insert("app".into(), "a".into());
    a_cfg.annotations.insert("note".into(), "first".into());
    let mut b_cfg = w.pod_config("pod-b");
    b_cfg.labels.insert("app".into(), "b".into());
    let a = w.run_pod(&a_cfg).await?;
    let b = w.run_pod(&b_cfg).await?;
    assert_ne!(a, b);

    let st = pod_status(&w, &a).await?;
    assert_eq!(st.id, a);
    assert_eq!(st.metadata, a_cfg.metadata);
    assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
    assert!(
        st.created_at >= before && st.created_at <= now_ns(),
        "created_at {} not in [{before}, now]",
        st.created_at
    );
    assert_eq!(st.labels, a_cfg.labels);
    assert_eq!(
        st.annotations.get("note").map(String::as_str),
        Some("first")
    );
    assert!(
        st.runtime_handler.is_empty() || st.runtime_handler == "runc",
        "default handler: {:?}",
        st.runtime_handler
    );

    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(list_ids(&w, None).await?, both);
    let by_id = Some(PodSandboxFilter {
        id: a.clone(),
        ..Default::default()
    });
    assert_eq!(list_ids(&w, by_id).await?, vec![a.clone()]);
    let by_label = Some(PodSandboxFilter {
        label_selector: HashMap::from([("app".to_string(), "b".to_string())]),
        ..Default::default()
    });
    assert_eq!(list_ids(&w, by_label).await?, vec![b.clone()]);
    let no_label = Some(PodSandboxFilter {
        label_selector: HashMap::from([("app".to_string(), "zzz".to_string())]),
        ..Default::default()
    });
    assert!(list_ids(&w, no_label).await?.is_empty());
    assert_eq!(
        list_ids(&w, state_filter(PodSandboxState::SandboxReady)).await?,
        both
    );
    assert!(
        list_ids(&w, state_filter(PodSandboxState::SandboxNotready))
            .await?
            .is_empty()
    );

    // A running container in pod a: stopping the pod stops it.
    let c = w
        .run(&a, &w.ctr_config("sleeper", &["sleep", "3600"]))
        .await?;
    w.wait_state(
        &c,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;
    stop_pod(&w, &a).await?;
    stop_pod(&w, &a)
        .await
        .context("second StopPodSandbox must succeed")?;
    assert_eq!(
        pod_status(&w, &a).await?.state,
        PodSandboxState::SandboxNotready as i32
    );
    assert_eq!(
        w.status(&c).await?.state,
        ContainerState::ContainerExited as i32
    );
    assert_eq!(
        list_ids(&w, state_filter(PodSandboxState::SandboxNotready)).await?,
        vec![a.clone()]
    );
    assert_eq!(
        list_ids(&w, state_filter(PodSandboxState::SandboxReady)).await?,
        vec![b.clone()]
    );

    // Remove: the pod and its container are gone; removing again is fine.
    remove_pod(&w, &a).await?;
    let mut rt = w.rt().await?;
    let err = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: a.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let err = rt
        .container_status(ContainerStatusRequest {
            container_id: c.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    remove_pod(&w, &a)
        .await
        .context("second RemovePodSandbox must succeed")?;
    if let Err(e) = stop_pod(&w, &a).await {
        assert_eq!(e.code(), Code::NotFound, "stop of a removed pod: {e}");
    }
    assert_eq!(list_ids(&w, None).await?, vec![b.clone()]);

    // Remove a READY pod with a running container directly (force).
    let c2 = w
        .run(&b, &w.ctr_config("sleeper", &["sleep", "3600"]))
        .await?;
    w.wait_state(
        &c2,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;
    remove_pod(&w, &b)
        .await
        .context("RemovePodSandbox of a ready pod")?;
    assert!(list_ids(&w, None).await?.is_empty());

    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_pod_name_is_already_exists() -> Result<()> {
    let w = World::new().await?;
    let cfg = w.pod_config("dup");
    let id = w.run_pod(&cfg).await?;
    let err = w
        .rt()
        .await?
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(cfg.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");
    assert!(
        err.message().contains(&id[..12.min(id.len())]),
        "must name the holder {id}: {err}"
    );
    // Another attempt number is a different pod.
    let mut retry = cfg.clone();
    retry.metadata.as_mut().unwrap().attempt = 1;
    let id2 = w.run_pod(&retry).await?;
    assert_ne!(id, id2);
    // After removal the name is free again.
    stop_pod(&w, &id).await?;
    remove_pod(&w, &id).await?;
    w.run_pod(&cfg)
        .await
        .context("name must be free after removal")?;
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_hostname_hosts_and_resolv_conf() -> Result<()> {
    let w = World::new().await?;
    let mut cfg = w.pod_config("files");
    cfg.hostname = "web-7f9c".into();
    cfg.dns_config = Some(dns_config());
    let pod = w.run_pod(&cfg).await?;
    let script = "echo host=$(hostname); echo etc=$(cat /etc/hostname); \
                  echo ---hosts; cat /etc/hosts; echo ---resolv; cat /etc/resolv.conf";
    let (st, out) = w
        .run_to_exit(&pod, &w.ctr_config("files", &["sh", "-c", script]))
        .await?;
    assert_eq!(st.exit_code, 0, "{out}");
    assert!(out.contains("host=web-7f9c"), "{out}");
    assert!(out.contains("etc=web-7f9c"), "{out}");
    let hosts = out.split("---hosts").nth(1).unwrap_or_default();
    assert!(
        hosts.contains("127.0.0.1") && hosts.contains("localhost"),
        "{hosts}"
    );
    let resolv = out.split("---resolv").nth(1).unwrap_or_default();
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(resolv.contains("nameserver 10.96.0.11"), "{resolv}");
    assert!(
        resolv.contains("search e2e.svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("options ndots:5"), "{resolv}");

    // Without DNSConfig the host's resolv.conf is used.
    let cfg2 = w.pod_config("files-host-dns");
    let pod2 = w.run_pod(&cfg2).await?;
    let (_, out2) = w
        .run_to_exit(&pod2, &w.ctr_config("resolv", &["cat", "/etc/resolv.conf"]))
        .await?;
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for l in host.lines().filter(|l| l.starts_with("nameserver")) {
        assert!(out2.contains(l), "host {l:?} missing in {out2:?}");
    }
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

const NS_SCRIPT: &str = "for n in net ipc uts pid; do echo $n=$(readlink /proc/self/ns/$n); done";

fn ns_map(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_pod_share_net_ipc_uts() -> Result<()> {
    let w = World::new().await?;
    let p1 = w.run_pod(&w.pod_config("ns1")).await?;
    let p2 = w.run_pod(&w.pod_config("ns2")).await?;
    // `a` stays alive while `b` runs: a freed namespace's inode number can be reused, so
    // "different pid namespace" is only meaningful between live namespaces.
    let p1_cfg = w.pods.lock().unwrap().get(&p1).cloned().unwrap();
    let a_script = format!("{NS_SCRIPT}; echo done; exec sleep 3600");
    let a_cfg = w.ctr_config("a", &["sh", "-c", &a_script]);
    w.run(&p1, &a_cfg).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let a = loop {
        let out = w.output(&p1_cfg, &a_cfg).unwrap_or_default();
        if out.contains("done") {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "a: {out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, b) = w
        .run_to_exit(&p1, &w.ctr_config("b", &["sh", "-c", NS_SCRIPT]))
        .await?;
    let (_, c) = w
        .run_to_exit(&p2, &w.ctr_config("c", &["sh", "-c", NS_SCRIPT]))
        .await?;
    let (a, b, c) = (ns_map(&a), ns_map(&b), ns_map(&c));
    for kind in ["net", "ipc", "uts"] {
        let va = a.get(kind).with_context(|| format!("{kind} in {a:?}"))?;
        assert!(va.starts_with(&format!("{kind}:[")), "{va}");
        assert_eq!(Some(va), b.get(kind), "{kind}: same pod must share");
        assert_ne!(Some(va), c.get(kind), "{kind}: other pod must differ");
        assert_ne!(*va, host_ns(kind), "{kind}: must not be the host's");
    }
    // NamespaceMode CONTAINER for pid: each container has its own.
    assert_ne!(a.get("pid"), b.get("pid"));
    assert_ne!(a.get("pid").cloned().unwrap_or_default(), host_ns("pid"));
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_pid_namespace_lets_containers_see_each_other() -> Result<()> {
    let w = World::new().await?;
    let mut cfg = w.pod_config("pidns");
    pod_sc(&mut cfg).namespace_options = Some(ns_options(
        NamespaceMode::Pod,
        NamespaceMode::Pod,
        NamespaceMode::Pod,
    ));
    let pod = w.run_pod(&cfg).await?;
    let sleeper = w
        .run(&pod, &w.ctr_config("sleeper", &["sleep", "3600"]))
        .await?;
    w.wait_state(
        &sleeper,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;
    let script = "echo self=$$; for p in /proc/[0-9]*; do echo \"$p $(tr '\\0' ' ' < $p/cmdline)\"; done; echo pid=$(readlink /proc/self/ns/pid)";
    let (st, out) = w
        .run_to_exit(&pod, &w.ctr_config("ps", &["sh", "-c", script]))
        .await?;
    assert_eq!(st.exit_code, 0, "{out}");
    assert!(
        out.contains("sleep 3600"),
        "must see the other container's process: {out}"
    );
    assert!(
        !out.lines().any(|l| l == "self=1"),
        "pid 1 belongs to the pod, not to this container: {out}"
    );
    assert_ne!(
        ns_map(&out).get("pid").cloned().unwrap_or_default(),
        host_ns("pid")
    );

    // Contrast: a pod with per-container PID namespaces does not see the sleeper.
    let pod2 = w.run_pod(&w.pod_config("pidns-ctr")).await?;
    let s2 = w
        .run(&pod2, &w.ctr_config("sleeper", &["sleep", "3601"]))
        .await?;
    w.wait_state(
        &s2,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;
    let (_, out2) = w
        .run_to_exit(&pod2, &w.ctr_config("ps", &["sh", "-c", script]))
        .await?;
    assert!(!out2.contains("sleep 3601"), "{out2}");
    assert!(
        out2.lines().any(|l| l == "self=1"),
        "own pid ns: the shell is pid 1: {out2}"
    );
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_pod_uses_the_host_netns() -> Result<()> {
    let w = World::new().await?;
    let mut cfg = w.pod_config("hostnet");
    pod_sc(&mut cfg).namespace_options = Some(ns_options(
        NamespaceMode::Node,
        NamespaceMode::Container,
        NamespaceMode::Pod,
    ));
    let pod = w.run_pod(&cfg).await?;
    let (_, out) = w
        .run_to_exit(&pod, &w.ctr_config("n", &["sh", "-c", NS_SCRIPT]))
        .await?;
    let m = ns_map(&out);
    assert_eq!(
        m.get("net").cloned().unwrap_or_default(),
        host_ns("net"),
        "{out}"
    );
    assert_ne!(
        m.get("ipc").cloned().unwrap_or_default(),
        host_ns("ipc"),
        "{out}"
    );
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

/// Run the same pod and container with `handler`; returns the container's output.
async fn pod_with_handler(w: &World, handler: &str) -> Result<String> {
    let cfg = w.pod_config(&format!("h-{handler}"));
    let pod = w.run_pod_with(&cfg, handler).await?;
    assert_eq!(pod_status(w, &pod).await?.runtime_handler, handler);
    let script = "echo hello-from-$0; cat /proc/version; id";
    let (st, out) = w
        .run_to_exit(&pod, &w.ctr_config("h", &["sh", "-c", script, handler]))
        .await?;
    assert_eq!(st.exit_code, 0, "{out}");
    assert!(out.contains(&format!("hello-from-{handler}")), "{out}");
    assert!(out.contains("uid=0(root)"), "{out}");
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_pod_runs_with_runc_and_runsc() -> Result<()> {
    let mut w = World::new().await?;
    let runc = pod_with_handler(&w, "runc").await?;
    if !runsc_available() {
        eprintln!("skipping the runsc half: runsc is not installed (apt-get install runsc)");
        let left = w.cleanup().await?;
        assert!(left.is_empty(), "leftovers: {left:#?}");
        return Ok(());
    }
    let runsc = match pod_with_handler(&w, "runsc").await {
        Ok(out) => out,
        Err(e) if format!("{e:#}").contains("root network namespace") => {
            // gVisor releases before 2023 decide "root netns" by the existence of
            // /proc/sys/net/core/rmem_default, which Linux 6.x has in every netns. Use
            // gVisor's loopback-only netstack instead (no CNI yet anyway).
            eprintln!(
                "runsc cannot set up networking from the pod netns on this kernel ({e:#}); \
                 retrying with runtime_args --network=none"
            );
            std::fs::write(
                w.env
                    .daemon
                    .base
                    .join("crust.conf.d/50-runsc-network-none.toml"),
                "[crust.runtime.runtimes.runsc]\nruntime_args = [\"--platform=ptrace\", \"--network=none\"]\n",
            )?;
            w.env.daemon.stop();
            w.env.daemon.spawn().await?;
            pod_with_handler(&w, "runsc").await?
        }
        Err(e) => return Err(e),
    };
    // gVisor has its own kernel: /proc/version differs from the host's.
    assert_ne!(
        runc.lines().nth(1),
        runsc.lines().nth(1),
        "runsc must not show the host kernel"
    );
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runtime_handler_is_invalid_argument() -> Result<()> {
    let w = World::new().await?;
    let err = w
        .rt()
        .await?
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(w.pod_config("nohandler")),
            runtime_handler: "no-such-runtime".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("no-such-runtime"), "{err}");
    assert!(
        err.message().contains("runc"),
        "must list the known handlers: {err}"
    );
    assert!(list_ids(&w, None).await?.is_empty());
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}
