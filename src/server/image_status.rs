//! `ImageStatus` (CRI ImageService). An unknown image is not an error: CRI api.proto says
//! "If the image isn't present, returns a response with ImageStatusResponse.Image set to
//! nil", and kubelet relies on that to decide to pull. `verbose` adds `info["info"]`, a JSON
//! document with the image config (`imageSpec`), manifest digest, chain ids and layers, as
//! containerd does.

use std::collections::HashMap;

use crust_proto::cri;
use tonic::Status;
use tracing::Instrument;

use super::Context;
use super::error::missing_field;
use super::list_images::to_cri;
use crate::image::user::verbose_info;

/// Handle `ImageStatus`.
pub async fn handle(
    ctx: &Context,
    req: cri::ImageStatusRequest,
) -> Result<cri::ImageStatusResponse, Status> {
    let image = req.image.map(|s| s.image).unwrap_or_default();
    if image.is_empty() {
        return Err(missing_field("ImageStatus", "image.image"));
    }
    let Some(details) = ctx
        .images
        .status(&image)
        .instrument(tracing::info_span!("image", image = %image))
        .await?
    else {
        return Ok(cri::ImageStatusResponse {
            image: None,
            info: HashMap::new(),
        });
    };
    let mut info = HashMap::new();
    if req.verbose {
        info.insert(
            "info".to_string(),
            verbose_info(&details.record, &details.config),
        );
    }
    Ok(cri::ImageStatusResponse {
        image: Some(to_cri(&details.record, Some(&details.user))),
        info,
    })
}
