//! `ListImages` (CRI ImageService): every image, or those matching `filter.image.image`
//! (an id, id prefix, tag or digest reference, normalised as a pull would).

use crust_proto::cri;
use crust_storage::ImageRecord;
use tonic::Status;

use super::Context;

/// Handle `ListImages`.
pub async fn handle(
    ctx: &Context,
    req: cri::ListImagesRequest,
) -> Result<cri::ListImagesResponse, Status> {
    let filter = req
        .filter
        .and_then(|f| f.image)
        .map(|s| s.image)
        .filter(|s| !s.is_empty());
    let records = ctx.images.list(filter.as_deref()).await?;
    Ok(cri::ListImagesResponse {
        images: records.iter().map(|r| to_cri(r, None)).collect(),
    })
}

/// The CRI `Image` for a record; `user` comes from the config when known (ImageStatus).
pub fn to_cri(r: &ImageRecord, user: Option<&crate::image::ImageUser>) -> cri::Image {
    let id = r.id.to_string();
    let (uid, username) = match user {
        Some(crate::image::ImageUser::Uid(u)) => {
            (Some(cri::Int64Value { value: *u }), String::new())
        }
        Some(crate::image::ImageUser::Username(n)) => (None, n.clone()),
        _ => (None, String::new()),
    };
    cri::Image {
        id: id.clone(),
        repo_tags: r.repo_tags.clone(),
        repo_digests: r.repo_digests.clone(),
        size: r.size,
        uid,
        username,
        spec: Some(cri::ImageSpec {
            image: r.repo_tags.first().cloned().unwrap_or(id),
            ..Default::default()
        }),
        pinned: r.pinned,
    }
}
