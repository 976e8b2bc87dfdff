//! The attachment cache: one JSON file per attached pod, `<cache_dir>/<pod id>.json`,
//! holding exactly what `DEL` (and `CHECK`) need to repeat the ADD's inputs: the network
//! config file's bytes, the interface name, netns, `CNI_ARGS`, the runtime config given to
//! plugins, and the ADD result (libcni keeps the same in `/var/lib/cni/results`).
//!
//! The record is written in state `adding` before the first plugin runs and rewritten as
//! `added` with the result afterwards, so a daemon that dies mid-ADD still finds what to
//! DEL on restart (start-up GC). Files are replaced atomically
//! ([`crate::atomic_file`]) without fsync: a crash of the daemon keeps the page cache, and
//! after a power loss a lost record costs at most one IP lease in host-local's store,
//! which plugins' own files are no more durable against.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::NetworkError;

/// Progress of an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachState {
    /// ADD started; no result yet.
    Adding,
    /// ADD succeeded; `result` is set.
    Added,
}

/// One pod's attachment to one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Pod id (`CNI_CONTAINERID`).
    pub pod_id: String,
    /// Network name.
    pub network: String,
    /// File the config came from.
    pub config_file: PathBuf,
    /// That file's exact bytes when ADD ran.
    pub config: String,
    /// Whether it was a `.conflist`.
    pub is_list: bool,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_NETNS` at ADD time.
    pub netns: PathBuf,
    /// `CNI_ARGS`.
    pub cni_args: String,
    /// Runtime capability values (`runtimeConfig` source).
    #[serde(default)]
    pub runtime_config: Map<String, Value>,
    /// Progress.
    pub state: AttachState,
    /// The final ADD result, as the last plugin printed it.
    #[serde(default)]
    pub result: Option<Value>,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// Pod ids are crust's own 64-hex ids; anything else is refused as a file name.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Cache {
    /// Open (create) the cache directory.
    pub fn open(dir: &Path) -> Result<Self, NetworkError> {
        std::fs::create_dir_all(dir).map_err(|source| NetworkError::Cache {
            op: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, pod_id: &str) -> Result<PathBuf, NetworkError> {
        if !valid_id(pod_id) {
            return Err(NetworkError::InvalidArgument {
                field: "pod id".into(),
                value: pod_id.into(),
                reason: "not a crust pod id".into(),
            });
        }
        Ok(self.dir.join(format!("{pod_id}.json")))
    }

    /// Write (replace) a pod's record.
    pub fn save(&self, a: &Attachment) -> Result<(), NetworkError> {
        let path = self.path(&a.pod_id)?;
        let data = serde_json::to_vec(a).map_err(|e| NetworkError::CacheCorrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        crate::atomic_file::write(&path, &data, false)?;
        Ok(())
    }

    /// A pod's record, if it has one.
    pub fn load(&self, pod_id: &str) -> Result<Option<Attachment>, NetworkError> {
        let path = self.path(pod_id)?;
        match std::fs::read(&path) {
            Ok(b) => read(&path, &b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(NetworkError::Cache {
                op: "read",
                path,
                source,
            }),
        }
    }

    /// Remove a pod's record (missing is fine).
    pub fn remove(&self, pod_id: &str) -> Result<(), NetworkError> {
        let path = self.path(pod_id)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetworkError::Cache {
                op: "remove",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Every record, plus the files that could not be read.
    pub fn list(&self) -> (Vec<Attachment>, Vec<NetworkError>) {
        let mut out = Vec::new();
        let mut errs = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return (out, errs);
        };
        for e in rd.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                // Temp files of an interrupted atomic write.
                if name.starts_with('.') && name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            };
            if !valid_id(id) {
                continue;
            }
            match std::fs::read(&path) {
                Ok(b) => match read(&path, &b) {
                    Ok(a) => out.push(a),
                    Err(err) => errs.push(err),
                },
                Err(source) => errs.push(NetworkError::Cache {
                    op: "read",
                    path,
                    source,
                }),
            }
        }
        out.sort_by(|a, b| a.pod_id.cmp(&b.pod_id));
        (out, errs)
    }
}

fn read(path: &Path, b: &[u8]) -> Result<Attachment, NetworkError> {
    serde_json::from_slice(b).map_err(|e| NetworkError::CacheCorrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn att(id: &str) -> Attachment {
        Attachment {
            pod_id: id.into(),
            network: "n".into(),
            config_file: "/etc/cni/net.d/10.conflist".into(),
            config: "{}".into(),
            is_list: true,
            ifname: "eth0".into(),
            netns: "/run/crust/pods/x/ns/net".into(),
            cni_args: "IgnoreUnknown=1".into(),
            runtime_config: Map::new(),
            state: AttachState::Adding,
            result: None,
        }
    }

    #[test]
    fn save_load_list_remove() {
        let t = tempfile::tempdir().unwrap();
        let c = Cache::open(&t.path().join("cni")).unwrap();
        assert_eq!(c.load("abc").unwrap(), None);
        let mut a = att("abc");
        c.save(&a).unwrap();
        a.state = AttachState::Added;
        a.result = Some(serde_json::json!({"cniVersion": "1.0.0"}));
        c.save(&a).unwrap();
        assert_eq!(c.load("abc").unwrap(), Some(a.clone()));
        c.save(&att("def")).unwrap();
        std::fs::write(c.dir().join("bad.json"), "{").unwrap();
        std::fs::write(c.dir().join(".x.1.2.tmp"), "").unwrap();
        let (all, errs) = c.list();
        assert_eq!(
            all.iter().map(|a| a.pod_id.as_str()).collect::<Vec<_>>(),
            ["abc", "def"]
        );
        assert_eq!(errs.len(), 1);
        assert!(!c.dir().join(".x.1.2.tmp").exists());
        c.remove("abc").unwrap();
        c.remove("abc").unwrap();
        assert_eq!(c.load("abc").unwrap(), None);
        assert!(c.load("../etc/passwd").is_err());
    }
}
