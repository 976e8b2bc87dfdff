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

pub mod error;
pub mod image_fs_info;
pub mod image_status;
pub mod list_images;
pub mod pull_image;
pub mod remove_image;
pub mod status;
pub mod unimplemented;
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

/// Everything an RPC handler may use. Cheap to share: held in an `Arc` by [`CriServer`].
pub struct Context {
    /// The effective configuration; replaced on SIGHUP.
    pub config: SharedConfig,
    /// The image service (pull, list, status, remove, fs info).
    pub images: Images,
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
    let span = tracing::info_span!("rpc", rpc);
    async move {
        let start = Instant::now();
        let res = fut.await;
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
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

    not_yet! {
        run_pod_sandbox(RunPodSandboxRequest) -> RunPodSandboxResponse, "RunPodSandbox", "pod sandboxes";
        stop_pod_sandbox(StopPodSandboxRequest) -> StopPodSandboxResponse, "StopPodSandbox", "pod sandboxes";
        remove_pod_sandbox(RemovePodSandboxRequest) -> RemovePodSandboxResponse, "RemovePodSandbox", "pod sandboxes";
        pod_sandbox_status(PodSandboxStatusRequest) -> PodSandboxStatusResponse, "PodSandboxStatus", "pod sandboxes";
        list_pod_sandbox(ListPodSandboxRequest) -> ListPodSandboxResponse, "ListPodSandbox", "pod sandboxes";
        create_container(CreateContainerRequest) -> CreateContainerResponse, "CreateContainer", "containers";
        start_container(StartContainerRequest) -> StartContainerResponse, "StartContainer", "containers";
        stop_container(StopContainerRequest) -> StopContainerResponse, "StopContainer", "containers";
        remove_container(RemoveContainerRequest) -> RemoveContainerResponse, "RemoveContainer", "containers";
        list_containers(ListContainersRequest) -> ListContainersResponse, "ListContainers", "containers";
        container_status(ContainerStatusRequest) -> ContainerStatusResponse, "ContainerStatus", "containers";
        update_container_resources(UpdateContainerResourcesRequest) -> UpdateContainerResourcesResponse, "UpdateContainerResources", "containers";
        reopen_container_log(ReopenContainerLogRequest) -> ReopenContainerLogResponse, "ReopenContainerLog", "containers";
        exec_sync(ExecSyncRequest) -> ExecSyncResponse, "ExecSync", "exec and streaming";
        exec(ExecRequest) -> ExecResponse, "Exec", "exec and streaming";
        attach(AttachRequest) -> AttachResponse, "Attach", "exec and streaming";
        port_forward(PortForwardRequest) -> PortForwardResponse, "PortForward", "exec and streaming";
        container_stats(ContainerStatsRequest) -> ContainerStatsResponse, "ContainerStats", "container stats";
        list_container_stats(ListContainerStatsRequest) -> ListContainerStatsResponse, "ListContainerStats", "container stats";
        pod_sandbox_stats(PodSandboxStatsRequest) -> PodSandboxStatsResponse, "PodSandboxStats", "pod stats";
        list_pod_sandbox_stats(ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse, "ListPodSandboxStats", "pod stats";
        update_runtime_config(UpdateRuntimeConfigRequest) -> UpdateRuntimeConfigResponse, "UpdateRuntimeConfig", "runtime config updates (pod CIDR)";
        checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse, "CheckpointContainer", "container checkpointing";
        list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse, "ListMetricDescriptors", "CRI metrics";
        list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse, "ListPodSandboxMetrics", "CRI metrics";
        runtime_config(RuntimeConfigRequest) -> RuntimeConfigResponse, "RuntimeConfig", "runtime config (cgroup driver)";
    }

    type GetContainerEventsStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>,
    >;

    async fn get_container_events(
        &self,
        _request: Request<cri::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        traced("GetContainerEvents", async {
            Err::<Self::GetContainerEventsStream, _>(unimplemented::rpc(
                "GetContainerEvents",
                "container events",
            ))
        })
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
