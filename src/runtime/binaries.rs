//! Finding the binaries crust runs: OCI runtimes (`runc`, `runsc`, ...) and crust's own
//! helpers (`crust-monitor`, `crust-pause`).
//!
//! Helpers ship next to the `crust` executable (packages install them together), so that
//! directory is searched first, then `$PATH`: an upgrade of crust never runs an old
//! monitor found earlier on `$PATH`. Runtimes are looked up like CRI-O does: `$PATH`, then
//! the usual sbin/bin directories, since a daemon started by an init system often has a
//! minimal `$PATH` that lacks `/usr/local/sbin`.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::RuntimeError;

/// Directories searched for runtimes after `$PATH`.
pub const RUNTIME_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Where to look, captured once so tests can substitute every input.
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    /// Directory of the running executable, searched first for helpers.
    pub exe_dir: Option<PathBuf>,
    /// `$PATH`.
    pub path_env: Option<OsString>,
    /// Searched for runtimes after `$PATH` ([`RUNTIME_DIRS`] on a real host).
    pub runtime_dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// The real process environment.
    pub fn from_env() -> Self {
        Self {
            exe_dir: std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf)),
            path_env: std::env::var_os("PATH"),
            runtime_dirs: RUNTIME_DIRS.iter().map(PathBuf::from).collect(),
        }
    }

    fn path_dirs(&self) -> Vec<PathBuf> {
        self.path_env
            .as_ref()
            .map(|p| {
                std::env::split_paths(p)
                    .filter(|d| d.is_absolute())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Candidate locations for a crust helper binary, in search order.
    pub fn helper_candidates(&self, name: &str) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.exe_dir.iter().cloned().collect();
        dirs.extend(self.path_dirs());
        candidates(name, dirs)
    }

    /// Candidate locations for a runtime binary, in search order.
    pub fn runtime_candidates(&self, name: &str) -> Vec<PathBuf> {
        let mut dirs = self.path_dirs();
        dirs.extend(self.runtime_dirs.iter().cloned());
        candidates(name, dirs)
    }
}

fn candidates(name: &str, dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for d in dirs {
        let c = d.join(name);
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// A regular file with an execute bit (following symlinks).
pub fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn first_executable(
    name: &str,
    configured: &Path,
    candidates: Vec<PathBuf>,
) -> Result<PathBuf, RuntimeError> {
    if !configured.as_os_str().is_empty() {
        return if is_executable(configured) {
            Ok(configured.to_path_buf())
        } else {
            Err(RuntimeError::BinaryNotFound {
                name: configured.display().to_string(),
                searched: vec![configured.to_path_buf()],
            })
        };
    }
    match candidates.iter().find(|c| is_executable(c)) {
        Some(c) => Ok(c.clone()),
        None => Err(RuntimeError::BinaryNotFound {
            name: name.to_owned(),
            searched: candidates,
        }),
    }
}

/// A crust helper (`crust-monitor`, `crust-pause`): `configured` when not empty (it must
/// be executable), else next to the running executable, then `$PATH`.
pub fn find_binary(name: &str, configured: &Path) -> Result<PathBuf, RuntimeError> {
    find_binary_in(&SearchPath::from_env(), name, configured)
}

/// [`find_binary`] with an explicit search path.
pub fn find_binary_in(
    search: &SearchPath,
    name: &str,
    configured: &Path,
) -> Result<PathBuf, RuntimeError> {
    first_executable(name, configured, search.helper_candidates(name))
}

/// An OCI runtime: `configured` when not empty, else `name` in `$PATH` and
/// [`RUNTIME_DIRS`].
pub fn find_runtime_in(
    search: &SearchPath,
    name: &str,
    configured: &Path,
) -> Result<PathBuf, RuntimeError> {
    first_executable(name, configured, search.runtime_candidates(name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn exe(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn helper_next_to_exe_wins_over_path() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let in_b = exe(&b, "crust-monitor");
        let s = SearchPath {
            exe_dir: Some(a.clone()),
            path_env: Some(std::env::join_paths([&b]).unwrap()),
            runtime_dirs: vec![],
        };
        assert_eq!(
            find_binary_in(&s, "crust-monitor", Path::new("")).unwrap(),
            in_b
        );
        let in_a = exe(&a, "crust-monitor");
        assert_eq!(
            find_binary_in(&s, "crust-monitor", Path::new("")).unwrap(),
            in_a
        );
    }

    #[test]
    fn configured_must_exist_and_be_executable() {
        let t = tempfile::tempdir().unwrap();
        let s = SearchPath::default();
        let p = exe(t.path(), "mon");
        assert_eq!(find_binary_in(&s, "crust-monitor", &p).unwrap(), p);
        let plain = t.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let e = find_binary_in(&s, "crust-monitor", &plain).unwrap_err();
        assert!(matches!(e, RuntimeError::BinaryNotFound { .. }), "{e}");
        assert!(e.to_string().contains("plain"), "{e}");
    }

    #[test]
    fn runtime_search_lists_candidates() {
        let s = SearchPath {
            exe_dir: None,
            path_env: Some("/nonexistent-crust-a:relative".into()),
            runtime_dirs: vec!["/usr/local/sbin".into()],
        };
        let e = find_runtime_in(&s, "no-such-runtime-xyz", Path::new("")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("binary `no-such-runtime-xyz` not found"),
            "{msg}"
        );
        assert!(
            msg.contains("/nonexistent-crust-a/no-such-runtime-xyz, /usr/local/sbin/"),
            "{msg}"
        );
        assert!(!msg.contains("relative"), "{msg}");
        let t = tempfile::tempdir().unwrap();
        let p = exe(t.path(), "myrt");
        let s = SearchPath {
            exe_dir: None,
            path_env: Some(t.path().as_os_str().to_owned()),
            runtime_dirs: vec![],
        };
        assert_eq!(find_runtime_in(&s, "myrt", Path::new("")).unwrap(), p);
    }
}
