//! The daemon's view of its pods and containers: an in-memory index over persistent
//! records, and the name reservations that make `RunPodSandbox`/`CreateContainer`
//! answer AlreadyExists.
//!
//! Locking, so that StopContainer's grace period never blocks List/Status (issue 3):
//! the index and each record sit behind short `std::sync::Mutex`es that are never held
//! across an `.await`; lifecycle operations on one object serialise on that object's own
//! `tokio::sync::Mutex` (`op`), which readers never take.

pub mod persist;
pub mod records;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crust_proto::cri;
use prost::Message as _;

pub use persist::PersistError;
pub use records::{ContainerRecord, ContainerState, PauseRecord, PidMode, PodRecord, PodState};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data; keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A pod sandbox.
pub struct Pod {
    /// Pod id.
    pub id: String,
    /// The CRI config it was created with (immutable).
    pub config: cri::PodSandboxConfig,
    record: Mutex<PodRecord>,
    /// Serialises lifecycle operations (stop, remove, container create) on this pod.
    pub op: tokio::sync::Mutex<()>,
    /// Serialises writes of the record file, so the newest snapshot is the one on disk.
    pub save: tokio::sync::Mutex<()>,
}

impl Pod {
    /// Wrap a record; fails when its config bytes do not decode.
    pub fn new(record: PodRecord) -> Result<Self, prost::DecodeError> {
        let config = cri::PodSandboxConfig::decode(record.config.as_slice())?;
        Ok(Self {
            id: record.id.clone(),
            config,
            record: Mutex::new(record),
            op: tokio::sync::Mutex::new(()),
            save: tokio::sync::Mutex::new(()),
        })
    }

    /// A snapshot of the record.
    pub fn record(&self) -> PodRecord {
        lock(&self.record).clone()
    }

    /// Change the record in memory; returns the new snapshot to persist.
    pub fn update(&self, f: impl FnOnce(&mut PodRecord)) -> PodRecord {
        let mut r = lock(&self.record);
        f(&mut r);
        r.clone()
    }

    /// The key under which the pod's name is reserved: CRI identifies a pod by its
    /// metadata (name, namespace, uid, attempt), as CRI-O's `k8s_POD_...` names do.
    pub fn name_key(meta: &cri::PodSandboxMetadata) -> String {
        format!(
            "{}_{}_{}_{}",
            meta.name, meta.namespace, meta.uid, meta.attempt
        )
    }
}

/// A container.
pub struct Container {
    /// Container id.
    pub id: String,
    /// Pod id.
    pub pod_id: String,
    /// The CRI config it was created with (immutable).
    pub config: cri::ContainerConfig,
    record: Mutex<ContainerRecord>,
    /// Serialises lifecycle operations on this container.
    pub op: tokio::sync::Mutex<()>,
    /// Serialises writes of the record file (the exit watcher and StartContainer may
    /// both save), so the newest snapshot is the one on disk.
    pub save: tokio::sync::Mutex<()>,
    exited: tokio::sync::watch::Sender<bool>,
}

impl Container {
    /// Wrap a record; fails when its config bytes do not decode.
    pub fn new(record: ContainerRecord) -> Result<Self, prost::DecodeError> {
        let config = cri::ContainerConfig::decode(record.config.as_slice())?;
        let (exited, _) = tokio::sync::watch::channel(record.state == ContainerState::Exited);
        Ok(Self {
            id: record.id.clone(),
            pod_id: record.pod_id.clone(),
            config,
            record: Mutex::new(record),
            op: tokio::sync::Mutex::new(()),
            save: tokio::sync::Mutex::new(()),
            exited,
        })
    }

    /// A snapshot of the record.
    pub fn record(&self) -> ContainerRecord {
        lock(&self.record).clone()
    }

    /// Change the record in memory; returns the new snapshot to persist.
    pub fn update(&self, f: impl FnOnce(&mut ContainerRecord)) -> ContainerRecord {
        let mut r = lock(&self.record);
        f(&mut r);
        if r.state == ContainerState::Exited {
            self.exited.send_replace(true);
        }
        r.clone()
    }

    /// Resolves once the container has exited (at once if it already has).
    pub async fn wait_exited(&self) {
        let mut rx = self.exited.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we borrow it.
        let _ = rx.wait_for(|e| *e).await;
    }

    /// The key under which the container's name is reserved within its pod.
    pub fn name_key(pod_id: &str, meta: &cri::ContainerMetadata) -> String {
        format!("{pod_id}_{}_{}", meta.name, meta.attempt)
    }
}

#[derive(Default)]
struct Index {
    pods: HashMap<String, Arc<Pod>>,
    containers: HashMap<String, Arc<Container>>,
    /// name key -> id of the holder.
    names: HashMap<String, String>,
}

/// Where records live and the in-memory index.
pub struct StateStore {
    pods_dir: PathBuf,
    containers_dir: PathBuf,
    index: Mutex<Index>,
}

/// A name is reserved by another pod or container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTaken {
    /// The id holding the name.
    pub holder: String,
}

/// An id prefix matched nothing or several objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// Exactly one match.
    Found(T),
    /// No match.
    NotFound,
    /// Several ids start with the prefix.
    Ambiguous(Vec<String>),
}

fn find<T: Clone>(map: &HashMap<String, T>, id: &str) -> Lookup<T> {
    if id.is_empty() {
        return Lookup::NotFound;
    }
    if let Some(v) = map.get(id) {
        return Lookup::Found(v.clone());
    }
    let hits: Vec<(&String, &T)> = map.iter().filter(|(k, _)| k.starts_with(id)).collect();
    match hits.as_slice() {
        [] => Lookup::NotFound,
        [(_, v)] => Lookup::Found((*v).clone()),
        many => Lookup::Ambiguous(many.iter().map(|(k, _)| (*k).clone()).collect()),
    }
}

impl StateStore {
    /// Records below `root` (`<root>/pods`, `<root>/containers`), created if missing.
    pub fn open(root: &Path) -> Result<Self, PersistError> {
        let pods_dir = root.join("pods");
        let containers_dir = root.join("containers");
        for d in [&pods_dir, &containers_dir] {
            std::fs::create_dir_all(d).map_err(|source| PersistError::Io {
                op: "create directory",
                path: d.clone(),
                source,
            })?;
        }
        Ok(Self {
            pods_dir,
            containers_dir,
            index: Mutex::new(Index::default()),
        })
    }

    /// Read every persisted record (restart). Bad files come back as errors to log.
    pub fn load(&self) -> (Vec<PodRecord>, Vec<ContainerRecord>, Vec<PersistError>) {
        let mut errors = Vec::new();
        let mut pods = Vec::new();
        for r in persist::load_all::<PodRecord>(&self.pods_dir) {
            match r {
                Ok(p) => pods.push(p),
                Err(e) => errors.push(e),
            }
        }
        let mut ctrs = Vec::new();
        for r in persist::load_all::<ContainerRecord>(&self.containers_dir) {
            match r {
                Ok(c) => ctrs.push(c),
                Err(e) => errors.push(e),
            }
        }
        (pods, ctrs, errors)
    }

    /// Reserve `key` for `id`.
    pub fn reserve_name(&self, key: &str, id: &str) -> Result<(), NameTaken> {
        let mut ix = lock(&self.index);
        if let Some(holder) = ix.names.get(key) {
            return Err(NameTaken {
                holder: holder.clone(),
            });
        }
        ix.names.insert(key.to_string(), id.to_string());
        Ok(())
    }

    /// Release `key` if `id` holds it.
    pub fn release_name(&self, key: &str, id: &str) {
        let mut ix = lock(&self.index);
        if ix.names.get(key).is_some_and(|h| h == id) {
            ix.names.remove(key);
        }
    }

    /// Add a pod to the index.
    pub fn insert_pod(&self, pod: Arc<Pod>) {
        lock(&self.index).pods.insert(pod.id.clone(), pod);
    }

    /// Add a container to the index.
    pub fn insert_container(&self, c: Arc<Container>) {
        lock(&self.index).containers.insert(c.id.clone(), c);
    }

    /// Drop a pod from the index.
    pub fn remove_pod(&self, id: &str) {
        lock(&self.index).pods.remove(id);
    }

    /// Drop a container from the index.
    pub fn remove_container(&self, id: &str) {
        lock(&self.index).containers.remove(id);
    }

    /// Find a pod by id or unique id prefix.
    pub fn pod(&self, id: &str) -> Lookup<Arc<Pod>> {
        find(&lock(&self.index).pods, id)
    }

    /// Find a container by id or unique id prefix.
    pub fn container(&self, id: &str) -> Lookup<Arc<Container>> {
        find(&lock(&self.index).containers, id)
    }

    /// All pods.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        lock(&self.index).pods.values().cloned().collect()
    }

    /// All containers.
    pub fn containers(&self) -> Vec<Arc<Container>> {
        lock(&self.index).containers.values().cloned().collect()
    }

    /// Containers of one pod.
    pub fn pod_containers(&self, pod_id: &str) -> Vec<Arc<Container>> {
        lock(&self.index)
            .containers
            .values()
            .filter(|c| c.pod_id == pod_id)
            .cloned()
            .collect()
    }

    /// Persist a pod record (blocking: call through `blocking::run`). Pod records are
    /// always durable: they are written on create and stop only.
    pub fn save_pod(&self, r: &PodRecord) -> Result<(), PersistError> {
        persist::save(&self.pods_dir, &r.id, r, true)
    }

    /// Persist a container record (blocking). `durable` adds fsyncs; the daemon does not
    /// ask for them: a record only has to survive a daemon crash (rename is atomic and the
    /// page cache outlives the process), because the runtime state it describes does not
    /// survive a reboot, and recovery re-derives exits from the exit files.
    pub fn save_container(&self, r: &ContainerRecord, durable: bool) -> Result<(), PersistError> {
        persist::save(&self.containers_dir, &r.id, r, durable)
    }

    /// Delete a pod record (blocking).
    pub fn delete_pod(&self, id: &str) -> Result<(), PersistError> {
        persist::delete(&self.pods_dir, id)
    }

    /// Delete a container record (blocking).
    pub fn delete_container(&self, id: &str) -> Result<(), PersistError> {
        persist::delete(&self.containers_dir, id)
    }
}

/// A new random 64-hex-character id, as CRI-O and containerd generate.
pub fn new_id() -> String {
    let mut buf = [0u8; 32];
    if rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty()).is_err() {
        // getrandom cannot fail on Linux >= 3.17 with a buffer this small; fall back to
        // time and pid so an id is still unique on this node.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        buf[..16].copy_from_slice(&t.to_le_bytes());
        buf[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    hex::encode(buf)
}

/// Nanoseconds since the epoch.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lookup() {
        let mut m = HashMap::new();
        m.insert("abc1".to_string(), 1);
        m.insert("abc2".to_string(), 2);
        assert_eq!(find(&m, "abc1"), Lookup::Found(1));
        assert_eq!(find(&m, "abc2"), Lookup::Found(2));
        assert!(matches!(find(&m, "abc"), Lookup::Ambiguous(v) if v.len() == 2));
        assert_eq!(find(&m, "x"), Lookup::NotFound);
        assert_eq!(find(&m, ""), Lookup::NotFound);
    }

    #[test]
    fn ids_are_unique_hex() {
        let a = new_id();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_id());
    }

    #[test]
    fn names_reserve_and_release() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::open(d.path()).unwrap();
        s.reserve_name("k", "a").unwrap();
        assert_eq!(
            s.reserve_name("k", "b"),
            Err(NameTaken { holder: "a".into() })
        );
        s.release_name("k", "b");
        assert!(s.reserve_name("k", "b").is_err());
        s.release_name("k", "a");
        s.reserve_name("k", "b").unwrap();
    }
}
