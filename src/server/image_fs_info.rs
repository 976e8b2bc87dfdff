//! `ImageFsInfo` (CRI ImageService): bytes and inodes used by the image store, which kubelet
//! uses for image garbage collection. Container writable layers live on the same file
//! system under the same root for now, so `container_filesystems` reports the same usage.

use crust_proto::cri;
use tonic::Status;

use super::Context;

/// Handle `ImageFsInfo`.
pub async fn handle(
    ctx: &Context,
    _req: cri::ImageFsInfoRequest,
) -> Result<cri::ImageFsInfoResponse, Status> {
    let usage = ctx.images.usage().await?;
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let fs = cri::FilesystemUsage {
        timestamp,
        fs_id: Some(cri::FilesystemIdentifier {
            mountpoint: usage.mountpoint.display().to_string(),
        }),
        used_bytes: Some(cri::UInt64Value { value: usage.bytes }),
        inodes_used: Some(cri::UInt64Value {
            value: usage.inodes,
        }),
    };
    Ok(cri::ImageFsInfoResponse {
        image_filesystems: vec![fs.clone()],
        container_filesystems: vec![fs],
    })
}
