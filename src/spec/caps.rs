//! Linux capabilities of the container process.
//!
//! The default set is containerd's (`oci.defaultUnixCaps`, the Docker set minus nothing):
//! CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP
//! NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE. CRI `add_capabilities` /
//! `drop_capabilities` are applied the way containerd does: "ALL" in add first grants every
//! capability the daemon itself holds, "ALL" in drop then clears the set, then the
//! individual adds and drops are applied, so `add [ALL] drop [CHOWN]` means everything but
//! CHOWN. Names are accepted with or without `CAP_`, any case.
//!
//! "Every capability" is the daemon's own bounding set (containerd's
//! `WithAllCurrentCapabilities`): runc cannot grant what its parent lacks, and on this kind
//! of host the daemon runs without CAP_SYS_RESOURCE.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use super::SpecError;

/// containerd's default capability set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Capability names by number (linux/capability.h), index = capability number.
pub const CAPABILITY_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Parse a capability name ("CAP_CHOWN", "chown", "Cap_Chown").
pub fn parse_capability(field: &str, name: &str) -> Result<Capability, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    bare.parse::<Capability>()
        .map_err(|_| SpecError::invalid(field, name, "unknown capability"))
}

/// The capabilities in a `CapBnd:`-style hex mask (bit n = capability n).
pub fn capabilities_from_mask(mask: u64) -> Capabilities {
    CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .filter_map(|(_, n)| n.parse::<Capability>().ok())
        .collect()
}

/// The base set: `configured` (daemon config, `[]` = containerd's default).
pub fn default_set(configured: &[String]) -> Result<Capabilities, SpecError> {
    if configured.is_empty() {
        DEFAULT_CAPABILITIES
            .iter()
            .map(|c| parse_capability("default_capabilities", c))
            .collect()
    } else {
        configured
            .iter()
            .map(|c| parse_capability("default_capabilities", c))
            .collect()
    }
}

/// Apply CRI add/drop to `base`; `all` is what "ALL" means (the daemon's bounding set).
pub fn apply_add_drop(
    base: Capabilities,
    add: &[String],
    drop: &[String],
    all: &Capabilities,
) -> Result<Capabilities, SpecError> {
    let is_all = |s: &String| s.trim().eq_ignore_ascii_case("ALL");
    let mut caps = base;
    if add.iter().any(is_all) {
        caps.extend(all.iter().copied());
    }
    if drop.iter().any(is_all) {
        caps.clear();
    }
    for (i, a) in add.iter().enumerate().filter(|(_, a)| !is_all(a)) {
        caps.insert(parse_capability(
            &format!("linux.security_context.capabilities.add_capabilities[{i}]"),
            a,
        )?);
    }
    for (i, d) in drop.iter().enumerate().filter(|(_, d)| !is_all(d)) {
        caps.remove(&parse_capability(
            &format!("linux.security_context.capabilities.drop_capabilities[{i}]"),
            d,
        )?);
    }
    Ok(caps)
}

/// The OCI capability sets: bounding = effective = permitted = `caps`; inheritable only holds
/// the ambient ones (containerd stopped filling inheritable after CVE-2022-24769); ambient
/// capabilities are also added to the other sets since the kernel requires them there.
pub fn linux_capabilities(caps: Capabilities, ambient: Capabilities) -> LinuxCapabilities {
    let mut all = caps;
    all.extend(ambient.iter().copied());
    let mut lc = LinuxCapabilities::default();
    lc.set_bounding(Some(all.clone()))
        .set_effective(Some(all.clone()))
        .set_permitted(Some(all))
        .set_inheritable(Some(ambient.clone()))
        .set_ambient(Some(ambient));
    lc
}

/// The ambient capabilities requested by CRI `add_ambient_capabilities`.
pub fn ambient_set(names: &[String]) -> Result<Capabilities, SpecError> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            parse_capability(
                &format!("linux.security_context.capabilities.add_ambient_capabilities[{i}]"),
                n,
            )
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> Capabilities {
        names
            .iter()
            .map(|n| parse_capability("t", n).unwrap())
            .collect()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_parse_any_form() {
        for n in ["CAP_CHOWN", "chown", "Cap_Chown", " CHOWN "] {
            assert_eq!(parse_capability("f", n).unwrap(), Capability::Chown);
        }
        let e = parse_capability("f", "CAP_NOPE").unwrap_err();
        assert!(e.is_invalid_argument());
        for n in CAPABILITY_NAMES {
            parse_capability("f", n).unwrap();
        }
    }

    #[test]
    fn default_set_is_containerds() {
        let d = default_set(&[]).unwrap();
        assert_eq!(d.len(), 14);
        assert!(d.contains(&Capability::NetRaw) && !d.contains(&Capability::SysAdmin));
        assert_eq!(default_set(&s(&["kill"])).unwrap(), set(&["KILL"]));
    }

    #[test]
    fn add_drop_table() {
        let all = set(&["CHOWN", "KILL", "SYS_ADMIN", "NET_ADMIN"]);
        let base = set(&["CHOWN", "KILL"]);
        // (add, drop, expected)
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&[], &[], &["CHOWN", "KILL"]),
            (&["NET_ADMIN"], &[], &["CHOWN", "KILL", "NET_ADMIN"]),
            (&[], &["chown"], &["KILL"]),
            (&["ALL"], &[], &["CHOWN", "KILL", "SYS_ADMIN", "NET_ADMIN"]),
            (
                &["all"],
                &["CAP_SYS_ADMIN"],
                &["CHOWN", "KILL", "NET_ADMIN"],
            ),
            (&[], &["ALL"], &[]),
            (&["NET_ADMIN"], &["ALL"], &["NET_ADMIN"]),
            (&["ALL"], &["ALL"], &[]),
            (&["KILL"], &["KILL"], &["CHOWN"]),
        ];
        for (add, drop, want) in cases {
            let got = apply_add_drop(base.clone(), &s(add), &s(drop), &all).unwrap();
            assert_eq!(got, set(want), "add={add:?} drop={drop:?}");
        }
        let e = apply_add_drop(base, &s(&["BOGUS"]), &[], &all).unwrap_err();
        assert!(e.to_string().contains("add_capabilities[0]"), "{e}");
    }

    #[test]
    fn mask_and_sets() {
        // 0x1fffeffffff = all of 0..=40 but SYS_RESOURCE (24).
        let c = capabilities_from_mask(0x1ff_feff_ffff);
        assert_eq!(c.len(), 40);
        assert!(!c.contains(&Capability::SysResource));
        assert!(c.contains(&Capability::CheckpointRestore));
        let lc = linux_capabilities(set(&["CHOWN"]), set(&["NET_BIND_SERVICE"]));
        assert_eq!(lc.bounding().as_ref().unwrap().len(), 2);
        assert_eq!(lc.inheritable().as_ref().unwrap().len(), 1);
        assert_eq!(lc.ambient().as_ref().unwrap().len(), 1);
    }
}
