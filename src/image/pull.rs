//! PullImage: resolve the image through registries.conf, fetch and verify the manifest (an
//! index resolves to the host platform) and the config, then stream every missing layer
//! straight into `Store::apply_layer`, several at once.
//!
//! Digests (OCI image-spec descriptor.md, containerd's behaviour):
//! - the raw bytes of every manifest are hashed; a reference pinned by digest must match;
//! - the repo digest recorded is the digest the reference resolved to (the index's digest
//!   when the tag points at an index), as containerd records it;
//! - the config blob must hash to the manifest's config digest;
//! - layer digests (compressed and diff id) are verified by the store while unpacking.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crust_storage::{Compression, Digest, ImageRecord};
use futures::{StreamExt, TryStreamExt};
use oci_client::errors::{DigestError, OciDistributionError};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::time::timeout;

mod layer;

use super::clients::registry_auth;
use super::error::At;
use super::manifest::{self, Descriptor, Document, Manifest};
use super::{ImageError, Inner, PulledImage};
use crate::registries::{Candidate, Credentials, Endpoint, ImageReference};

/// Largest image config accepted (configs are small JSON documents; this bounds memory).
const MAX_CONFIG_BYTES: usize = 16 << 20;

/// Where one fetch goes: the registry as contacted and the reference asked for.
#[derive(Clone)]
struct Target {
    client: Client,
    reference: Reference,
    registry: String,
    auth: RegistryAuth,
    stall: Duration,
}

impl Target {
    fn whole(&self) -> String {
        self.reference.whole()
    }

    fn at(&self) -> Box<At> {
        Box::new(At {
            registry: self.registry.clone(),
            reference: self.whole(),
        })
    }

    fn registry_err(&self, what: impl Into<String>, source: OciDistributionError) -> ImageError {
        ImageError::Registry {
            at: self.at(),
            what: what.into(),
            source: Box::new(source),
        }
    }

    fn stalled(&self, what: impl Into<String>) -> ImageError {
        ImageError::Stalled {
            at: self.at(),
            what: what.into(),
            secs: self.stall.as_secs(),
        }
    }

    fn invalid(&self, what: impl Into<String>, reason: impl Into<String>) -> ImageError {
        ImageError::InvalidContent {
            at: self.at(),
            what: what.into(),
            reason: reason.into(),
        }
    }

    fn mismatch(
        &self,
        what: impl Into<String>,
        expected: impl Into<String>,
        actual: &Digest,
    ) -> ImageError {
        ImageError::DigestMismatch {
            at: self.at(),
            what: what.into(),
            expected: expected.into(),
            actual: actual.to_string(),
        }
    }

    /// GET a manifest by `reference`, verifying its digest when the reference has one.
    async fn manifest(
        &self,
        reference: &Reference,
        what: &str,
    ) -> Result<(Bytes, Digest), ImageError> {
        let fetch =
            self.client
                .pull_manifest_raw(reference, &self.auth, manifest::ACCEPTED_MANIFESTS);
        let (raw, _) = timeout(self.stall, fetch)
            .await
            .map_err(|_| self.stalled(what))?
            .map_err(|e| self.registry_err(what, e))?;
        let digest = Digest::sha256_of(&raw);
        if let Some(want) = reference.digest()
            && want != digest.to_string()
        {
            return Err(self.mismatch(what, want, &digest));
        }
        Ok((raw, digest))
    }

    /// Download a small blob (the config) into memory, bounded, and verify its digest.
    async fn small_blob(&self, desc: &Descriptor, what: &str) -> Result<Vec<u8>, ImageError> {
        let mut stream = timeout(
            self.stall,
            self.client
                .pull_blob_stream(&self.reference, desc.digest.as_str()),
        )
        .await
        .map_err(|_| self.stalled(what))?
        .map_err(|e| self.registry_err(what, e))?;
        let mut data = Vec::new();
        loop {
            match timeout(self.stall, stream.next()).await {
                Err(_) => return Err(self.stalled(what)),
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => {
                    data.extend_from_slice(&chunk);
                    if data.len() > MAX_CONFIG_BYTES {
                        return Err(
                            self.invalid(what, format!("larger than {MAX_CONFIG_BYTES} bytes"))
                        );
                    }
                }
                Ok(Some(Err(e))) => return Err(self.registry_err(what, stream_error(e))),
            }
        }
        let digest = Digest::sha256_of(&data);
        if desc.digest != digest.to_string() {
            return Err(self.mismatch(what, desc.digest.clone(), &digest));
        }
        Ok(data)
    }
}

/// oci-client reports a failed blob digest check as an `io::Error` wrapping its
/// `DigestError`; lift it back out so it classifies as data loss, not as a network error.
fn stream_error(e: io::Error) -> OciDistributionError {
    if e.get_ref().is_some_and(|inner| inner.is::<DigestError>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(d) = inner.downcast::<DigestError>() {
                return OciDistributionError::DigestError(*d);
            }
            return OciDistributionError::GenericError(None);
        }
        return OciDistributionError::GenericError(None);
    }
    OciDistributionError::IoError(e)
}

/// The oci-client reference for an endpoint (fetch by digest when there is one).
fn oci_reference(r: &ImageReference) -> Reference {
    match (&r.tag, &r.digest) {
        (_, Some(d)) => Reference::with_digest(r.registry.clone(), r.repository.clone(), d.clone()),
        (Some(t), None) => Reference::with_tag(r.registry.clone(), r.repository.clone(), t.clone()),
        (None, None) => {
            Reference::with_tag(r.registry.clone(), r.repository.clone(), "latest".into())
        }
    }
}

/// The manifest a reference resolved to.
struct Resolved {
    /// The digest the reference resolved to (index digest for a multi-platform image).
    repo_digest: Digest,
    manifest_digest: Digest,
    manifest_raw: Bytes,
    manifest: Manifest,
    index: Option<(Digest, Bytes)>,
}

async fn resolve_manifest(t: &Target) -> Result<Resolved, ImageError> {
    let (raw, top) = t.manifest(&t.reference, "manifest").await?;
    match manifest::parse_document(&raw).map_err(|r| t.invalid("manifest", r))? {
        Document::Manifest(m) => Ok(Resolved {
            repo_digest: top.clone(),
            manifest_digest: top,
            manifest_raw: raw,
            manifest: m,
            index: None,
        }),
        Document::Index(idx) => {
            let want = manifest::host_platform();
            let entry = manifest::select_platform(&idx, &want).ok_or_else(|| {
                ImageError::NoMatchingPlatform {
                    at: t.at(),
                    platform: manifest::platform_string(&want),
                    available: manifest::platforms_of(&idx).join(", "),
                }
            })?;
            let what = format!(
                "manifest {} for {}",
                entry.digest,
                manifest::platform_string(&want)
            );
            let child_ref = t.reference.clone_with_digest(entry.digest.clone());
            let (child_raw, child) = t.manifest(&child_ref, &what).await?;
            match manifest::parse_document(&child_raw).map_err(|r| t.invalid(what.clone(), r))? {
                Document::Manifest(m) => Ok(Resolved {
                    repo_digest: top.clone(),
                    manifest_digest: child,
                    manifest_raw: child_raw,
                    manifest: m,
                    index: Some((top, raw)),
                }),
                Document::Index(_) => {
                    Err(t.invalid(what, "nested image indexes are not supported"))
                }
            }
        }
    }
}

/// Try every candidate and endpoint in order; the first success wins.
pub(super) async fn pull_candidates(
    inner: Arc<Inner>,
    image: String,
    candidates: Vec<Candidate>,
    creds: Option<Credentials>,
) -> Result<PulledImage, ImageError> {
    let mut attempts = Vec::new();
    let mut errors = Vec::new();
    for cand in &candidates {
        for ep in &cand.endpoints {
            match pull_endpoint(&inner, cand, ep, creds.as_ref()).await {
                Ok(p) => return Ok(p),
                Err(e) => {
                    tracing::info!(candidate = %cand.reference, registry = %ep.reference.registry, error = %e.full_message(), "pull attempt failed");
                    attempts.push(format!("{} via {}", cand.reference, ep.reference.registry));
                    errors.push(e);
                }
            }
        }
    }
    if errors.len() <= 1 {
        return Err(errors.pop().unwrap_or(ImageError::NoCandidates { image }));
    }
    // The status code comes from the most telling failure: anything but "not found" (an
    // unreachable mirror or a rejected login says more than a search registry lacking it).
    let pos = errors
        .iter()
        .position(|e| e.kind() != super::ErrorKind::NotFound)
        .unwrap_or(0);
    let source = errors.swap_remove(pos);
    Err(ImageError::PullFailed {
        image,
        attempts,
        source: Box::new(source),
    })
}

async fn pull_endpoint(
    inner: &Arc<Inner>,
    cand: &Candidate,
    ep: &Endpoint,
    creds: Option<&Credentials>,
) -> Result<PulledImage, ImageError> {
    let creds = match creds {
        Some(c) => c.clone(),
        None => inner
            .auth_file()
            .lookup(&ep.reference.registry, &ep.reference.repository),
    };
    let auth = registry_auth(&creds);
    let reference = oci_reference(&ep.reference);
    let host = reference.resolve_registry().to_string();
    let modes = inner.clients.transports_for(&host, ep.insecure);
    for (i, mode) in modes.iter().enumerate() {
        // Building a client reads the system's root certificates: not on a worker thread.
        let client = {
            let (inner, host, mode, auth) = (Arc::clone(inner), host.clone(), *mode, auth.clone());
            crate::blocking::run("registry client", move || {
                inner.clients.get(&host, mode, &auth)
            })
            .await?
        };
        let t = Target {
            client,
            reference: reference.clone(),
            registry: ep.reference.registry.clone(),
            auth: auth.clone(),
            stall: inner.pull_progress_timeout,
        };
        match resolve_manifest(&t).await {
            Ok(resolved) => {
                if ep.insecure {
                    inner.clients.remember(&host, *mode);
                }
                return pull_resolved(inner, cand, &t, resolved).await;
            }
            // Only a transport failure (TLS handshake against a plain-HTTP registry) moves
            // on to the next transport of an insecure endpoint.
            Err(ImageError::Registry { source, .. })
                if i + 1 < modes.len()
                    && matches!(*source, OciDistributionError::RequestError(_)) =>
            {
                tracing::debug!(registry = %host, transport = ?mode, error = %source, "retrying with the next transport");
            }
            Err(e) => return Err(e),
        }
    }
    Err(ImageError::NoCandidates {
        image: cand.reference.to_string(),
    })
}

async fn pull_resolved(
    inner: &Arc<Inner>,
    cand: &Candidate,
    t: &Target,
    r: Resolved,
) -> Result<PulledImage, ImageError> {
    let m = &r.manifest;
    let mut layers = Vec::with_capacity(m.layers.len());
    for l in &m.layers {
        let compression = Compression::from_media_type(&l.media_type).ok_or_else(|| {
            ImageError::UnsupportedMediaType {
                at: t.at(),
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
            }
        })?;
        let digest = Digest::parse(&l.digest)
            .map_err(|e| t.invalid(format!("layer {}", l.digest), e.to_string()))?;
        layers.push((l.clone(), compression, digest));
    }
    let config_what = format!("config {}", m.config.digest);
    let config_digest = Digest::parse(&m.config.digest)
        .map_err(|e| t.invalid(config_what.clone(), e.to_string()))?;
    // The config downloads while the layers start: their diff ids are needed only to
    // key and verify a layer, not to request it, so the first layer bytes do not wait
    // for another registry round trip.
    let config = layer::config_future(t, &m.config, config_what, layers.len(), &r.manifest_digest);

    let mut blobs = vec![(r.manifest_digest.clone(), r.manifest_raw.clone())];
    if let Some((d, raw)) = &r.index {
        blobs.push((d.clone(), raw.clone()));
    }
    // The documents are stored while the layers download (each write is fsynced, which
    // would otherwise delay the first layer); both finish before the image record exists.
    let store = Arc::clone(&inner.store);
    let (config2, config_digest2) = (config.clone(), config_digest.clone());
    let put_blobs = async move {
        let fetched = config2.await.map_err(ImageError::Shared)?;
        blobs.push((config_digest2, fetched.raw));
        crate::blocking::run("put_blob", move || {
            for (d, b) in blobs {
                store
                    .put_blob(&d, &b)
                    .map_err(|e| ImageError::store(format!("put_blob {d}"), e))?;
            }
            Ok::<(), ImageError>(())
        })
        .await?
    };

    let started = Instant::now();
    let for_layers = config.clone();
    let jobs = layers
        .into_iter()
        .enumerate()
        .map(|(index, (desc, compression, digest))| {
            let want = layer::Wanted {
                desc,
                compression,
                digest,
                index,
            };
            layer::ensure_layer(inner, t, want, for_layers.clone())
        });
    let fetch_layers = futures::stream::iter(jobs)
        // Unordered: a layer that finishes frees its slot at once instead of waiting for
        // the earlier layers of the manifest (results are only summed).
        .buffer_unordered(inner.max_concurrent_downloads.max(1))
        .try_collect::<Vec<(u64, u64)>>();
    let (fetched, stored, sizes) = tokio::join!(config, put_blobs, fetch_layers);
    // A bad config fails every layer too: report the config itself.
    let diff_ids = fetched
        .map_err(|e| Arc::try_unwrap(e).unwrap_or_else(ImageError::Shared))?
        .diff_ids
        .to_vec();
    stored?;
    let sizes = sizes?;
    let size: u64 = sizes.iter().map(|(s, _)| s).sum();
    let downloaded: u64 = sizes.iter().map(|(_, d)| d).sum();

    let reference = &cand.reference;
    let record = ImageRecord {
        id: config_digest,
        manifest_digest: r.manifest_digest.clone(),
        repo_tags: reference.tagged_name().into_iter().collect(),
        repo_digests: vec![reference.digested_name(&r.repo_digest.to_string())],
        layers: diff_ids,
        size,
        created_unix_nanos: now_nanos(),
        pinned: false,
    };
    let store = Arc::clone(&inner.store);
    let sync_now = inner.pull_sync_fs;
    let record = crate::blocking::run("put_image", move || {
        // Layers are published unsynced (storage `layers.rs`) and made durable in the
        // background (`syncer.rs`): the record may reference them meanwhile, because
        // recovery drops an image whose layers a power loss could have torn. With
        // `pull_sync_fs` they are synced here, before the record exists.
        if sync_now {
            store
                .sync_layers(&record.layers)
                .map_err(|e| ImageError::store("sync layers", e))?;
        }
        store
            .put_image(record)
            .map_err(|e| ImageError::store("put_image", e))
    })
    .await??;
    if !sync_now {
        inner.syncer.enqueue(&inner.store, &record.layers);
    }
    tracing::info!(
        image_id = %record.id,
        registry = %t.registry,
        downloaded_bytes = downloaded,
        layers_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "image stored"
    );
    Ok(PulledImage { record, downloaded })
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn digest_errors_from_the_stream_are_lifted() {
        let e = io::Error::other(DigestError::VerificationError {
            expected: "sha256:aa".into(),
            actual: "sha256:bb".into(),
        });
        assert!(matches!(
            stream_error(e),
            OciDistributionError::DigestError(_)
        ));
        let e = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(stream_error(e), OciDistributionError::IoError(_)));
    }
}
