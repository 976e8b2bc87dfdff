//! `crust check [--repair]` and the start-up check after an unclean shutdown: storage and
//! state consistency, offline (no daemon may use the root meanwhile).
//!
//! The image store's own rules live in `crust_storage::check` (the same ones its crash
//! recovery applies). On top, this module cross-checks what only the daemon knows: pod and
//! container records (`<root>/state`) against container layers, bundles and pod
//! directories (`<runroot>`), and mounts left below the runroot or on container layers
//! that no record owns. Repairs only remove what no record references (or records whose
//! files are gone), so a running container with a valid record is never touched.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crust_storage::check as store_check;

use super::mounts;
use crate::config::Config;
use crate::runtime::Handlers;
use crate::runtime::cli::OciRuntime;
use crate::state::persist;
use crate::state::records::{ContainerRecord, PodRecord};

/// One inconsistency found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Short stable name (`orphan-layer`, `container-record-without-bundle`, ...).
    pub kind: &'static str,
    /// The file, directory or mount point concerned.
    pub path: PathBuf,
    /// Why it is a problem.
    pub detail: String,
    /// Whether `--repair` fixes it.
    pub repairable: bool,
}

/// The outcome of a check.
#[derive(Debug, Default)]
pub struct Report {
    /// Everything found (before any repair).
    pub findings: Vec<Finding>,
    /// Whether repairs were made.
    pub repaired: bool,
    /// Repairs that failed (`what: error`).
    pub repair_errors: Vec<String>,
}

impl Report {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Errors that stop a check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The image store could not be read or repaired.
    #[error("cannot check the image store at {path:?}")]
    Store {
        /// The storage root.
        path: PathBuf,
        #[source]
        source: crust_storage::StoreError,
    },
}

/// The daemon-level facts the check compares.
struct Known {
    pods: HashSet<String>,
    containers: Vec<(ContainerRecord, PathBuf)>,
    container_ids: HashSet<String>,
}

fn dir_names(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Check (and with `repair`, fix) the root and runroot of `config`. The caller guarantees
/// no daemon uses them (the daemon itself calls this before serving).
pub fn run(config: &Config, repair: bool) -> Result<Report, CheckError> {
    let c = &config.crust;
    let storage_root = c.root.join("storage");
    let store_err = |source| CheckError::Store {
        path: storage_root.clone(),
        source,
    };
    let mut report = Report::default();
    // 1. The image store.
    let (problems, store) = if repair && storage_root.exists() {
        let (p, s) = store_check::repair(&storage_root).map_err(store_err)?;
        (p, Some(s))
    } else {
        (store_check::check(&storage_root).map_err(store_err)?, None)
    };
    report
        .findings
        .extend(problems.into_iter().map(|p| Finding {
            kind: p.kind.as_str(),
            repairable: p.kind.repairable(),
            path: p.path,
            detail: p.detail,
        }));
    // 2. Records.
    let state = c.root.join("state");
    let mut known = Known {
        pods: HashSet::new(),
        containers: Vec::new(),
        container_ids: HashSet::new(),
    };
    for r in persist::load_all::<PodRecord>(&state.join("pods")) {
        match r {
            Ok(p) => {
                known.pods.insert(p.id);
            }
            Err(e) => report.findings.push(bad_record(e)),
        }
    }
    // Pods without a record that still hold a CNI attachment (a daemon killed during
    // RunPodSandbox): their namespaces must outlive this check, because CNI DEL needs the
    // network namespace to undo what plugins did inside and outside it (the bridge plugin
    // skips its masquerade teardown when the netns is gone). The daemon's start-up network
    // GC runs DEL and then removes the pod's directory, so they count as known here.
    let cni_cache = c.network.cache_dir_for(&c.root);
    for (id, path) in dir_names(&cni_cache) {
        let Some(id) = id.strip_suffix(".json") else {
            continue;
        };
        if known.pods.insert(id.to_string()) {
            report.findings.push(Finding {
                kind: "orphan-pod-network",
                path,
                detail: format!(
                    "CNI attachment of pod {id}, which has no record: the daemon's start-up network GC releases it"
                ),
                repairable: false,
            });
        }
    }
    for r in persist::load_all::<ContainerRecord>(&state.join("containers")) {
        match r {
            Ok(rec) => {
                known.container_ids.insert(rec.id.clone());
                let file = state.join("containers").join(format!("{}.json", rec.id));
                known.containers.push((rec, file));
            }
            Err(e) => report.findings.push(bad_record(e)),
        }
    }
    // Records whose files are gone.
    let mut dead_records = Vec::new();
    for (rec, file) in &known.containers {
        let layer = storage_root.join("containers").join(&rec.id);
        let why = if !layer.is_dir() {
            Some(("container-record-without-layer", layer.clone()))
        } else if !rec.bundle.is_dir() {
            Some(("container-record-without-bundle", rec.bundle.clone()))
        } else {
            None
        };
        if let Some((kind, gone)) = why {
            report.findings.push(Finding {
                kind,
                path: file.clone(),
                detail: format!("container {}: {} is gone", rec.id, gone.display()),
                repairable: true,
            });
            dead_records.push((rec.id.clone(), file.clone(), rec.bundle.clone()));
        }
    }
    // 3. Files no record owns.
    let layers_dir = storage_root.join("containers");
    let orphan_layers: Vec<(String, PathBuf)> = dir_names(&layers_dir)
        .into_iter()
        .filter(|(id, _)| !known.container_ids.contains(id))
        .collect();
    for (id, p) in &orphan_layers {
        report.findings.push(Finding {
            kind: "orphan-container-layer",
            path: p.clone(),
            detail: format!("writable layer of container {id}, which has no record"),
            repairable: true,
        });
    }
    let orphan_bundles: Vec<(String, PathBuf)> = dir_names(&c.runroot.join("containers"))
        .into_iter()
        .filter(|(id, _)| !known.container_ids.contains(id))
        .collect();
    for (id, p) in &orphan_bundles {
        report.findings.push(Finding {
            kind: "orphan-bundle",
            path: p.clone(),
            detail: format!("bundle of container {id}, which has no record"),
            repairable: true,
        });
    }
    let orphan_pods: Vec<(String, PathBuf)> = dir_names(&c.runroot.join("pods"))
        .into_iter()
        .filter(|(id, _)| !known.pods.contains(id))
        .collect();
    for (id, p) in &orphan_pods {
        report.findings.push(Finding {
            kind: "orphan-pod-dir",
            path: p.clone(),
            detail: format!("namespaces and files of pod {id}, which has no record"),
            repairable: true,
        });
    }
    // Runtime state (`<runtime root>/<id>/`) of containers without a record: a daemon
    // killed mid-create can leave a created container (and its process) behind.
    let orphan_runtime = runtime_orphans(config, &known);
    for (rt, id) in &orphan_runtime {
        report.findings.push(Finding {
            kind: "orphan-runtime-state",
            path: rt.root.join(id),
            detail: format!(
                "{} state of container {id}, which has no record",
                rt.path.display()
            ),
            repairable: true,
        });
    }
    // 4. Mounts no record owns.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let stale = stale_mounts(&info, &c.runroot, &layers_dir, &known);
    for p in &stale {
        report.findings.push(Finding {
            kind: "stale-mount",
            path: p.clone(),
            detail: "mounted, but no pod or container record owns it".into(),
            repairable: true,
        });
    }
    if !repair {
        return Ok(report);
    }
    // Repairs: mounts first (deepest first), then files, then records.
    report.repaired = true;
    let mut fail = |what: String, e: String| report.repair_errors.push(format!("{what}: {e}"));
    for p in &stale {
        if let Err(e) = mounts::detach(p) {
            fail(format!("unmount {}", p.display()), e.to_string());
        }
    }
    for (rt, id) in &orphan_runtime {
        if let Err(e) = force_delete(rt, id) {
            fail(format!("{} delete --force {id}", rt.path.display()), e);
        }
    }
    let remove_layer = |id: &str, dir: &Path| -> Result<(), String> {
        if let Some(s) = &store {
            match s.delete_container(id) {
                Ok(()) | Err(crust_storage::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        mounts::detach_below(dir);
        remove_tree(dir)
    };
    for (id, p) in &orphan_layers {
        if let Err(e) = remove_layer(id, p) {
            fail(format!("remove {}", p.display()), e);
        }
    }
    for (_, p) in orphan_bundles.iter().chain(&orphan_pods) {
        mounts::detach_below(p);
        if let Err(e) = remove_tree(p) {
            fail(format!("remove {}", p.display()), e);
        }
    }
    for (id, file, bundle) in &dead_records {
        let layer = layers_dir.join(id);
        let steps = [
            remove_layer(id, &layer),
            {
                mounts::detach_below(bundle);
                remove_tree(bundle)
            },
            remove_tree(&c.runroot.join("exits").join(id)),
            remove_tree(file),
        ];
        for r in steps {
            if let Err(e) = r {
                fail(format!("remove container {id}"), e);
            }
        }
    }
    for f in &report.findings {
        if f.kind == "unreadable-record"
            && let Err(e) = remove_tree(&f.path)
        {
            report
                .repair_errors
                .push(format!("remove {}: {e}", f.path.display()));
        }
    }
    Ok(report)
}

/// Container state directories (64-hex names, as crust ids are) in the runtime roots of
/// the usable handlers that no container record owns.
fn runtime_orphans(config: &Config, known: &Known) -> Vec<(OciRuntime, String)> {
    let Ok(handlers) = Handlers::from_config(&config.crust) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for h in handlers.all().filter(|h| h.unavailable.is_none()) {
        let root = &h.runtime.root;
        if root.as_os_str().is_empty() {
            continue;
        }
        for (id, p) in dir_names(root) {
            let crust_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
            if crust_id && p.is_dir() && !known.container_ids.contains(&id) {
                out.push((h.runtime.clone(), id));
            }
        }
    }
    out
}

/// `<runtime> delete --force <id>`: kills the container's processes and drops its state.
fn force_delete(rt: &OciRuntime, id: &str) -> Result<(), String> {
    let line = rt.command_line(&["delete", "--force", id]);
    let out = std::process::Command::new(&rt.path)
        .args(&line[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn bad_record(e: persist::PersistError) -> Finding {
    let path = match &e {
        persist::PersistError::Io { path, .. } | persist::PersistError::Json { path, .. } => {
            path.clone()
        }
    };
    Finding {
        kind: "unreadable-record",
        detail: match crate::ops::chain(&e) {
            c if c.is_empty() => e.to_string(),
            c => format!("{e}: {c}"),
        },
        path,
        repairable: true,
    }
}

/// Remove a file or directory tree; absent is fine.
fn remove_tree(p: &Path) -> Result<(), String> {
    let res = match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Mounts below the runroot's pod and container directories, or on a container layer,
/// whose pod or container has no record.
fn stale_mounts(info: &str, runroot: &Path, layers_dir: &Path, known: &Known) -> Vec<PathBuf> {
    let owner = |p: &Path| -> Option<bool> {
        for (base, pods) in [
            (runroot.join("pods"), true),
            (runroot.join("containers"), false),
            (layers_dir.to_path_buf(), false),
        ] {
            if let Ok(rest) = p.strip_prefix(&base) {
                let id = rest.components().next()?.as_os_str().to_string_lossy();
                let id = id.as_ref();
                return Some(if pods {
                    known.pods.contains(id)
                } else {
                    known.container_ids.contains(id)
                });
            }
        }
        None
    };
    mounts::below(info, runroot)
        .into_iter()
        .chain(mounts::below(info, layers_dir))
        .filter(|p| owner(p) == Some(false))
        .collect()
}

/// The daemon's start-up check (marker absent): repair and log each fix; never fails
/// the start (a store that cannot even be read fails `ImageService::open` right after).
pub fn startup(config: &Config) -> Option<Report> {
    tracing::warn!("no clean-shutdown marker (crash, kill -9 or first start): checking storage");
    let started = std::time::Instant::now();
    match run(config, true) {
        Ok(report) => {
            for f in &report.findings {
                tracing::warn!(kind = f.kind, path = %f.path.display(), detail = %f.detail, "storage check repaired");
            }
            for e in &report.repair_errors {
                tracing::error!(error = %e, "storage check could not repair");
            }
            tracing::info!(
                problems = report.findings.len(),
                ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "storage check finished"
            );
            crate::metrics::global().storage_check(report.findings.len());
            Some(report)
        }
        Err(e) => {
            tracing::error!(error = %e, cause = %crate::ops::chain(&e), "storage check failed");
            crate::metrics::global().storage_check(0);
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let mut c = Config::default();
        c.crust.root = dir.join("root");
        c.crust.runroot = dir.join("run");
        c
    }

    #[test]
    fn orphans_reported_then_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        assert!(run(&c, false).unwrap().is_clean());
        std::fs::create_dir_all(c.crust.runroot.join("containers/deadbeef")).unwrap();
        std::fs::create_dir_all(c.crust.runroot.join("pods/cafe/ns")).unwrap();
        std::fs::create_dir_all(c.crust.root.join("state/containers")).unwrap();
        std::fs::write(c.crust.root.join("state/containers/bad.json"), "{").unwrap();
        let r = run(&c, false).unwrap();
        let kinds: Vec<&str> = r.findings.iter().map(|f| f.kind).collect();
        assert!(kinds.contains(&"orphan-bundle"), "{kinds:?}");
        assert!(kinds.contains(&"orphan-pod-dir"), "{kinds:?}");
        assert!(kinds.contains(&"unreadable-record"), "{kinds:?}");
        assert!(!r.repaired);
        assert!(c.crust.runroot.join("pods/cafe").exists());
        let r = run(&c, true).unwrap();
        assert!(r.repaired && r.repair_errors.is_empty(), "{r:?}");
        assert!(run(&c, false).unwrap().is_clean());
    }

    #[test]
    fn stale_mounts_are_those_without_owner() {
        let known = Known {
            pods: ["p1".to_string()].into(),
            containers: Vec::new(),
            container_ids: ["c1".to_string()].into(),
        };
        let info = "\
1 0 0:1 / /r/pods/p1/shm rw - tmpfs t rw
2 0 0:1 / /r/pods/p2/shm rw - tmpfs t rw
3 0 0:1 / /s/containers/c1/merged rw - overlay o rw
4 0 0:1 / /s/containers/c2/merged rw - overlay o rw
5 0 0:1 / /r rw - tmpfs t rw
";
        let got = stale_mounts(info, Path::new("/r"), Path::new("/s/containers"), &known);
        assert_eq!(
            got,
            vec![
                PathBuf::from("/r/pods/p2/shm"),
                PathBuf::from("/s/containers/c2/merged")
            ]
        );
    }
}
