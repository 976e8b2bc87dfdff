//! The hook directories: loading, masking, ordering and reloading.
//!
//! - Directories are read in the configured order; a `*.json` file in a later directory
//!   masks the file with the same name in an earlier one (oci-hooks(5): CRI-O and Podman
//!   list `/usr/share/containers/oci/hooks.d` then `/etc/containers/oci/hooks.d`, so the
//!   administrator's `/etc` wins over the package's `/usr/share`). Masking is by name
//!   alone: a malformed file still masks, because it is the administrator's latest word
//!   for that name and silently running the hook it was meant to replace would surprise.
//! - Hooks are applied in file-name order across all directories (byte order, Go's
//!   `sort.Strings` upstream); within a stage, earlier names run first.
//! - Missing directories are normal (the defaults rarely both exist) and not logged.
//! - A file that cannot be read or validated is skipped with a `warn` naming the file and
//!   the error; the others keep working, and no container is refused because of it.
//!
//! **Reloading.** Instead of an inotify thread (containers/common's `Monitor`), every
//! [`HookManager::hooks`] call re-lists the directories and `stat`s each `*.json` file;
//! files are parsed again only when that fingerprint (file names, and each file's device,
//! inode, size, mtime and ctime) differs from the last load, and then only the files whose
//! own `stat` changed. Why: it costs tens of microseconds per `CreateContainer` (about one
//! bare `read_dir` + `stat` pass, see `benches/`; `runc create` takes ~50 ms), needs no thread,
//! no watch descriptors and no event-ordering logic, works for directories created after
//! start-up (inotify cannot watch a path that does not exist yet) and for symlinked files
//! and NFS; and a change is guaranteed visible to the very next container, where an
//! inotify watcher races with the create that follows the write. ctime is included so an
//! in-place edit that keeps size and mtime (`touch -r`) is still noticed.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::matching::MatchInput;
use crate::schema::{Hook, HookFile, Stage};

/// The default hook directories, lowest precedence first (CRI-O's `hooks_dir` default).
pub const DEFAULT_HOOK_DIRS: [&str; 2] = [
    "/usr/share/containers/oci/hooks.d",
    "/etc/containers/oci/hooks.d",
];

/// A valid hook file in effect.
#[derive(Debug, Clone)]
pub struct LoadedHook {
    /// File name (the ordering and masking key), e.g. `01-nvidia.json`.
    pub name: String,
    /// Where it was read from.
    pub file: PathBuf,
    /// Its contents.
    pub hook: HookFile,
}

/// The hooks to inject into one container, per stage, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageHooks {
    by_stage: BTreeMap<Stage, Vec<Hook>>,
    names: Vec<String>,
}

impl StageHooks {
    /// The hooks of `stage`, in order.
    pub fn stage(&self, stage: Stage) -> &[Hook] {
        self.by_stage.get(&stage).map(Vec::as_slice).unwrap_or(&[])
    }

    /// No hook matched.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// File names of the matched hooks, in order (for logs).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// One directory entry's identity, as far as reloading cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// A directory that exists but cannot be listed.
    DirError(usize, std::io::ErrorKind),
    /// A `*.json` entry of directory `dir` and its `stat` (or why `stat` failed).
    File {
        dir: usize,
        name: OsString,
        stat: Result<Stat, std::io::ErrorKind>,
    },
}

#[derive(Default)]
struct Cache {
    fingerprint: Option<Vec<Seen>>,
    hooks: Arc<Vec<LoadedHook>>,
    parsed: Parsed,
}

/// The hooks of a list of directories, reloaded on change (see the module docs).
pub struct HookManager {
    dirs: Vec<PathBuf>,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for HookManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookManager")
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

fn is_hook_name(name: &OsString) -> bool {
    name.to_str().is_some_and(|n| n.ends_with(".json"))
}

/// List every directory and stat its `*.json` entries.
fn scan(dirs: &[PathBuf]) -> Vec<Seen> {
    let mut out = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.push(Seen::DirError(i, e.kind()));
                continue;
            }
        };
        let mut files: Vec<Seen> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(is_hook_name)
            .map(|name| {
                let stat = std::fs::metadata(dir.join(&name))
                    .map(|m| {
                        [
                            m.dev() as i64,
                            m.ino() as i64,
                            m.size() as i64,
                            m.mtime(),
                            m.mtime_nsec(),
                            m.ctime(),
                            m.ctime_nsec(),
                        ]
                    })
                    .map_err(|e| e.kind());
                Seen::File { dir: i, name, stat }
            })
            .collect();
        files.sort_by(|a, b| match (a, b) {
            (Seen::File { name: x, .. }, Seen::File { name: y, .. }) => x.cmp(y),
            _ => std::cmp::Ordering::Equal,
        });
        out.extend(files);
    }
    out
}

/// A file's `stat` fingerprint: device, inode, size, mtime (s, ns), ctime (s, ns).
type Stat = [i64; 7];

/// The outcome of reading one file with a given [`Stat`] (`None`: it was malformed).
type Parsed = HashMap<PathBuf, (Stat, Option<HookFile>)>;

/// Read the effective files of a scan: masking, then name order; bad files are logged.
/// Files whose `stat` is unchanged since `prev` are not read again (nor re-logged).
fn load(dirs: &[PathBuf], seen: &[Seen], prev: &Parsed) -> (Vec<LoadedHook>, Parsed) {
    let mut effective: BTreeMap<String, (PathBuf, Option<Stat>)> = BTreeMap::new();
    for s in seen {
        match s {
            Seen::DirError(i, kind) => {
                if let Some(dir) = dirs.get(*i) {
                    tracing::warn!(dir = %dir.display(), error = %std::io::Error::from(*kind), "cannot list hooks directory; skipping it");
                }
            }
            Seen::File { dir, name, stat } => {
                if let (Some(d), Some(n)) = (dirs.get(*dir), name.to_str()) {
                    effective.insert(n.to_owned(), (d.join(name), stat.ok()));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut parsed = Parsed::new();
    for (name, (file, stat)) in effective {
        let hook = match (stat, prev.get(&file)) {
            (Some(st), Some((old, hook))) if *old == st => hook.clone(),
            _ => match HookFile::read(&file) {
                Ok(hook) => {
                    tracing::debug!(file = %file.display(), stages = ?hook.stages, "loaded hook");
                    Some(hook)
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e.full_message(), "skipping malformed hook file");
                    None
                }
            },
        };
        if let Some(st) = stat {
            parsed.insert(file.clone(), (st, hook.clone()));
        }
        if let Some(hook) = hook {
            out.push(LoadedHook { name, file, hook });
        }
    }
    (out, parsed)
}

impl HookManager {
    /// A manager over `dirs` (lowest precedence first). Nothing is read until the first
    /// [`HookManager::hooks`] call.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self {
            dirs,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The configured directories, lowest precedence first.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The hooks in effect now, in name order (re-read if a directory changed).
    pub fn hooks(&self) -> Arc<Vec<LoadedHook>> {
        let seen = scan(&self.dirs);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.fingerprint.as_ref() != Some(&seen) {
            let (hooks, parsed) = load(&self.dirs, &seen, &cache.parsed);
            tracing::info!(
                dirs = ?self.dirs,
                hooks = ?hooks.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
                "hooks (re)loaded"
            );
            cache.hooks = Arc::new(hooks);
            cache.parsed = parsed;
            cache.fingerprint = Some(seen);
        }
        Arc::clone(&cache.hooks)
    }

    /// The hooks whose `when` matches `input`, per stage, in name order.
    pub fn matching(&self, input: &MatchInput<'_>) -> StageHooks {
        let mut out = StageHooks::default();
        for h in self.hooks().iter() {
            if !h.hook.when.matches(input) {
                continue;
            }
            for stage in &h.hook.stages {
                out.by_stage
                    .entry(*stage)
                    .or_default()
                    .push(h.hook.hook.clone());
            }
            out.names.push(h.name.clone());
        }
        out
    }
}

/// Annotations for [`MatchInput`] from the spec's own annotations plus the caller's
/// (e.g. the CRI container annotations), the spec's taking precedence on equal keys.
pub fn merged_annotations(
    spec: Option<&HashMap<String, String>>,
    extra: &HashMap<String, String>,
) -> HashMap<String, String> {
    let mut out = extra.clone();
    if let Some(s) = spec {
        out.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
