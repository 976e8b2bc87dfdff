//! End-to-end tests of what must survive and what must not: kill -9 the daemon while
//! containers run (one exits while the daemon is down) and restart it on the same root
//! and runroot; and 100 create/start/stop/remove cycles that must leave no mount, pinned
//! namespace, process, cgroup or file behind; and StopContainer using the image's StopSignal.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use crust_proto::cri::{
    ContainerState, ListPodSandboxRequest, PodSandboxState, PodSandboxStatusRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StopPodSandboxRequest,
};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_survive_a_daemon_kill_9() -> Result<()> {
    let mut w = World::new().await?;
    let pod_cfg = w.pod_config("restart");
    let pod = w.run_pod(&pod_cfg).await?;
    let long_cfg = w.ctr_config("long", &["sh", "-c", "echo started; exec sleep 3600"]);
    let long = w.run(&pod, &long_cfg).await?;
    let short = w
        .run(
            &pod,
            &w.ctr_config("short", &["sh", "-c", "sleep 2; exit 7"]),
        )
        .await?;
    let done = w
        .run(
            &pod,
            &w.ctr_config("done", &["sh", "-c", "sleep 0.5; exit 3"]),
        )
        .await?;
    let created = w
        .create(&pod, &w.ctr_config("created", &["sleep", "0.5"]))
        .await?;
    let done_before = w.wait_exit(&done).await?;
    let long_before = w
        .wait_state(
            &long,
            ContainerState::ContainerRunning,
            Duration::from_secs(10),
        )
        .await?;
    w.wait_state(
        &short,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;

    let killed_at = now_ns();
    w.env.daemon.kill9();
    // `short` exits while no daemon is running; its monitor records the exit.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let restarted_at = now_ns();
    w.env
        .daemon
        .spawn()
        .await
        .context("restart on the same root")?;

    let mut rt = w.rt().await?;
    let pods = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await?
        .into_inner()
        .items;
    assert_eq!(pods.len(), 1, "{pods:?}");
    let pst = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await?
        .into_inner()
        .status
        .context("pod status")?;
    assert_eq!(pst.state, PodSandboxState::SandboxReady as i32, "{pst:?}");
    assert_eq!(pst.metadata, pod_cfg.metadata);

    let st = w.status(&long).await?;
    assert_eq!(st.state, ContainerState::ContainerRunning as i32, "{st:?}");
    assert_eq!(st.created_at, long_before.created_at);
    assert_eq!(st.started_at, long_before.started_at);

    let st = w.status(&short).await?;
    assert_eq!(st.state, ContainerState::ContainerExited as i32, "{st:?}");
    assert_eq!((st.exit_code, st.reason.as_str()), (7, "Error"), "{st:?}");
    assert!(
        st.finished_at > killed_at && st.finished_at < restarted_at,
        "finished_at {} must be the real exit time, in ({killed_at}, {restarted_at})",
        st.finished_at
    );

    let st = w.status(&done).await?;
    assert_eq!(
        (st.state, st.exit_code),
        (ContainerState::ContainerExited as i32, 3)
    );
    assert_eq!(st.finished_at, done_before.finished_at);
    assert_eq!(
        w.status(&created).await?.state,
        ContainerState::ContainerCreated as i32
    );

    // The restored daemon still controls everything: the created one starts, the long
    // one stops, the pod's name is still taken, new containers work.
    w.start(&created).await?;
    assert_eq!(w.wait_exit(&created).await?.exit_code, 0);
    let t = Instant::now();
    w.stop(&long, 0).await?;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop after restart took {:?}",
        t.elapsed()
    );
    assert_eq!(
        w.status(&long).await?.state,
        ContainerState::ContainerExited as i32
    );
    let out = w.output(&pod_cfg, &long_cfg)?;
    assert!(out.contains("started"), "{out}");
    let e = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_cfg.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e}");
    let (st, out) = w
        .run_to_exit(
            &pod,
            &w.ctr_config("after", &["sh", "-c", "echo after-restart; sleep 0.5"]),
        )
        .await?;
    assert_eq!(st.exit_code, 0);
    assert!(out.contains("after-restart"), "{out}");

    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_cycles_leave_nothing_behind() -> Result<()> {
    let w = World::new().await?;
    let mut pod = String::new();
    let mut pod_cfg = w.pod_config("cycles");
    // `ready` is printed once the trap is installed: a SIGTERM that arrived earlier would
    // hit a shell (pid 1) without a handler, be ignored, and the stop would end in SIGKILL.
    let script = "trap 'exit 0' TERM; echo ready; sleep 3600 & wait";
    let t = Instant::now();
    for i in 0..100 {
        // A new pod every 25 cycles, so pinned namespaces and pod files are cycled too.
        if i % 25 == 0 {
            let mut rt = w.rt().await?;
            if !pod.is_empty() {
                rt.stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: pod.clone(),
                })
                .await?;
                rt.remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: pod.clone(),
                })
                .await?;
            }
            pod_cfg = w.pod_config("cycles");
            pod = w.run_pod(&pod_cfg).await?;
        }
        let cfg = w.ctr_config("cycle", &["sh", "-c", script]);
        let id = w
            .run(&pod, &cfg)
            .await
            .with_context(|| format!("cycle {i}"))?;
        w.wait_state(
            &id,
            ContainerState::ContainerRunning,
            Duration::from_secs(10),
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !w
            .output(&pod_cfg, &cfg)
            .unwrap_or_default()
            .contains("ready")
        {
            assert!(Instant::now() < deadline, "cycle {i}: never became ready");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        w.stop(&id, 10)
            .await
            .with_context(|| format!("cycle {i}"))?;
        let st = w.status(&id).await?;
        assert_eq!(st.exit_code, 0, "cycle {i}: SIGTERM is trapped: {st:?}");
        w.remove(&id).await.with_context(|| format!("cycle {i}"))?;
    }
    eprintln!("100 cycles took {:?}", t.elapsed());
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers after 100 cycles: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_uses_the_image_stop_signal() -> Result<()> {
    let w = World::new().await?;
    let mut img = tools_image("stopsignal")?;
    img = build_image(
        img.layers,
        &ImageOpts {
            label: Some("stopsignal".into()),
            stop_signal: Some("SIGUSR1".into()),
            ..Default::default()
        },
    )?;
    push_image(&w.env.registry, "e2e/stopsig", "1", &img)?;
    let image = w.env.r("e2e/stopsig:1");
    w.env
        .daemon
        .images()
        .await?
        .pull_image(crust_proto::cri::PullImageRequest {
            image: Some(crust_proto::cri::ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    let pod_cfg = w.pod_config("stopsig");
    let pod = w.run_pod(&pod_cfg).await?;
    let script = "trap 'echo got-usr1; exit 0' USR1; trap 'echo got-term; exit 1' TERM; \
                  echo ready; sleep 3600 & wait";
    let cfg = ctr_config("stopsig", &image, &["sh", "-c", script]);
    let id = w.run(&pod, &cfg).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w
        .output(&pod_cfg, &cfg)
        .unwrap_or_default()
        .contains("ready")
    {
        assert!(Instant::now() < deadline, "container never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.stop(&id, 10).await?;
    let st = w.status(&id).await?;
    let out = w.output(&pod_cfg, &cfg)?;
    assert!(
        out.contains("got-usr1"),
        "the image's StopSignal must be sent: {out}"
    );
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (0, "Completed"),
        "{st:?}"
    );
    w.remove(&id).await?;
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_daemon_restart_leaves_containers_running() -> Result<()> {
    let mut w = World::new().await?;
    let pod = w.run_pod(&w.pod_config("sigterm")).await?;
    let id = w
        .run(&pod, &w.ctr_config("long", &["sleep", "3600"]))
        .await?;
    let before = w
        .wait_state(
            &id,
            ContainerState::ContainerRunning,
            Duration::from_secs(10),
        )
        .await?;
    // SIGTERM: the daemon shuts down; containers and their monitors must not.
    w.env.daemon.stop();
    w.env
        .daemon
        .spawn()
        .await
        .context("restart after SIGTERM")?;
    let st = w.status(&id).await?;
    assert_eq!(st.state, ContainerState::ContainerRunning as i32, "{st:?}");
    assert_eq!(st.started_at, before.started_at);
    w.stop(&id, 0).await?;
    let st = w.status(&id).await?;
    assert_eq!((st.exit_code, st.reason.as_str()), (137, "Error"), "{st:?}");
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}
