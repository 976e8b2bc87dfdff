//! The CRI v1 gRPC surface: `RuntimeService` and `ImageService`.
//!
//! Each RPC lives in its own thin file (`version.rs`, `pull_image.rs`, ...) exposing
//! `async fn handle(ctx: &Context, req: XRequest) -> Result<XResponse, Status>`: it
//! validates and converts the CRI request into domain calls and the domain answer back
//! into CRI types. Domain errors become gRPC statuses only in [`error`]. RPCs that later
//! issues implement answer `Unimplemented` through [`unimplemented::rpc`].
//!
//! Every RPC runs inside a `tracing` span named after it (see [`traced`]) so logs carry the
//! RPC name, and handlers add pod/container/image ids as span fields.

pub mod attach;
pub mod container_stats;
pub mod container_status;
pub mod create_container;
pub mod error;
pub mod exec;
pub mod exec_sync;
pub mod get_container_events;
pub mod image_fs_info;
pub mod image_status;
pub mod list_container_stats;
pub mod list_containers;
pub mod list_images;
pub mod list_pod_sandbox;
pub mod list_pod_sandbox_stats;
pub mod pod_sandbox_stats;
pub mod pod_sandbox_status;
pub mod port_forward;
pub mod pull_image;
pub mod remove_container;
pub mod remove_image;
pub mod remove_pod_sandbox;
pub mod reopen_container_log;
pub mod run_pod_sandbox;
pub mod runtime_config;
pub mod start_container;
pub mod status;
pub mod stop_container;
pub mod stop_pod_sandbox;
pub mod unimplemented;
pub mod update_container_resources;
pub mod update_runtime_config;
pub mod version;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crust_proto::cri;
use crust_proto::cri::image_service_server::ImageService;
use crust_proto::cri::runtime_service_server::RuntimeService;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::config::SharedConfig;
use crate::image::ImageService as Images;
use crate::lifecycle::Manager;

/// Everything an RPC handler may use. Cheap to share: held in an `Arc` by [`CriServer`].
pub struct Context {
    /// The effective configuration; replaced on SIGHUP.
    pub config: SharedConfig,
    /// The image service (pull, list, status, remove, fs info).
    pub images: Arc<Images>,
    /// Pods and containers.
    pub lifecycle: Arc<Manager>,
    /// The streaming server behind Exec, Attach and PortForward URLs.
    pub streaming: Arc<crate::streaming::StreamServer>,
}

/// The tonic service implementing both CRI services over one [`Context`].
#[derive(Clone)]
pub struct CriServer {
    ctx: Arc<Context>,
}

impl CriServer {
    /// Wrap a context into a servable CRI server.
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    /// The shared context (for the daemon's signal handlers).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }
}

/// Run one RPC handler inside a span named after the RPC, logging its outcome and
/// latency. Errors are logged at `warn` with their gRPC code so that an operator sees
/// failed kubelet calls without turning on debug logging.
pub async fn traced<T, F>(rpc: &'static str, fut: F) -> Result<Response<T>, Status>
where
    F: Future<Output = Result<T, Status>>,
{
    let span = tracing::info_span!(
        "rpc",
        rpc,
        pod = tracing::field::Empty,
        container = tracing::field::Empty
    );
    async move {
        let start = Instant::now();
        let res = fut.await;
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        crate::metrics::record_rpc(rpc, res.as_ref().err().map(Status::code), start.elapsed());
        match &res {
            Ok(_) => tracing::debug!(micros, "ok"),
            Err(status) => {
                tracing::warn!(micros, code = ?status.code(), message = status.message(), "failed")
            }
        }
        res.map(Response::new)
    }
    .instrument(span)
    .await
}

/// Generates `RuntimeService` methods that answer `Unimplemented` until their issue lands.
macro_rules! not_yet {
    ($($method:ident($req:ident) -> $resp:ident, $rpc:literal, $what:literal;)*) => {
        $(
            // Spelled out the way `async_trait` expands a method, because the attribute
            // does not see methods produced by a macro inside the impl block.
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                _request: Request<cri::$req>,
            ) -> std::pin::Pin<
                Box<dyn Future<Output = Result<Response<cri::$resp>, Status>> + Send + 'async_trait>,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(traced($rpc, async { Err(unimplemented::rpc($rpc, $what)) }))
            }
        )*
    };
}

#[tonic::async_trait]
impl RuntimeService for CriServer {
    async fn version(
        &self,
        request: Request<cri::VersionRequest>,
    ) -> Result<Response<cri::VersionResponse>, Status> {
        traced("Version", version::handle(&self.ctx, request.into_inner())).await
    }

    async fn status(
        &self,
        request: Request<cri::StatusRequest>,
    ) -> Result<Response<cri::StatusResponse>, Status> {
        traced("Status", status::handle(&self.ctx, request.into_inner())).await
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<cri::RunPodSandboxRequest>,
    ) -> Result<Response<cri::RunPodSandboxResponse>, Status> {
        traced(
            "RunPodSandbox",
            run_pod_sandbox::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<cri::StopPodSandboxRequest>,
    ) -> Result<Response<cri::StopPodSandboxResponse>, Status> {
        traced(
            "StopPodSandbox",
            stop_pod_sandbox::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<cri::RemovePodSandboxRequest>,
    ) -> Result<Response<cri::RemovePodSandboxResponse>, Status> {
        traced(
            "RemovePodSandbox",
            remove_pod_sandbox::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<cri::PodSandboxStatusRequest>,
    ) -> Result<Response<cri::PodSandboxStatusResponse>, Status> {
        traced(
            "PodSandboxStatus",
            pod_sandbox_status::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<cri::ListPodSandboxRequest>,
    ) -> Result<Response<cri::ListPodSandboxResponse>, Status> {
        traced(
            "ListPodSandbox",
            list_pod_sandbox::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn create_container(
        &self,
        request: Request<cri::CreateContainerRequest>,
    ) -> Result<Response<cri::CreateContainerResponse>, Status> {
        traced(
            "CreateContainer",
            create_container::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn start_container(
        &self,
        request: Request<cri::StartContainerRequest>,
    ) -> Result<Response<cri::StartContainerResponse>, Status> {
        traced(
            "StartContainer",
            start_container::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn stop_container(
        &self,
        request: Request<cri::StopContainerRequest>,
    ) -> Result<Response<cri::StopContainerResponse>, Status> {
        traced(
            "StopContainer",
            stop_container::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn remove_container(
        &self,
        request: Request<cri::RemoveContainerRequest>,
    ) -> Result<Response<cri::RemoveContainerResponse>, Status> {
        traced(
            "RemoveContainer",
            remove_container::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn list_containers(
        &self,
        request: Request<cri::ListContainersRequest>,
    ) -> Result<Response<cri::ListContainersResponse>, Status> {
        traced(
            "ListContainers",
            list_containers::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn container_status(
        &self,
        request: Request<cri::ContainerStatusRequest>,
    ) -> Result<Response<cri::ContainerStatusResponse>, Status> {
        traced(
            "ContainerStatus",
            container_status::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn update_container_resources(
        &self,
        request: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Result<Response<cri::UpdateContainerResourcesResponse>, Status> {
        traced(
            "UpdateContainerResources",
            update_container_resources::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn reopen_container_log(
        &self,
        request: Request<cri::ReopenContainerLogRequest>,
    ) -> Result<Response<cri::ReopenContainerLogResponse>, Status> {
        traced(
            "ReopenContainerLog",
            reopen_container_log::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn container_stats(
        &self,
        request: Request<cri::ContainerStatsRequest>,
    ) -> Result<Response<cri::ContainerStatsResponse>, Status> {
        traced(
            "ContainerStats",
            container_stats::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn list_container_stats(
        &self,
        request: Request<cri::ListContainerStatsRequest>,
    ) -> Result<Response<cri::ListContainerStatsResponse>, Status> {
        traced(
            "ListContainerStats",
            list_container_stats::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn pod_sandbox_stats(
        &self,
        request: Request<cri::PodSandboxStatsRequest>,
    ) -> Result<Response<cri::PodSandboxStatsResponse>, Status> {
        traced(
            "PodSandboxStats",
            pod_sandbox_stats::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn list_pod_sandbox_stats(
        &self,
        request: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Result<Response<cri::ListPodSandboxStatsResponse>, Status> {
        traced(
            "ListPodSandboxStats",
            list_pod_sandbox_stats::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn update_runtime_config(
        &self,
        request: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<cri::UpdateRuntimeConfigResponse>, Status> {
        traced(
            "UpdateRuntimeConfig",
            update_runtime_config::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn runtime_config(
        &self,
        request: Request<cri::RuntimeConfigRequest>,
    ) -> Result<Response<cri::RuntimeConfigResponse>, Status> {
        traced(
            "RuntimeConfig",
            runtime_config::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn exec_sync(
        &self,
        request: Request<cri::ExecSyncRequest>,
    ) -> Result<Response<cri::ExecSyncResponse>, Status> {
        traced(
            "ExecSync",
            exec_sync::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    not_yet! {
        checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse, "CheckpointContainer", "container checkpointing";
        list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse, "ListMetricDescriptors", "CRI metrics";
        list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse, "ListPodSandboxMetrics", "CRI metrics";
    }

    async fn exec(
        &self,
        request: Request<cri::ExecRequest>,
    ) -> Result<Response<cri::ExecResponse>, Status> {
        traced("Exec", exec::handle(&self.ctx, request.into_inner())).await
    }

    async fn attach(
        &self,
        request: Request<cri::AttachRequest>,
    ) -> Result<Response<cri::AttachResponse>, Status> {
        traced("Attach", attach::handle(&self.ctx, request.into_inner())).await
    }

    async fn port_forward(
        &self,
        request: Request<cri::PortForwardRequest>,
    ) -> Result<Response<cri::PortForwardResponse>, Status> {
        traced(
            "PortForward",
            port_forward::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    type GetContainerEventsStream = get_container_events::EventStream;

    async fn get_container_events(
        &self,
        request: Request<cri::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        traced(
            "GetContainerEvents",
            get_container_events::handle(&self.ctx, request.into_inner()),
        )
        .await
    }
}

#[tonic::async_trait]
impl ImageService for CriServer {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        traced(
            "ListImages",
            list_images::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        traced(
            "ImageStatus",
            image_status::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn pull_image(
        &self,
        request: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        traced(
            "PullImage",
            pull_image::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        traced(
            "RemoveImage",
            remove_image::handle(&self.ctx, request.into_inner()),
        )
        .await
    }

    async fn image_fs_info(
        &self,
        request: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        traced(
            "ImageFsInfo",
            image_fs_info::handle(&self.ctx, request.into_inner()),
        )
        .await
    }
}
