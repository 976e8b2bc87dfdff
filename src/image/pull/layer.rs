//! One pull's layers: the image config (fetched once, shared by every layer of the pull)
//! and each layer, streamed from the registry into `Store::apply_layer`.
//!
//! A layer request needs only the manifest's descriptor; its diff id (the key the store
//! shares layers by, and the digest the unpacked tar must have) comes from the config.
//! So the config is a shared future the layers await only once their download is under
//! way: the config's round trip overlaps the first layers' instead of preceding them, as
//! containerd's fetch handlers dispatch a manifest's config and layers together.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use crust_storage::{ApplyLayer, Compression, Digest};
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::time::timeout;
use tracing::Instrument;

use super::super::manifest::{Descriptor, ImageConfig};
use super::super::{ImageError, Inner, bridge};
use super::{Target, stream_error};

/// What the config contributes to a pull.
#[derive(Clone)]
pub(super) struct FetchedConfig {
    /// The config blob as received (digest verified).
    pub raw: Bytes,
    /// `rootfs.diff_ids`, one per manifest layer.
    pub diff_ids: Arc<Vec<Digest>>,
}

/// The config download, awaited by every layer of the pull and by the pull itself.
pub(super) type ConfigFuture = Shared<BoxFuture<'static, Result<FetchedConfig, Arc<ImageError>>>>;

/// Start-on-first-poll future fetching and checking the config `desc` of a manifest with
/// `layers` layers.
pub(super) fn config_future(
    t: &Target,
    desc: &Descriptor,
    what: String,
    layers: usize,
    manifest_digest: &Digest,
) -> ConfigFuture {
    let (t, desc, manifest_digest) = (t.clone(), desc.clone(), manifest_digest.clone());
    async move {
        fetch_config(&t, &desc, &what, layers, &manifest_digest)
            .await
            .map_err(Arc::new)
    }
    .in_current_span()
    .boxed()
    .shared()
}

async fn fetch_config(
    t: &Target,
    desc: &Descriptor,
    what: &str,
    layers: usize,
    manifest_digest: &Digest,
) -> Result<FetchedConfig, ImageError> {
    let raw = t.small_blob(desc, what).await?;
    let config: ImageConfig =
        serde_json::from_slice(&raw).map_err(|e| t.invalid(what, e.to_string()))?;
    let diff_ids = config
        .rootfs
        .map(|r| r.diff_ids)
        .unwrap_or_default()
        .iter()
        .map(|d| Digest::parse(d).map_err(|e| t.invalid(what, format!("diff id `{d}`: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if diff_ids.len() != layers {
        return Err(t.invalid(
            what,
            format!(
                "{} diff ids in rootfs but {layers} layers in manifest {manifest_digest}",
                diff_ids.len(),
            ),
        ));
    }
    Ok(FetchedConfig {
        raw: Bytes::from(raw),
        diff_ids: Arc::new(diff_ids),
    })
}

/// The diff id of layer `index`, once the config is in.
async fn diff_id_at(t: &Target, config: &ConfigFuture, index: usize) -> Result<Digest, ImageError> {
    let fetched = config.clone().await.map_err(ImageError::Shared)?;
    // `fetch_config` checked there is one per layer.
    fetched
        .diff_ids
        .get(index)
        .cloned()
        .ok_or_else(|| t.invalid("config", format!("no diff id for layer {index}")))
}

/// One manifest layer to make present.
pub(super) struct Wanted {
    pub desc: Descriptor,
    pub compression: Compression,
    /// The descriptor's (compressed) digest.
    pub digest: Digest,
    /// Position in the manifest (and in the config's diff ids).
    pub index: usize,
}

/// Make sure manifest layer `want` is in the store: (unpacked size, bytes downloaded).
pub(super) async fn ensure_layer(
    inner: &Arc<Inner>,
    t: &Target,
    want: Wanted,
    config: ConfigFuture,
) -> Result<(u64, u64), ImageError> {
    // Stored from this very blob before (a re-pull): no request at all, once the config
    // confirms the diff id.
    let store = Arc::clone(&inner.store);
    let probe = want.digest.clone();
    if let Some(info) =
        crate::blocking::run("layer", move || store.layer_by_compressed(&probe)).await?
        && info.diff_id == diff_id_at(t, &config, want.index).await?
    {
        return Ok((info.size, 0));
    }
    let key = want.digest.to_string();
    let (inner2, t2) = (Arc::clone(inner), t.clone());
    let shared = inner
        .layer_pulls
        .run(key, move || {
            async move {
                download_layer(inner2, t2, want, config)
                    .await
                    .map_err(Arc::new)
            }
            .in_current_span()
        })
        .await;
    match shared {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(ImageError::Shared(e)),
        None => Err(ImageError::Aborted { image: t.whole() }),
    }
}

async fn download_layer(
    inner: Arc<Inner>,
    t: Target,
    want: Wanted,
    config: ConfigFuture,
) -> Result<(u64, u64), ImageError> {
    let Wanted {
        desc,
        compression,
        digest,
        index,
    } = want;
    let what = format!("layer {digest}");
    let started = Instant::now();
    // The store hashes the compressed stream anyway (and refuses the layer on a mismatch),
    // so asking for the whole blob as a range (`Range: bytes=0-`) spares oci-client's own
    // second SHA-256 pass over it: oci-client does not verify partial responses. A
    // registry that ignores the range answers 200 and oci-client verifies as usual.
    let fetch = async {
        t.client
            .pull_blob_stream_partial(&t.reference, desc.digest.as_str(), 0, None)
            .await
            .map(|r| match r {
                oci_client::client::BlobResponse::Full(s)
                | oci_client::client::BlobResponse::Partial(s) => s,
            })
    };
    let mut stream = timeout(t.stall, fetch)
        .await
        .map_err(|_| t.stalled(what.clone()))?
        .map_err(|e| t.registry_err(what.clone(), e))?;
    let diff_id = diff_id_at(&t, &config, index).await?;
    // The same content may be stored already, unpacked from another blob (another
    // compression of it): the response is dropped unread.
    let store = Arc::clone(&inner.store);
    let probe = diff_id.clone();
    if let Some(info) = crate::blocking::run("layer", move || store.layer(&probe)).await? {
        return Ok((info.size, 0));
    }
    let (tx, mut reader) = bridge::channel();
    let req = ApplyLayer {
        diff_id: diff_id.clone(),
        compressed_digest: digest.clone(),
        compression,
        compressed_size: u64::try_from(desc.size).ok().filter(|s| *s > 0),
        // Early writeback only pays when the layer is synced before the RPC returns.
        start_writeback: inner.pull_sync_fs,
    };
    let store = Arc::clone(&inner.store);
    let apply = crate::blocking::run("apply_layer", move || store.apply_layer(&req, &mut reader));
    let forward = {
        let (t, what) = (&t, &what);
        async move {
            let mut bytes = 0u64;
            loop {
                match timeout(t.stall, stream.next()).await {
                    Err(_) => {
                        let _ = tx
                            .send(Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "download stalled",
                            )))
                            .await;
                        return Err(t.stalled(what.clone()));
                    }
                    Ok(None) => return Ok(bytes),
                    Ok(Some(Ok(chunk))) => {
                        bytes += chunk.len() as u64;
                        if tx.send(Ok(chunk)).await.is_err() {
                            // The unpacker stopped reading; its own result says why.
                            return Ok(bytes);
                        }
                    }
                    Ok(Some(Err(e))) => {
                        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string()))).await;
                        return Err(t.registry_err(what.clone(), stream_error(e)));
                    }
                }
            }
        }
    };
    let (forwarded, applied) = tokio::join!(forward, apply);
    let applied = applied?;
    let bytes = forwarded?;
    let info =
        applied.map_err(|e| ImageError::store(format!("apply {what} from {}", t.registry), e))?;
    tracing::debug!(layer = %digest, diff_id = %diff_id, bytes, ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX), "layer unpacked");
    Ok((info.size, bytes))
}
