//! Builds OCI / Docker schema2 test images in memory (tar layers from busybox-static,
//! whiteouts, hardlinks, gzip or zstd compression, multi-platform indexes) and pushes them
//! to a [`Registry`]. Everything is deterministic (fixed mtimes) so digests are stable.

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::registry::Registry;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comp {
    Gzip,
    Zstd,
}

/// A finished layer: uncompressed tar digest (diff id) and compressed blob.
#[derive(Debug, Clone)]
pub struct Layer {
    pub diff_id: String,
    pub blob: Vec<u8>,
    pub digest: String,
    pub comp: Comp,
}

impl Layer {
    pub fn diff_hex(&self) -> &str {
        self.diff_id.trim_start_matches("sha256:")
    }
}

/// Builds one layer tar.
pub struct LayerBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl LayerBuilder {
    pub fn new() -> Self {
        Self {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn dir(mut self, path: &str) -> Result<Self> {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        self.b.append_data(&mut h, path, std::io::empty())?;
        Ok(self)
    }

    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Result<Self> {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        self.b.append_data(&mut h, path, data)?;
        Ok(self)
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Result<Self> {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target)?;
        Ok(self)
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Result<Self> {
        let mut h = header(tar::EntryType::Link, 0o644, 0);
        self.b.append_link(&mut h, path, target)?;
        Ok(self)
    }

    /// `dir/.wh.name`: deletes `dir/name` of lower layers (OCI image spec, layer.md).
    pub fn whiteout(self, path: &str) -> Result<Self> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, b"", 0o644)
    }

    /// `dir/.wh..wh..opq`: hides everything lower layers have in `dir`.
    pub fn opaque(self, dir: &str) -> Result<Self> {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    pub fn finish(self, comp: Comp) -> Result<Layer> {
        let tar = self.b.into_inner()?;
        compress_layer(&tar, comp)
    }
}

/// Compress a finished tar into a layer blob.
pub fn compress_layer(tar: &[u8], comp: Comp) -> Result<Layer> {
    let blob = match comp {
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(tar)?;
            e.finish()?
        }
        Comp::Zstd => zstd::stream::encode_all(tar, 3)?,
    };
    Ok(Layer {
        diff_id: sha256_digest(tar),
        digest: sha256_digest(&blob),
        blob,
        comp,
    })
}

/// A base layer: busybox-static with applet symlinks, /etc/passwd and /etc/group.
pub fn busybox_layer() -> Result<Layer> {
    let bb = std::fs::read("/bin/busybox")
        .context("/bin/busybox is missing: run `make test-deps` (busybox-static)")?;
    let mut l = LayerBuilder::new()
        .dir("bin")?
        .dir("etc")?
        .dir("tmp")?
        .file("bin/busybox", &bb, 0o755)?;
    for applet in ["sh", "ls", "cat", "echo", "id", "sleep", "true"] {
        l = l.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    l.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        0o644,
    )?
    .file("etc/group", b"root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n", 0o644)?
    .finish(Comp::Gzip)
}

/// Host architecture in OCI/Go spelling.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

/// An image (config + manifest) ready to push.
#[derive(Debug, Clone)]
pub struct Image {
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub media_type: &'static str,
}

impl Image {
    /// CRI image id / PullImage `image_ref`: `sha256:<config digest hex>`.
    pub fn id(&self) -> &str {
        &self.config_digest
    }
}

/// Options for [`build_image`].
#[derive(Debug, Clone, Default)]
pub struct ImageOpts {
    pub user: Option<String>,
    pub docker: bool,
    pub arch: Option<String>,
    pub variant: Option<String>,
    /// Override the config's diff ids (to build an image that lies).
    pub diff_ids: Option<Vec<String>>,
    /// Distinguishes otherwise equal configs.
    pub label: Option<String>,
    /// Image config `StopSignal` (e.g. "SIGUSR1").
    pub stop_signal: Option<String>,
}

pub fn build_image(layers: Vec<Layer>, o: &ImageOpts) -> Result<Image> {
    let arch = o.arch.clone().unwrap_or_else(|| host_arch().to_string());
    let diff_ids = o
        .diff_ids
        .clone()
        .unwrap_or_else(|| layers.iter().map(|l| l.diff_id.clone()).collect());
    let mut cfg = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"test": o.label.clone().unwrap_or_default()},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    if let Some(v) = &o.variant {
        cfg["variant"] = json!(v);
    }
    if let Some(u) = &o.user {
        cfg["config"]["User"] = json!(u);
    }
    if let Some(sig) = &o.stop_signal {
        cfg["config"]["StopSignal"] = json!(sig);
    }
    let config = serde_json::to_vec(&cfg)?;
    let config_digest = sha256_digest(&config);
    let (media_type, cfg_type) = if o.docker {
        (DOCKER_MANIFEST, DOCKER_CONFIG)
    } else {
        (OCI_MANIFEST, OCI_CONFIG)
    };
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| {
            let mt = match (o.docker, l.comp) {
                (true, _) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
                (false, Comp::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
                (false, Comp::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            json!({"mediaType": mt, "digest": l.digest, "size": l.blob.len()})
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": cfg_type, "digest": config_digest, "size": config.len()},
        "layers": layer_descs,
    }))?;
    Ok(Image {
        manifest_digest: sha256_digest(&manifest),
        layers,
        config,
        config_digest,
        manifest,
        media_type,
    })
}

/// Push blobs, config and manifest of `img` as `repo:reference`.
pub fn push_image(reg: &Registry, repo: &str, reference: &str, img: &Image) -> Result<()> {
    for l in &img.layers {
        reg.push_blob(repo, &l.blob)?;
    }
    reg.push_blob(repo, &img.config)?;
    reg.push_manifest(repo, reference, img.media_type, &img.manifest)?;
    Ok(())
}

/// Push a multi-platform OCI index: the host platform gets `host`, linux/amd64, linux/arm64
/// and linux/arm/v7 (whichever is not the host) get small placeholder images.
/// Returns the index digest.
pub fn push_index(reg: &Registry, repo: &str, tag: &str, host: &Image) -> Result<String> {
    push_image(reg, repo, &host.manifest_digest, host)?;
    let mut entries = vec![json!({
        "mediaType": host.media_type, "digest": host.manifest_digest, "size": host.manifest.len(),
        "platform": {"architecture": host_arch(), "os": "linux"},
    })];
    for (arch, variant) in [("amd64", None), ("arm64", None), ("arm", Some("v7"))] {
        if arch == host_arch() {
            continue;
        }
        let layer = LayerBuilder::new()
            .file(&format!("platform-{arch}"), arch.as_bytes(), 0o644)?
            .finish(Comp::Gzip)?;
        let img = build_image(
            vec![layer],
            &ImageOpts {
                arch: Some(arch.into()),
                variant: variant.map(str::to_string),
                ..Default::default()
            },
        )?;
        push_image(reg, repo, &img.manifest_digest, &img)?;
        let mut platform = json!({"architecture": arch, "os": "linux"});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        entries.push(json!({
            "mediaType": img.media_type, "digest": img.manifest_digest, "size": img.manifest.len(),
            "platform": platform,
        }));
    }
    // Put the host platform in the middle so "first entry" logic is caught.
    entries.rotate_left(1);
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
    )?;
    reg.push_manifest(repo, tag, OCI_INDEX, &index)
}
