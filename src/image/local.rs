//! Operations on images already in the store: list, status, remove, usage.
//!
//! Names are looked up the way a pull would store them (CRI-O/containerd accept the same
//! spellings for status and removal as for pulls): the input as given (ids, id prefixes,
//! fully-qualified names), then each registries.conf candidate of a short name, then the
//! docker.io normalisation ("busybox" -> "docker.io/library/busybox:latest").

use std::sync::Arc;

use crust_storage::{ImageRecord, Store};

use super::user::{ImageUser, image_user};
use super::{ImageError, Inner};
use crate::registries::ImageReference;

/// What `ImageStatus` reports about one image.
#[derive(Debug, Clone)]
pub struct ImageDetails {
    /// The store's record.
    pub record: ImageRecord,
    /// The image config document (`Value::Null` if it could not be read).
    pub config: serde_json::Value,
    /// The default user from the config.
    pub user: ImageUser,
}

fn stored_name(r: &ImageReference) -> Option<String> {
    match &r.digest {
        Some(d) => Some(r.digested_name(d)),
        None => r.tagged_name(),
    }
}

/// Names to try, in order, for a user-supplied image string.
fn lookup_names(inner: &Inner, input: &str) -> Vec<String> {
    let mut names = vec![input.to_string()];
    if let Ok(candidates) = inner.registries().resolve(input) {
        names.extend(candidates.iter().filter_map(|c| stored_name(&c.reference)));
    }
    if let Ok(r) = ImageReference::normalize_docker(input) {
        names.extend(stored_name(&r));
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The image and the name that matched it.
async fn find(
    inner: &Arc<Inner>,
    input: &str,
) -> Result<Option<(ImageRecord, String)>, ImageError> {
    find_then(inner, input, |_, record, name| (record, name)).await
}

/// Look `input` up and, on the same blocking-pool trip, pass the match (record and the
/// name that matched) to `then` with the store.
async fn find_then<T: Send + 'static>(
    inner: &Arc<Inner>,
    input: &str,
    then: impl FnOnce(&Store, ImageRecord, String) -> T + Send + 'static,
) -> Result<Option<T>, ImageError> {
    if input.is_empty() {
        return Ok(None);
    }
    let names = lookup_names(inner, input);
    let store = Arc::clone(&inner.store);
    let found = crate::blocking::run("find_image", move || {
        let (record, name) = names
            .into_iter()
            .find_map(|n| store.find_image(&n).map(|r| (r, n)))?;
        Some(then(&store, record, name))
    })
    .await?;
    Ok(found)
}

pub(super) async fn list(
    inner: &Arc<Inner>,
    filter: Option<&str>,
) -> Result<Vec<ImageRecord>, ImageError> {
    match filter {
        Some(f) if !f.is_empty() => Ok(find(inner, f).await?.map(|(r, _)| r).into_iter().collect()),
        _ => {
            let store = Arc::clone(&inner.store);
            Ok(crate::blocking::run("images", move || store.images()).await?)
        }
    }
}

pub(super) async fn status(
    inner: &Arc<Inner>,
    input: &str,
) -> Result<Option<ImageDetails>, ImageError> {
    // The record and its config in one trip: CreateContainer asks for both on every call.
    let found = find_then(inner, input, |store, record, _| {
        let blob = store.get_blob(&record.id);
        (record, blob)
    })
    .await?;
    let Some((record, blob)) = found else {
        return Ok(None);
    };
    let config = match blob.map(|b| serde_json::from_slice::<serde_json::Value>(&b)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::warn!(image = %record.id, error = %e, "image config is not valid JSON");
            serde_json::Value::Null
        }
        Err(e) => {
            tracing::warn!(image = %record.id, error = %e, "image config blob unreadable");
            serde_json::Value::Null
        }
    };
    let user = config
        .get("config")
        .and_then(|c| c.get("User"))
        .and_then(|u| u.as_str())
        .map(image_user)
        .unwrap_or(ImageUser::None);
    Ok(Some(ImageDetails {
        record,
        config,
        user,
    }))
}

pub(super) async fn remove(inner: &Arc<Inner>, input: &str) -> Result<bool, ImageError> {
    let Some((record, matched)) = find(inner, input).await? else {
        tracing::debug!(image = input, "remove: image not present");
        return Ok(false);
    };
    let store = Arc::clone(&inner.store);
    let by_tag = record.repo_tags.contains(&matched);
    crate::blocking::run("remove_image", move || {
        if by_tag {
            store
                .untag_image(&matched)
                .map(|_| ())
                .map_err(|e| ImageError::store(format!("untag {matched}"), e))
        } else {
            store
                .remove_image(&record.id)
                .map_err(|e| ImageError::store(format!("remove image {}", record.id), e))
        }
    })
    .await??;
    tracing::info!(image = input, "image removed");
    Ok(true)
}

pub(super) async fn usage(inner: &Arc<Inner>) -> Result<crust_storage::Usage, ImageError> {
    let store = Arc::clone(&inner.store);
    crate::blocking::run("usage", move || {
        store.usage().map_err(|e| ImageError::store("usage", e))
    })
    .await?
}
