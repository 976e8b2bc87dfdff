//! The registry documents a pull reads: image indexes / Docker manifest lists, image
//! manifests (OCI image-spec v1 and Docker schema 2) and image configs, plus choosing the
//! host's platform out of an index.
//!
//! Only the fields crust needs are parsed, leniently (unknown fields are ignored, as the
//! OCI image spec requires of consumers). Docker schema 1 manifests are rejected: they are
//! deprecated and unsigned-content formats that containerd also refuses by default.

use serde::Deserialize;

/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// What the pull sends in `Accept` for manifests.
pub const ACCEPTED_MANIFESTS: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// A content descriptor (OCI image-spec descriptor.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    #[serde(default)]
    pub size: i64,
    /// Platform (index entries only).
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// A platform of an index entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub struct Platform {
    /// GOARCH-style architecture ("amd64", "arm64", "arm").
    #[serde(default)]
    pub architecture: String,
    /// GOOS-style OS ("linux").
    #[serde(default)]
    pub os: String,
    /// CPU variant ("v7", "v8").
    #[serde(default)]
    pub variant: Option<String>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    /// The per-platform manifests.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Must be 2.
    #[serde(default)]
    pub schema_version: i64,
    /// The image config.
    pub config: Descriptor,
    /// The layers, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The parts of an image config (OCI image-spec config.md) crust uses.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ImageConfig {
    /// Execution parameters.
    #[serde(default)]
    pub config: Option<ExecConfig>,
    /// The layer diff ids.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

/// `config` of an image config.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ExecConfig {
    /// `User`: "uid", "uid:gid", "name", "name:group" or empty.
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct RootFs {
    /// Uncompressed layer digests, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// What a fetched manifest document turned out to be.
#[derive(Debug)]
pub enum Document {
    /// An index / manifest list.
    Index(Index),
    /// A single-platform image manifest.
    Manifest(Manifest),
}

/// Classify and parse a manifest document. The `mediaType` field wins; when absent (it is
/// optional in OCI documents) the shape decides: `manifests` means an index, `config` a
/// manifest.
pub fn parse_document(raw: &[u8]) -> Result<Document, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        schema_version: Option<i64>,
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    let probe: Probe =
        serde_json::from_slice(raw).map_err(|e| format!("not a JSON manifest: {e}"))?;
    if probe.schema_version == Some(1) {
        return Err("docker schema 1 manifests are not supported".into());
    }
    let is_index = match probe.media_type.as_deref() {
        Some(OCI_INDEX) | Some(DOCKER_LIST) => true,
        Some(OCI_MANIFEST) | Some(DOCKER_MANIFEST) => false,
        Some(other) => return Err(format!("unsupported manifest media type `{other}`")),
        None if probe.manifests.is_some() => true,
        None if probe.config.is_some() => false,
        None => return Err("document is neither an image index nor an image manifest".into()),
    };
    if is_index {
        serde_json::from_slice(raw)
            .map(Document::Index)
            .map_err(|e| format!("invalid image index: {e}"))
    } else {
        let m: Manifest =
            serde_json::from_slice(raw).map_err(|e| format!("invalid image manifest: {e}"))?;
        if m.schema_version != 2 {
            return Err(format!(
                "unsupported manifest schemaVersion {}",
                m.schema_version
            ));
        }
        Ok(Document::Manifest(m))
    }
}

/// The platform crust runs images for: linux and the GOARCH name of this build's CPU
/// architecture (containerd's `platforms.DefaultSpec()`).
pub fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "loongarch64" => ("loong64", None),
        other => (other, None),
    };
    Platform {
        architecture: architecture.to_string(),
        os: "linux".to_string(),
        variant: variant.map(str::to_string),
    }
}

/// Pick the manifest for `want` out of an index, following containerd's platform matcher:
/// os and architecture must match; an exact variant match is preferred, then an entry without
/// a variant (for arm64 "v8" and no variant are equivalent). Entries without a platform
/// (attestations, artifacts) are never chosen.
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    let norm = |arch: &str, v: Option<&str>| -> Option<String> {
        match (arch, v) {
            ("arm64", Some("v8")) | (_, Some("")) => None,
            (_, v) => v.map(str::to_string),
        }
    };
    let want_variant = norm(&want.architecture, want.variant.as_deref());
    let candidates = index.manifests.iter().filter(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
    });
    let mut fallback = None;
    for d in candidates {
        let Some(p) = d.platform.as_ref() else {
            continue;
        };
        let variant = norm(&p.architecture, p.variant.as_deref());
        if variant == want_variant {
            return Some(d);
        }
        if variant.is_none() && fallback.is_none() {
            fallback = Some(d);
        }
    }
    fallback
}

/// "os/arch[/variant]" of every entry, for the "no matching platform" error.
pub fn platforms_of(index: &Index) -> Vec<String> {
    index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(platform_string)
        .collect()
}

/// "os/arch[/variant]".
pub fn platform_string(p: &Platform) -> String {
    match &p.variant {
        Some(v) if !v.is_empty() => format!("{}/{}/{}", p.os, p.architecture, v),
        _ => format!("{}/{}", p.os, p.architecture),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crust_storage::Compression;

    fn index(entries: &[(&str, &str, Option<&str>, &str)]) -> Index {
        Index {
            manifests: entries
                .iter()
                .map(|(os, arch, variant, digest)| Descriptor {
                    media_type: OCI_MANIFEST.into(),
                    digest: (*digest).into(),
                    size: 1,
                    platform: Some(Platform {
                        os: (*os).into(),
                        architecture: (*arch).into(),
                        variant: variant.map(str::to_string),
                    }),
                })
                .collect(),
        }
    }

    fn plat(arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
        }
    }

    #[test]
    fn selects_os_and_arch() {
        let idx = index(&[
            ("windows", "amd64", None, "w"),
            ("linux", "arm64", Some("v8"), "a"),
            ("linux", "amd64", None, "x"),
        ]);
        assert_eq!(
            select_platform(&idx, &plat("amd64", None)).unwrap().digest,
            "x"
        );
        assert_eq!(
            select_platform(&idx, &plat("arm64", Some("v8")))
                .unwrap()
                .digest,
            "a"
        );
        assert!(select_platform(&idx, &plat("s390x", None)).is_none());
    }

    #[test]
    fn arm_variants() {
        let idx = index(&[
            ("linux", "arm", Some("v6"), "v6"),
            ("linux", "arm", Some("v7"), "v7"),
            ("linux", "arm64", None, "a64"),
        ]);
        assert_eq!(
            select_platform(&idx, &plat("arm", Some("v7")))
                .unwrap()
                .digest,
            "v7"
        );
        // arm64 "v8" and no variant are the same thing.
        assert_eq!(
            select_platform(&idx, &plat("arm64", Some("v8")))
                .unwrap()
                .digest,
            "a64"
        );
        let only_plain = index(&[("linux", "arm", None, "plain")]);
        assert_eq!(
            select_platform(&only_plain, &plat("arm", Some("v7")))
                .unwrap()
                .digest,
            "plain"
        );
        let only_v6 = index(&[("linux", "arm", Some("v6"), "v6")]);
        assert!(select_platform(&only_v6, &plat("arm", Some("v7"))).is_none());
    }

    #[test]
    fn entries_without_platform_are_skipped() {
        let mut idx = index(&[("linux", "amd64", None, "x")]);
        idx.manifests.insert(
            0,
            Descriptor {
                media_type: OCI_MANIFEST.into(),
                digest: "att".into(),
                size: 1,
                platform: None,
            },
        );
        assert_eq!(
            select_platform(&idx, &plat("amd64", None)).unwrap().digest,
            "x"
        );
        assert_eq!(platforms_of(&idx), vec!["linux/amd64".to_string()]);
    }

    #[test]
    fn host_platform_is_linux() {
        let p = host_platform();
        assert_eq!(p.os, "linux");
        assert!(!p.architecture.is_empty());
        if cfg!(target_arch = "x86_64") {
            assert_eq!(p.architecture, "amd64");
        }
    }

    #[test]
    fn classifies_documents() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        assert!(matches!(parse_document(idx).unwrap(), Document::Index(_)));
        let oci_idx_no_mt = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            parse_document(oci_idx_no_mt).unwrap(),
            Document::Index(_)
        ));
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:00","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:11","size":3}]}"#;
        match parse_document(m).unwrap() {
            Document::Manifest(m) => assert_eq!(m.layers.len(), 1),
            Document::Index(_) => panic!("manifest parsed as index"),
        }
        let v1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(parse_document(v1).unwrap_err().contains("schema 1"));
        let odd = br#"{"schemaVersion":2,"mediaType":"application/vnd.example+json"}"#;
        assert!(
            parse_document(odd)
                .unwrap_err()
                .contains("application/vnd.example+json")
        );
        assert!(parse_document(b"not json").is_err());
    }

    #[test]
    fn layer_media_types() {
        for (mt, c) in [
            ("application/vnd.oci.image.layer.v1.tar", Compression::None),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Gzip,
            ),
        ] {
            assert_eq!(Compression::from_media_type(mt), Some(c), "{mt}");
        }
        assert_eq!(
            Compression::from_media_type("application/vnd.example.layer+lz4"),
            None
        );
    }

    #[test]
    fn config_user_and_diff_ids() {
        let cfg: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","config":{"User":"1003:33","Env":["A=b"]},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#,
        )
        .unwrap();
        assert_eq!(cfg.config.unwrap().user.as_deref(), Some("1003:33"));
        assert_eq!(cfg.rootfs.unwrap().diff_ids, vec!["sha256:aa".to_string()]);
        let empty: ImageConfig = serde_json::from_str("{}").unwrap();
        assert!(empty.config.is_none());
    }
}
