//! End-to-end tests of crust's CRI RuntimeService basics: Version, Status, pod and
//! container RPCs answering on an empty daemon, streaming RPCs refusing empty ids, and
//! `Unimplemented` for checkpointing and CRI metrics. Pods and containers are covered in `pods.rs`,
//! `containers.rs`, `security.rs`, `stdio.rs` and `lifecycle_restart.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use anyhow::Result;
use common::Daemon;
use crust_proto::cri::{
    AttachRequest, CheckpointContainerRequest, ExecSyncRequest, ListContainersRequest,
    ListMetricDescriptorsRequest, ListPodSandboxMetricsRequest, ListPodSandboxRequest,
    PortForwardRequest, RunPodSandboxRequest, StatusRequest, StopPodSandboxRequest, VersionRequest,
};
use tonic::Code;

async fn daemon() -> Result<(Daemon, tempfile::TempDir)> {
    let tmp = tempfile::Builder::new().prefix("crust-e2e-").tempdir()?;
    let d = Daemon::start(&tmp.path().join("d"), "").await?;
    Ok((d, tmp))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_status() -> Result<()> {
    let (d, _tmp) = daemon().await?;
    let mut c = d.runtime().await?;
    let v = c
        .version(VersionRequest {
            version: "v1".into(),
        })
        .await?
        .into_inner();
    assert_eq!(v.runtime_name, "crust");
    assert_eq!(v.runtime_api_version, "v1");
    assert!(!v.runtime_version.is_empty());
    let s = c
        .status(StatusRequest { verbose: false })
        .await?
        .into_inner();
    let conds = s.status.map(|s| s.conditions).unwrap_or_default();
    let get = |t: &str| conds.iter().find(|c| c.r#type == t).map(|c| c.status);
    assert_eq!(get("RuntimeReady"), Some(true), "{conds:?}");
    assert_eq!(get("NetworkReady"), Some(false), "{conds:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_and_container_rpcs_answer_on_an_empty_daemon() -> Result<()> {
    let (d, _tmp) = daemon().await?;
    let mut c = d.runtime().await?;
    let e = c
        .run_pod_sandbox(RunPodSandboxRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "RunPodSandbox without config: {e}"
    );
    let pods = c
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await?
        .into_inner();
    assert!(pods.items.is_empty());
    let ctrs = c
        .list_containers(ListContainersRequest::default())
        .await?
        .into_inner();
    assert!(ctrs.containers.is_empty());
    if let Err(e) = c
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: "0123456789ab".into(),
        })
        .await
    {
        assert_eq!(
            e.code(),
            Code::NotFound,
            "StopPodSandbox of an unknown pod: {e}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_rpcs_reject_empty_ids_and_the_rest_is_unimplemented() -> Result<()> {
    let (d, _tmp) = daemon().await?;
    let mut c = d.runtime().await?;
    let invalid = [
        c.exec_sync(ExecSyncRequest::default())
            .await
            .map(|_| ())
            .unwrap_err(),
        c.attach(AttachRequest::default())
            .await
            .map(|_| ())
            .unwrap_err(),
        c.port_forward(PortForwardRequest::default())
            .await
            .map(|_| ())
            .unwrap_err(),
    ];
    for s in &invalid {
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        assert!(s.message().contains("id"), "names the field: {s:?}");
    }
    let unimplemented = [
        c.checkpoint_container(CheckpointContainerRequest::default())
            .await
            .map(|_| ())
            .unwrap_err(),
        c.list_metric_descriptors(ListMetricDescriptorsRequest::default())
            .await
            .map(|_| ())
            .unwrap_err(),
        c.list_pod_sandbox_metrics(ListPodSandboxMetricsRequest::default())
            .await
            .map(|_| ())
            .unwrap_err(),
    ];
    for s in &unimplemented {
        assert_eq!(s.code(), Code::Unimplemented, "{s:?}");
        assert!(s.message().contains("not implemented"), "{s:?}");
    }
    Ok(())
}
