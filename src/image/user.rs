//! The image's default user as CRI reports it, and the verbose `info` of `ImageStatus`.
//!
//! CRI api.proto (`Image.uid` / `Image.username`): "UID that will run the command(s). This
//! is used as a default if no user is specified when creating the container. UID and the
//! following user name are mutually exclusive." containerd derives them from the config's
//! `User`: the part before any ':' is a uid if it parses as an integer, else a user name;
//! an empty `User` sets neither. crust follows that exactly.

use crust_storage::{Digest, ImageRecord, chain_ids};

/// The default user of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUser {
    /// `User` is empty or absent.
    None,
    /// Numeric user: CRI `uid`.
    Uid(i64),
    /// Named user: CRI `username`.
    Username(String),
}

/// Derive the CRI uid/username from an image config's `User` field.
pub fn image_user(user: &str) -> ImageUser {
    let name = user.split(':').next().unwrap_or_default();
    if name.is_empty() {
        return ImageUser::None;
    }
    match name.parse::<i64>() {
        Ok(uid) => ImageUser::Uid(uid),
        Err(_) => ImageUser::Username(name.to_string()),
    }
}

/// The JSON put under key "info" of a verbose `ImageStatus`, shaped like containerd's:
/// the image config as `imageSpec` plus where the image came from.
pub fn verbose_info(record: &ImageRecord, config: &serde_json::Value) -> String {
    let chain: Vec<String> = chain_ids(&record.layers)
        .iter()
        .map(Digest::to_string)
        .collect();
    let layers: Vec<String> = record.layers.iter().map(Digest::to_string).collect();
    let info = serde_json::json!({
        "imageSpec": config,
        "manifestDigest": record.manifest_digest.to_string(),
        "chainIDs": chain,
        "layers": layers,
        "repoTags": record.repo_tags,
        "repoDigests": record.repo_digests,
        "pinned": record.pinned,
    });
    info.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn user_table() {
        let cases: &[(&str, ImageUser)] = &[
            ("", ImageUser::None),
            ("0", ImageUser::Uid(0)),
            ("1003", ImageUser::Uid(1003)),
            ("1003:33", ImageUser::Uid(1003)),
            ("www-data", ImageUser::Username("www-data".into())),
            ("www-data:www-data", ImageUser::Username("www-data".into())),
            ("nobody:65534", ImageUser::Username("nobody".into())),
            (":33", ImageUser::None),
            ("1a", ImageUser::Username("1a".into())),
        ];
        for (input, want) in cases {
            assert_eq!(&image_user(input), want, "User={input:?}");
        }
    }

    #[test]
    fn verbose_info_has_image_spec() {
        let d = Digest::sha256_of(b"layer");
        let record = ImageRecord {
            id: Digest::sha256_of(b"config"),
            manifest_digest: Digest::sha256_of(b"manifest"),
            repo_tags: vec!["docker.io/library/busybox:latest".into()],
            repo_digests: vec![],
            layers: vec![d.clone()],
            size: 10,
            created_unix_nanos: 0,
            pinned: false,
        };
        let cfg = serde_json::json!({"config": {"User": "1"}});
        let v: serde_json::Value = serde_json::from_str(&verbose_info(&record, &cfg)).unwrap();
        assert_eq!(v["imageSpec"]["config"]["User"], "1");
        assert_eq!(v["chainIDs"][0], d.to_string());
        assert_eq!(
            v["manifestDigest"],
            Digest::sha256_of(b"manifest").to_string()
        );
    }
}
