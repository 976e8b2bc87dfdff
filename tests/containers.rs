//! End-to-end tests of containers through the real CRI socket against real runc:
//! create/start/stop/remove with times, exit codes 0/1/137 and reasons
//! (Completed/Error/OOMKilled), list filters, logs in the exact CRI format and
//! ReopenContainerLog, stats, UpdateContainerResources and GetContainerEvents, bad input
//! codes, and images in use.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use crust_proto::cri::{
    ContainerEventType, ContainerFilter, ContainerState, ContainerStateValue,
    ContainerStatsRequest, ContainerStatusRequest, CreateContainerRequest, GetEventsRequest,
    ImageSpec, LinuxContainerResources, ListContainerStatsRequest, ListContainersRequest, Mount,
    PodSandboxStatsRequest, PodSandboxStatusRequest, RemoveImageRequest, ReopenContainerLogRequest,
    RunPodSandboxRequest, StartContainerRequest, UpdateContainerResourcesRequest,
};
use tonic::Code;

async fn list_ctr_ids(w: &World, filter: ContainerFilter) -> Result<Vec<String>> {
    let mut ids: Vec<String> = w
        .rt()
        .await?
        .list_containers(ListContainersRequest {
            filter: Some(filter),
        })
        .await?
        .into_inner()
        .containers
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    Ok(ids)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_lifecycle_times_exit_codes_and_filters() -> Result<()> {
    let w = World::new().await?;
    let pod_cfg = w.pod_config("life");
    let pod = w.run_pod(&pod_cfg).await?;

    // Exit 0: Completed, with ordered times.
    let before = now_ns();
    let ok_cfg = w.ctr_config("ok", &["sh", "-c", "exit 0"]);
    let ok = w.create(&pod, &ok_cfg).await?;
    let st = w.status(&ok).await?;
    assert_eq!(st.state, ContainerState::ContainerCreated as i32);
    assert!(
        st.created_at >= before && st.created_at <= now_ns(),
        "{st:?}"
    );
    assert_eq!((st.started_at, st.finished_at), (0, 0), "{st:?}");
    assert_eq!(st.metadata, ok_cfg.metadata);
    assert_eq!(
        st.image.as_ref().map(|i| i.image.as_str()),
        Some(w.image.as_str())
    );
    assert!(
        st.image_ref
            .contains(w.image_id.trim_start_matches("sha256:"))
            || st.image_ref.contains("@sha256:"),
        "image_ref {:?}",
        st.image_ref
    );
    assert_eq!(
        std::path::PathBuf::from(&st.log_path),
        w.log_file(&pod_cfg, &ok_cfg),
        "log_path"
    );
    assert_eq!(st.labels, ok_cfg.labels);
    w.start(&ok).await?;
    let st = w.wait_exit(&ok).await?;
    assert_eq!(st.exit_code, 0);
    assert_eq!(st.reason, "Completed");
    assert!(st.started_at >= st.created_at, "{st:?}");
    assert!(st.finished_at >= st.started_at, "{st:?}");
    assert!(st.finished_at <= now_ns(), "{st:?}");

    // Exit 1: Error.
    let fail = w
        .run(&pod, &w.ctr_config("fail", &["sh", "-c", "exit 1"]))
        .await?;
    let st = w.wait_exit(&fail).await?;
    assert_eq!((st.exit_code, st.reason.as_str()), (1, "Error"), "{st:?}");

    // 137: pid 1 ignores SIGTERM, StopContainer escalates to SIGKILL after the timeout.
    let sleeper = w
        .run(&pod, &w.ctr_config("sleep", &["sleep", "3600"]))
        .await?;
    let st = w
        .wait_state(
            &sleeper,
            ContainerState::ContainerRunning,
            Duration::from_secs(10),
        )
        .await?;
    assert!(st.started_at > 0 && st.finished_at == 0, "{st:?}");
    let t = Instant::now();
    w.stop(&sleeper, 1).await?;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "stop with timeout 1 took {took:?}"
    );
    let st = w.status(&sleeper).await?;
    assert_eq!(st.state, ContainerState::ContainerExited as i32);
    assert_eq!((st.exit_code, st.reason.as_str()), (137, "Error"), "{st:?}");
    w.stop(&sleeper, 1)
        .await
        .context("StopContainer is idempotent")?;

    // OOMKilled with a tiny memory limit.
    let mut oom_cfg = w.ctr_config("oom", &["tail", "/dev/zero"]);
    oom_cfg.linux.as_mut().unwrap().resources = Some(LinuxContainerResources {
        memory_limit_in_bytes: 8 << 20,
        ..Default::default()
    });
    let oom = w.run(&pod, &oom_cfg).await?;
    let st = w.wait_exit(&oom).await?;
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (137, "OOMKilled"),
        "{st:?}"
    );

    // A running one for the filters.
    let mut run_cfg = w.ctr_config("run", &["sleep", "3600"]);
    run_cfg.labels.insert("tier".into(), "web".into());
    let running = w.run(&pod, &run_cfg).await?;
    w.wait_state(
        &running,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;
    let all = sorted(vec![
        ok.clone(),
        fail.clone(),
        sleeper.clone(),
        oom.clone(),
        running.clone(),
    ]);
    let state = |s: ContainerState| ContainerFilter {
        state: Some(ContainerStateValue { state: s as i32 }),
        ..Default::default()
    };
    assert_eq!(list_ctr_ids(&w, ContainerFilter::default()).await?, all);
    let by_pod = ContainerFilter {
        pod_sandbox_id: pod.clone(),
        ..Default::default()
    };
    assert_eq!(list_ctr_ids(&w, by_pod).await?, all);
    let other_pod = ContainerFilter {
        pod_sandbox_id: "0000000000000000".into(),
        ..Default::default()
    };
    assert!(list_ctr_ids(&w, other_pod).await?.is_empty());
    assert_eq!(
        list_ctr_ids(&w, state(ContainerState::ContainerRunning)).await?,
        vec![running.clone()]
    );
    assert_eq!(
        list_ctr_ids(&w, state(ContainerState::ContainerExited))
            .await?
            .len(),
        4
    );
    let by_label = ContainerFilter {
        label_selector: HashMap::from([("tier".to_string(), "web".to_string())]),
        ..Default::default()
    };
    assert_eq!(list_ctr_ids(&w, by_label).await?, vec![running.clone()]);
    let by_id = ContainerFilter {
        id: fail.clone(),
        ..Default::default()
    };
    assert_eq!(list_ctr_ids(&w, by_id).await?, vec![fail.clone()]);

    // PodSandboxStatus does not change with containers; removal is idempotent.
    w.stop(&running, 0).await?;
    for id in &all {
        w.remove(id).await?;
    }
    w.remove(&ok)
        .await
        .context("RemoveContainer is idempotent")?;
    let err = w
        .rt()
        .await?
        .container_status(ContainerStatusRequest {
            container_id: ok.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert!(
        list_ctr_ids(&w, ContainerFilter::default())
            .await?
            .is_empty()
    );
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_in_cri_format_and_reopen_works() -> Result<()> {
    let w = World::new().await?;
    let pod_cfg = w.pod_config("logs");
    let pod = w.run_pod(&pod_cfg).await?;
    let script = "echo out1; echo err1 >&2; head -c 10000 /dev/zero | tr '\\0' a; echo; \
                  echo out2; printf tail-no-newline";
    let cfg = w.ctr_config("logs", &["sh", "-c", script]);
    let id = w.run(&pod, &cfg).await?;
    w.wait_exit(&id).await?;
    // parse_log checks every line against
    // ^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) .
    let recs = w.log_records(&pod_cfg, &cfg)?;
    let has = |stream: &str, tag: &str, content: &str| {
        recs.iter()
            .any(|r| r.stream == stream && r.tag == tag && r.content == content)
    };
    assert!(has("stdout", "F", "out1"), "{recs:#?}");
    assert!(has("stderr", "F", "err1"), "{recs:#?}");
    assert!(has("stdout", "F", "out2"), "{recs:#?}");
    assert!(has("stdout", "F", "tail-no-newline"), "{recs:#?}");
    assert!(
        recs.iter().any(|r| r.tag == "P" && r.stream == "stdout"),
        "a 10000-byte line must be split into P records: {:?}",
        recs.iter()
            .map(|r| (&r.tag, r.content.len()))
            .collect::<Vec<_>>()
    );
    let lines = log_lines(&recs);
    assert!(
        lines
            .iter()
            .any(|(s, l)| s == "stdout" && *l == "a".repeat(10000)),
        "joined P+F records must give back the long line"
    );
    let mut times: Vec<&str> = recs.iter().map(|r| r.time.as_str()).collect();
    let orig = times.clone();
    times.sort();
    assert_eq!(times, orig, "timestamps must not go backwards");

    // ReopenContainerLog: rotate the file away; the monitor creates a new one.
    let tcfg = w.ctr_config(
        "ticker",
        &["sh", "-c", "while true; do echo tick; sleep 1; done"],
    );
    let tid = w.run(&pod, &tcfg).await?;
    let path = w.log_file(&pod_cfg, &tcfg);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rotated = path.with_extension("log.1");
    std::fs::rename(&path, &rotated)?;
    w.rt()
        .await?
        .reopen_container_log(ReopenContainerLogRequest {
            container_id: tid.clone(),
        })
        .await
        .context("ReopenContainerLog")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let new = std::fs::read_to_string(&path).unwrap_or_default();
        if parse_log(&new)?.iter().any(|r| r.content == "tick") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new log after reopen: {new:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(std::fs::read_to_string(&rotated)?.contains("stdout F tick"));
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_container_events() -> Result<()> {
    let w = World::new().await?;
    let pod = w.run_pod(&w.pod_config("stats")).await?;
    let mut events = w
        .rt()
        .await?
        .get_container_events(GetEventsRequest {})
        .await
        .context("GetContainerEvents")?
        .into_inner();

    let id = w
        .run(&pod, &w.ctr_config("stats", &["sleep", "3600"]))
        .await?;
    w.wait_state(
        &id,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;
    let s = w
        .rt()
        .await?
        .container_stats(ContainerStatsRequest {
            container_id: id.clone(),
        })
        .await
        .context("ContainerStats")?
        .into_inner()
        .stats
        .context("no stats")?;
    assert_eq!(
        s.attributes.as_ref().map(|a| a.id.as_str()),
        Some(id.as_str())
    );
    let mem = s.memory.context("no memory stats")?;
    let ws = mem.working_set_bytes.map(|v| v.value).unwrap_or(0);
    let usage = mem.usage_bytes.map(|v| v.value).unwrap_or(0);
    assert!(
        ws > 0 || usage > 0,
        "memory of a running container: {mem:?}"
    );
    assert!(mem.timestamp > 0);
    let cpu = s.cpu.context("no cpu stats")?;
    assert!(cpu.usage_core_nano_seconds.is_some(), "{cpu:?}");
    let all = w
        .rt()
        .await?
        .list_container_stats(ListContainerStatsRequest::default())
        .await
        .context("ListContainerStats")?
        .into_inner()
        .stats;
    assert!(
        all.iter()
            .any(|s| s.attributes.as_ref().map(|a| a.id.as_str()) == Some(id.as_str()))
    );

    let ps = w
        .rt()
        .await?
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .context("PodSandboxStats")?
        .into_inner()
        .stats
        .context("no pod stats")?;
    assert_eq!(
        ps.attributes.as_ref().map(|a| a.id.as_str()),
        Some(pod.as_str())
    );
    let linux = ps.linux.context("no linux pod stats")?;
    assert!(
        linux
            .containers
            .iter()
            .any(|c| c.attributes.as_ref().map(|a| a.id.as_str()) == Some(id.as_str())),
        "pod stats must list the container: {linux:?}"
    );

    // UpdateContainerResources reaches the container's memory cgroup and its status.
    w.rt()
        .await?
        .update_container_resources(UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(LinuxContainerResources {
                memory_limit_in_bytes: 96 << 20,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .context("UpdateContainerResources")?;
    let mem_cgs: Vec<_> = leftovers::stray_cgroups(std::slice::from_ref(&id))
        .into_iter()
        .filter(|p| p.starts_with("/sys/fs/cgroup/memory"))
        .collect();
    assert_eq!(mem_cgs.len(), 1, "memory cgroup of {id}: {mem_cgs:?}");
    let limit = std::fs::read_to_string(mem_cgs[0].join("memory.limit_in_bytes"))?;
    assert_eq!(
        limit.trim(),
        (96u64 << 20).to_string(),
        "cgroup limit after update"
    );
    let st = w.status(&id).await?;
    if let Some(r) = st.resources.as_ref().and_then(|r| r.linux.as_ref()) {
        assert_eq!(r.memory_limit_in_bytes, 96 << 20, "status resources: {r:?}");
    }

    w.stop(&id, 0).await?;
    w.remove(&id).await?;

    let want = [
        ContainerEventType::ContainerCreatedEvent,
        ContainerEventType::ContainerStartedEvent,
        ContainerEventType::ContainerStoppedEvent,
        ContainerEventType::ContainerDeletedEvent,
    ];
    let mut got = Vec::new();
    let deadline = Duration::from_secs(10);
    while got.len() < want.len() {
        let ev = tokio::time::timeout(deadline, events.message())
            .await
            .with_context(|| format!("events so far {got:?}"))??
            .context("event stream ended")?;
        if ev.container_id == id {
            assert!(ev.created_at > 0);
            got.push(ev.container_event_type);
        }
    }
    assert_eq!(got, want.iter().map(|e| *e as i32).collect::<Vec<_>>());
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_codes() -> Result<()> {
    let w = World::new().await?;
    let mut rt = w.rt().await?;
    // Missing metadata.
    let mut cfg = w.pod_config("bad");
    cfg.metadata = None;
    let e = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(cfg),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "pod without metadata: {e}");
    let e = rt
        .run_pod_sandbox(RunPodSandboxRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "pod without config: {e}");

    let pod_cfg = w.pod_config("bad");
    let pod = w.run_pod(&pod_cfg).await?;
    let mut no_meta = w.ctr_config("bad", &["true"]);
    no_meta.metadata = None;
    let e = w.create(&pod, &no_meta).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "container without metadata: {e}"
    );
    let e = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: None,
            sandbox_config: Some(pod_cfg.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "container without config: {e}"
    );

    // Unknown pod / container.
    let e = w
        .create("doesnotexist0000", &w.ctr_config("bad", &["true"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "unknown pod: {e}");
    let e = rt
        .start_container(StartContainerRequest {
            container_id: "doesnotexist0000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "start unknown container: {e}");
    let e = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: "doesnotexist0000".into(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "status of unknown pod: {e}");

    // Unknown image.
    let mut no_img = w.ctr_config("bad", &["true"]);
    no_img.image = Some(ImageSpec {
        image: w.env.r("never/pulled:1"),
        ..Default::default()
    });
    let e = w.create(&pod, &no_img).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "unknown image: {e}");

    // Bad mount source.
    let mut bad_mount = w.ctr_config("bad", &["true"]);
    let missing = w.env.base().join("no/such/dir");
    bad_mount.mounts.push(Mount {
        container_path: "/data".into(),
        host_path: missing.display().to_string(),
        ..Default::default()
    });
    let e = w.create(&pod, &bad_mount).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "bad mount: {e}");
    assert!(e.message().contains(&missing.display().to_string()), "{e}");

    // Duplicate container name in a pod.
    let dup = w.ctr_config("dup", &["true"]);
    let first = w.create(&pod, &dup).await?;
    let e = w.create(&pod, &dup).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "duplicate container: {e}");
    assert!(
        e.message().contains(&first[..12.min(first.len())]),
        "must name the holder: {e}"
    );

    // A failed create leaves nothing behind (only `first` exists).
    let ids = list_ctr_ids(&w, ContainerFilter::default()).await?;
    assert_eq!(ids, vec![first.clone()]);
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_in_use_cannot_be_removed() -> Result<()> {
    let w = World::new().await?;
    let pod = w.run_pod(&w.pod_config("inuse")).await?;
    let id = w.create(&pod, &w.ctr_config("inuse", &["true"])).await?;
    let mut images = w.env.daemon.images().await?;
    let remove = |image: String| RemoveImageRequest {
        image: Some(ImageSpec {
            image,
            ..Default::default()
        }),
    };
    let e = images
        .remove_image(remove(w.image.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    assert!(
        e.message().contains(&id[..12.min(id.len())]),
        "must name the container: {e}"
    );
    let e = images
        .remove_image(remove(w.image_id.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "by id: {e}");
    w.remove(&id).await?;
    images
        .remove_image(remove(w.image.clone()))
        .await
        .context("image is free once its container is removed")?;
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}
