//! Devices, the device cgroup allow-list, masked/read-only paths and AppArmor.
//!
//! - Devices: CRI `devices` (`host_path` a device node or a directory of them, mapped to
//!   `container_path`, cgroup access = `permissions`, default `rwm`); privileged containers
//!   get every host device (containerd `WithHostDevices`) unless the handler sets
//!   `privileged_without_host_devices`, and an allow-all device cgroup rule.
//! - The non-privileged device cgroup list is containerd's default: deny all, allow `mknod`
//!   of any char/block node and the standard nodes (null, zero, full, random, urandom, tty,
//!   console, ptmx, pts, tun).
//! - Masked and read-only paths: the CRI lists when given, else containerd's defaults;
//!   privileged clears both.
//! - AppArmor only when the host has it (`SpecOptions::apparmor_enabled`): `RuntimeDefault`
//!   (also when unset, as containerd does) -> [`APPARMOR_DEFAULT_PROFILE`], `Localhost` ->
//!   the named profile, `Unconfined` -> none. Privileged containers are unconfined.

use std::path::{Path, PathBuf};

use crust_proto::cri;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::SpecError;
use super::host::Host;
use super::mounts::{DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};

/// The AppArmor profile name crust uses for `RuntimeDefault` (must be loaded on the host).
pub const APPARMOR_DEFAULT_PROFILE: &str = "crust-default";

fn cgroup_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow)
        .set_typ(Some(typ))
        .set_major(major)
        .set_minor(minor)
        .set_access(Some(access.to_string()));
    r
}

/// The device cgroup rules before CRI devices are added.
pub fn default_device_rules(privileged: bool) -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{A, B, C};
    if privileged {
        return vec![cgroup_rule(true, A, None, None, "rwm")];
    }
    let mut rules = vec![
        cgroup_rule(false, A, None, None, "rwm"),
        cgroup_rule(true, C, None, None, "m"),
        cgroup_rule(true, B, None, None, "m"),
    ];
    for (major, minor) in [
        (1, Some(3)),    // null
        (1, Some(8)),    // random
        (1, Some(7)),    // full
        (5, Some(0)),    // tty
        (1, Some(5)),    // zero
        (1, Some(9)),    // urandom
        (5, Some(1)),    // console
        (136, None),     // pts
        (5, Some(2)),    // ptmx
        (10, Some(200)), // tun
    ] {
        rules.push(cgroup_rule(true, C, Some(major), minor, "rwm"));
    }
    rules
}

/// Validate CRI device permissions: a non-empty subset of `rwm` ("" = `rwm`).
fn permissions(field: &str, p: &str) -> Result<String, SpecError> {
    if p.is_empty() {
        return Ok("rwm".to_string());
    }
    if p.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        Ok(p.to_string())
    } else {
        Err(SpecError::invalid(
            field,
            p,
            "permissions must be a subset of `rwm`",
        ))
    }
}

/// Devices and their cgroup rules from CRI `devices`.
pub fn cri_devices(
    devices: &[cri::Device],
    host: &dyn Host,
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    let mut devs = Vec::new();
    let mut rules = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let access = permissions(&format!("devices[{i}].permissions"), &d.permissions)?;
        let field = format!("devices[{i}].host_path");
        if d.host_path.is_empty() {
            return Err(SpecError::invalid(field, "", "is required"));
        }
        let cpath = if d.container_path.is_empty() {
            d.host_path.clone()
        } else {
            d.container_path.clone()
        };
        if !cpath.starts_with('/') {
            return Err(SpecError::invalid(
                format!("devices[{i}].container_path"),
                cpath,
                "must be an absolute path",
            ));
        }
        let host_path = Path::new(&d.host_path);
        let found = host
            .devices_at(host_path)?
            .ok_or_else(|| SpecError::invalid(&field, &d.host_path, "device does not exist"))?;
        if found.is_empty() {
            return Err(SpecError::invalid(
                &field,
                &d.host_path,
                "not a device node (or a directory of them)",
            ));
        }
        let is_single = found.len() == 1 && found[0].path() == host_path;
        for mut dev in found {
            let target = if is_single {
                PathBuf::from(&cpath)
            } else {
                // A directory: keep the layout below it.
                let rel = dev
                    .path()
                    .strip_prefix(host_path)
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|_| dev.path().clone());
                Path::new(&cpath).join(rel)
            };
            rules.push(cgroup_rule(
                true,
                dev.typ(),
                Some(dev.major()),
                Some(dev.minor()),
                &access,
            ));
            dev.set_path(target);
            devs.push(dev);
        }
    }
    Ok((devs, rules))
}

/// Masked and read-only paths (see the module docs).
pub fn masked_and_readonly(
    sc: Option<&cri::LinuxContainerSecurityContext>,
    privileged: bool,
) -> (Vec<String>, Vec<String>) {
    if privileged {
        return (Vec::new(), Vec::new());
    }
    let pick = |given: Option<&Vec<String>>, default: &[&str]| -> Vec<String> {
        match given {
            Some(v) if !v.is_empty() => v.clone(),
            _ => default.iter().map(|s| s.to_string()).collect(),
        }
    };
    (
        pick(sc.map(|s| &s.masked_paths), DEFAULT_MASKED_PATHS),
        pick(sc.map(|s| &s.readonly_paths), DEFAULT_READONLY_PATHS),
    )
}

/// The AppArmor profile for the process, if any (see the module docs).
#[allow(deprecated)]
pub fn apparmor_profile(
    sc: Option<&cri::LinuxContainerSecurityContext>,
    privileged: bool,
    enabled: bool,
) -> Result<Option<String>, SpecError> {
    if !enabled || privileged {
        return Ok(None);
    }
    let default = Some(APPARMOR_DEFAULT_PROFILE.to_string());
    let Some(sc) = sc else {
        return Ok(default);
    };
    if let Some(p) = &sc.apparmor {
        use cri::security_profile::ProfileType;
        return match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Ok(default),
            Ok(ProfileType::Unconfined) => Ok(None),
            Ok(ProfileType::Localhost) if !p.localhost_ref.is_empty() => {
                Ok(Some(p.localhost_ref.clone()))
            }
            Ok(ProfileType::Localhost) => Err(SpecError::invalid(
                "linux.security_context.apparmor.localhost_ref",
                "",
                "a localhost profile needs a profile name",
            )),
            Err(_) => Err(SpecError::invalid(
                "linux.security_context.apparmor.profile_type",
                p.profile_type.to_string(),
                "unknown profile type",
            )),
        };
    }
    match sc.apparmor_profile.as_str() {
        "" | "runtime/default" => Ok(default),
        "unconfined" => Ok(None),
        other => match other.strip_prefix("localhost/") {
            Some(name) if !name.is_empty() => Ok(Some(name.to_string())),
            _ => Err(SpecError::invalid(
                "linux.security_context.apparmor_profile",
                other,
                "expected runtime/default, unconfined or localhost/<profile>",
            )),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, deprecated)]
mod tests {
    use super::*;
    use crate::spec::host::RealHost;

    #[test]
    fn cri_devices_table() {
        let d = |h: &str, c: &str, p: &str| cri::Device {
            host_path: h.into(),
            container_path: c.into(),
            permissions: p.into(),
        };
        let (devs, rules) = cri_devices(&[d("/dev/null", "/dev/mynull", "rw")], &RealHost).unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].path(), Path::new("/dev/mynull"));
        assert_eq!((devs[0].major(), devs[0].minor()), (1, 3));
        assert_eq!(rules[0].access().as_deref(), Some("rw"));
        assert!(rules[0].allow());
        // (device, error field)
        let f = tempfile::NamedTempFile::new().unwrap();
        let fp = f.path().to_str().unwrap();
        let cases = [
            (d("/dev/nope-xyz", "/dev/x", ""), "devices[0].host_path"),
            (d("/dev/null", "/dev/x", "rwx"), "devices[0].permissions"),
            (d("/dev/null", "rel", ""), "devices[0].container_path"),
            (d("", "/dev/x", ""), "devices[0].host_path"),
            (d(fp, "/dev/x", ""), "devices[0].host_path"),
        ];
        for (dev, want) in cases {
            let e = cri_devices(&[dev], &RealHost).unwrap_err();
            assert!(
                e.is_invalid_argument() && e.to_string().contains(want),
                "{e}"
            );
        }
    }

    #[test]
    fn masked_paths_rules() {
        let (m, r) = masked_and_readonly(None, false);
        assert!(m.contains(&"/proc/kcore".to_string()));
        assert!(r.contains(&"/proc/sys".to_string()));
        let sc = cri::LinuxContainerSecurityContext {
            masked_paths: vec!["/proc/x".into()],
            ..Default::default()
        };
        let (m, r) = masked_and_readonly(Some(&sc), false);
        assert_eq!(m, vec!["/proc/x".to_string()]);
        assert_eq!(r.len(), DEFAULT_READONLY_PATHS.len());
        let (m, r) = masked_and_readonly(Some(&sc), true);
        assert!(m.is_empty() && r.is_empty());
    }

    #[test]
    fn apparmor_table() {
        let prof = |t: i32, r: &str| cri::LinuxContainerSecurityContext {
            apparmor: Some(cri::SecurityProfile {
                profile_type: t,
                localhost_ref: r.into(),
            }),
            ..Default::default()
        };
        let old = |s: &str| cri::LinuxContainerSecurityContext {
            apparmor_profile: s.into(),
            ..Default::default()
        };
        let def = Some(APPARMOR_DEFAULT_PROFILE.to_string());
        assert_eq!(
            apparmor_profile(Some(&prof(0, "")), false, false).unwrap(),
            None
        );
        assert_eq!(apparmor_profile(None, false, true).unwrap(), def);
        assert_eq!(
            apparmor_profile(Some(&prof(0, "")), true, true).unwrap(),
            None
        );
        assert_eq!(
            apparmor_profile(Some(&prof(1, "")), false, true).unwrap(),
            None
        );
        assert_eq!(
            apparmor_profile(Some(&prof(2, "mine")), false, true).unwrap(),
            Some("mine".to_string())
        );
        assert!(apparmor_profile(Some(&prof(2, "")), false, true).is_err());
        assert_eq!(apparmor_profile(Some(&old("")), false, true).unwrap(), def);
        assert_eq!(
            apparmor_profile(Some(&old("unconfined")), false, true).unwrap(),
            None
        );
        assert_eq!(
            apparmor_profile(Some(&old("localhost/p")), false, true).unwrap(),
            Some("p".to_string())
        );
        assert!(apparmor_profile(Some(&old("weird")), false, true).is_err());
    }

    #[test]
    fn device_rules() {
        let p = default_device_rules(true);
        assert_eq!(p.len(), 1);
        assert!(p[0].allow());
        let n = default_device_rules(false);
        assert!(!n[0].allow());
        assert!(
            n.iter()
                .any(|r| r.major() == Some(136) && r.minor().is_none())
        );
    }
}
