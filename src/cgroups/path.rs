//! cgroup paths: the `linux.cgroupsPath` value crust gives the runtime, and its mapping back
//! to a directory under each cgroup hierarchy for reading statistics and cleaning up.
//!
//! Two conventions, as in runc (`libcontainer/cgroups/systemd` and `fs`) and CRI-O:
//! - cgroupfs: an absolute path relative to each hierarchy's root, `/crust/crust-<id>`.
//! - systemd: `<slice>:<prefix>:<name>`; the unit is the scope `<prefix>-<name>.scope` inside
//!   the slice, and a slice `a-b-c.slice` lives at `a.slice/a-b.slice/a-b-c.slice`
//!   (systemd.slice(5): dashes express the hierarchy).

use std::path::PathBuf;

use super::{CgroupError, Driver};

/// Parent used when the pod has no cgroup parent, cgroupfs driver.
pub const DEFAULT_CGROUPFS_PARENT: &str = "/crust";
/// Parent slice used when the pod has no cgroup parent, systemd driver.
pub const DEFAULT_SYSTEMD_SLICE: &str = "system.slice";
/// Prefix of container cgroups and of systemd scope names.
pub const PREFIX: &str = "crust";

/// The `linux.cgroupsPath` of container `id` under the pod's cgroup parent.
pub fn container_path(driver: Driver, parent: &str, id: &str) -> String {
    match driver {
        Driver::Cgroupfs => {
            let parent = parent.trim_end_matches('/');
            let parent = if parent.is_empty() {
                DEFAULT_CGROUPFS_PARENT.to_string()
            } else if parent.starts_with('/') {
                parent.to_string()
            } else {
                format!("/{parent}")
            };
            format!("{parent}/{PREFIX}-{id}")
        }
        Driver::Systemd => {
            // The kubelet's systemd driver passes the slice name ("kubepods-burstable-podX.slice");
            // tolerate a path ending in one.
            let slice = parent
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("");
            let slice = if slice.is_empty() {
                DEFAULT_SYSTEMD_SLICE
            } else {
                slice
            };
            format!("{slice}:{PREFIX}:{id}")
        }
    }
}

/// Expand a systemd slice name into its directory path: `a-b.slice` → `a.slice/a-b.slice`;
/// `-.slice` (the root slice) → empty.
pub fn expand_slice(slice: &str) -> Result<PathBuf, CgroupError> {
    let bad = |reason: &'static str| CgroupError::InvalidPath {
        path: slice.to_string(),
        reason,
    };
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(bad("a systemd slice name must end in `.slice`"));
    };
    if stem == "-" {
        return Ok(PathBuf::new());
    }
    if stem.is_empty() || stem.contains('/') {
        return Err(bad("empty slice name or contains `/`"));
    }
    let mut out = PathBuf::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err(bad("empty component between dashes"));
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push(format!("{prefix}.slice"));
    }
    Ok(out)
}

/// The directory of `cgroups_path` relative to a hierarchy root.
///
/// Accepts what [`container_path`] returns and, for pod statistics, a bare cgroup parent
/// (a cgroupfs path, or under systemd a slice name).
pub fn relative_dir(driver: Driver, cgroups_path: &str) -> Result<PathBuf, CgroupError> {
    let bad = |reason: &'static str| CgroupError::InvalidPath {
        path: cgroups_path.to_string(),
        reason,
    };
    let rel = match driver {
        Driver::Cgroupfs => {
            let p = cgroups_path.trim_start_matches('/');
            PathBuf::from(p)
        }
        Driver::Systemd => {
            let parts: Vec<&str> = cgroups_path.split(':').collect();
            match parts.as_slice() {
                [slice] => expand_slice(slice)?,
                [slice, prefix, name] => {
                    if name.is_empty() || name.contains('/') {
                        return Err(bad("empty unit name or contains `/`"));
                    }
                    let slice = if slice.is_empty() {
                        DEFAULT_SYSTEMD_SLICE
                    } else {
                        slice
                    };
                    let mut dir = expand_slice(slice)?;
                    if name.ends_with(".slice") {
                        dir.push(expand_slice(name)?.file_name().unwrap_or_default());
                    } else if prefix.is_empty() {
                        dir.push(format!("{name}.scope"));
                    } else {
                        dir.push(format!("{prefix}-{name}.scope"));
                    }
                    dir
                }
                _ => return Err(bad("expected `slice:prefix:name` for the systemd driver")),
            }
        }
    };
    if rel.as_os_str().is_empty() {
        return Err(bad("refers to the cgroup root"));
    }
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(bad("contains `..` or `.` components"));
    }
    Ok(rel)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn container_paths() {
        assert_eq!(
            container_path(Driver::Cgroupfs, "", "abc"),
            "/crust/crust-abc"
        );
        assert_eq!(
            container_path(Driver::Cgroupfs, "/kubepods/burstable/pod1/", "abc"),
            "/kubepods/burstable/pod1/crust-abc"
        );
        assert_eq!(
            container_path(Driver::Cgroupfs, "kubepods", "abc"),
            "/kubepods/crust-abc"
        );
        assert_eq!(
            container_path(Driver::Systemd, "", "abc"),
            "system.slice:crust:abc"
        );
        assert_eq!(
            container_path(Driver::Systemd, "kubepods-burstable-podX.slice", "abc"),
            "kubepods-burstable-podX.slice:crust:abc"
        );
    }

    #[test]
    fn slices() {
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            PathBuf::from("a.slice/a-b.slice/a-b-c.slice")
        );
        assert_eq!(
            expand_slice("system.slice").unwrap(),
            PathBuf::from("system.slice")
        );
        assert_eq!(expand_slice("-.slice").unwrap(), PathBuf::new());
        for bad in [
            "a",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            ".slice",
            "a/b.slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_dirs() {
        assert_eq!(
            relative_dir(Driver::Cgroupfs, "/crust/crust-abc").unwrap(),
            PathBuf::from("crust/crust-abc")
        );
        assert_eq!(
            relative_dir(Driver::Systemd, "kubepods-burstable-podX.slice:crust:abc").unwrap(),
            PathBuf::from(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podX.slice/crust-abc.scope"
            )
        );
        assert_eq!(
            relative_dir(Driver::Systemd, ":crust:abc").unwrap(),
            PathBuf::from("system.slice/crust-abc.scope")
        );
        assert_eq!(
            relative_dir(Driver::Systemd, "kubepods-besteffort.slice").unwrap(),
            PathBuf::from("kubepods.slice/kubepods-besteffort.slice")
        );
        for (d, p) in [
            (Driver::Cgroupfs, "/"),
            (Driver::Cgroupfs, ""),
            (Driver::Cgroupfs, "/crust/../etc"),
            (Driver::Systemd, "a:b"),
            (Driver::Systemd, "system.slice:crust:a/b"),
            (Driver::Systemd, "notaslice"),
            (Driver::Systemd, "-.slice"),
        ] {
            let e = relative_dir(d, p).unwrap_err();
            assert!(matches!(e, CgroupError::InvalidPath { .. }), "{p}: {e}");
        }
    }
}
