//! `PullImage` (CRI ImageService).
//!
//! Credentials: the request's `AuthConfig` when it carries any, else the node's auth.json,
//! else anonymous (CRI-O's order). `image_ref` is the image id "sha256:<config digest>", as
//! containerd answers. `sandbox_config` is ignored for now (no per-runtime-handler pulls).

use crust_proto::cri;
use tonic::Status;
use tracing::Instrument;

use super::Context;
use super::error::missing_field;
use crate::registries::{Credentials, credentials_from_fields};

/// Handle `PullImage`.
pub async fn handle(
    ctx: &Context,
    req: cri::PullImageRequest,
) -> Result<cri::PullImageResponse, Status> {
    let image = req.image.map(|s| s.image).unwrap_or_default();
    if image.is_empty() {
        return Err(missing_field("PullImage", "image.image"));
    }
    let creds = match req.auth {
        Some(a) => {
            let c = credentials_from_fields(
                &a.username,
                &a.password,
                &a.auth,
                &a.identity_token,
                &a.registry_token,
            )
            .map_err(|e| {
                Status::invalid_argument(format!("PullImage {image}: invalid auth config: {e}"))
            })?;
            match c {
                Credentials::Anonymous => None,
                c => Some(c),
            }
        }
        None => None,
    };
    let pulled = ctx
        .images
        .pull(&image, creds)
        .instrument(tracing::info_span!("image", image = %image))
        .await?;
    Ok(cri::PullImageResponse {
        image_ref: pulled.record.id.to_string(),
    })
}
