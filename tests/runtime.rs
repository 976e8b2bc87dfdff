//! End-to-end tests of crust's CRI RuntimeService surface that exists today: Version,
//! Status, and `Unimplemented` for every RPC a later issue implements.
#![allow(clippy::unwrap_used)]

mod common;

use anyhow::Result;
use common::Daemon;
use crust_proto::cri::{
    ListContainersRequest, ListPodSandboxRequest, RunPodSandboxRequest, StatusRequest,
    StopPodSandboxRequest, VersionRequest,
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
async fn unimplemented_rpcs_say_so() -> Result<()> {
    let (d, _tmp) = daemon().await?;
    let mut c = d.runtime().await?;
    let codes = [
        c.run_pod_sandbox(RunPodSandboxRequest::default())
            .await
            .map(|_| ())
            .unwrap_err()
            .code(),
        c.stop_pod_sandbox(StopPodSandboxRequest::default())
            .await
            .map(|_| ())
            .unwrap_err()
            .code(),
        c.list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .map(|_| ())
            .unwrap_err()
            .code(),
        c.list_containers(ListContainersRequest::default())
            .await
            .map(|_| ())
            .unwrap_err()
            .code(),
    ];
    assert!(codes.iter().all(|c| *c == Code::Unimplemented), "{codes:?}");
    Ok(())
}
