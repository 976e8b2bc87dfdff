//! Resolve the container user (uid, gid, additional gids) through the image's `/etc/passwd`
//! and `/etc/group`.
//!
//! Precedence follows CRI api.proto and containerd: `run_as_username`, else `run_as_user`,
//! else the image config `User` ("name", "uid", "uid:gid", "name:group", ...);
//! `run_as_group` then overrides the primary gid. Like containerd (`WithAdditionalGIDs` +
//! `ensureAdditionalGids`) the additional gids are the primary gid, every group of
//! `/etc/group` listing the user as a member, then the CRI `supplemental_groups`.
//!
//! The rootfs is untrusted (any image layer may plant `etc/passwd -> /etc/shadow` or
//! `../../..` symlinks), so the files are opened with `openat2(RESOLVE_IN_ROOT)`: every
//! symlink resolves inside the rootfs, never on the host. FIFOs and devices are refused
//! (`O_NONBLOCK` + a regular-file check) so a hostile image cannot block the daemon.

use std::io::Read;
use std::path::Path;

use crust_proto::cri;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::SpecError;

/// Bigger passwd/group files are refused (a hostile image could make us read gigabytes).
const MAX_FILE: u64 = 16 << 20;

/// The resolved process identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedUser {
    /// Process uid.
    pub uid: u32,
    /// Process primary gid.
    pub gid: u32,
    /// Additional gids (primary gid first, deduplicated).
    pub additional_gids: Vec<u32>,
    /// The user name when `/etc/passwd` knows the user.
    pub username: Option<String>,
}

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Read `rel` (relative, e.g. `etc/passwd`) inside `rootfs` with every path component
/// resolved inside the rootfs. `None` when the file does not exist or is not a regular file.
pub fn read_confined(rootfs: &Path, rel: &str) -> Result<Option<String>, SpecError> {
    let full = rootfs.join(rel);
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SpecError::io("open rootfs", rootfs, e.into()))?;
    let fd = match rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(SpecError::io("open", full, e.into())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| SpecError::io("stat", &full, e.into()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        tracing::warn!(path = %full.display(), "not a regular file; ignored");
        return Ok(None);
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|e| SpecError::io("read", &full, e))?;
    Ok(Some(text))
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || f[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn id32(field: &str, v: i64) -> Result<u32, SpecError> {
    u32::try_from(v).map_err(|_| SpecError::invalid(field, v.to_string(), "not a valid id"))
}

/// Resolve the user of a container (see the module docs).
pub fn resolve_user(
    rootfs: &Path,
    sc: Option<&cri::LinuxContainerSecurityContext>,
    image_user: &str,
) -> Result<ResolvedUser, SpecError> {
    let passwd = read_confined(rootfs, "etc/passwd")?
        .map(|t| parse_passwd(&t))
        .unwrap_or_default();
    let groups = read_confined(rootfs, "etc/group")?
        .map(|t| parse_group(&t))
        .unwrap_or_default();
    let by_uid = |uid: u32| passwd.iter().find(|p| p.uid == uid);
    let by_name = |name: &str| passwd.iter().find(|p| p.name == name);

    let run_as_username = sc.map(|s| s.run_as_username.as_str()).unwrap_or_default();
    let run_as_user = sc.and_then(|s| s.run_as_user.as_ref()).map(|v| v.value);

    let (uid, mut gid, username) = if !run_as_username.is_empty() {
        let p = by_name(run_as_username).ok_or_else(|| {
            SpecError::invalid(
                "linux.security_context.run_as_username",
                run_as_username,
                "no such user in the image's /etc/passwd",
            )
        })?;
        (p.uid, p.gid, Some(p.name.clone()))
    } else if let Some(v) = run_as_user {
        let uid = id32("linux.security_context.run_as_user", v)?;
        match by_uid(uid) {
            Some(p) => (uid, p.gid, Some(p.name.clone())),
            None => (uid, 0, None),
        }
    } else {
        image_identity(image_user, &passwd, &groups)?
    };
    if let Some(g) = sc.and_then(|s| s.run_as_group.as_ref()) {
        gid = id32("linux.security_context.run_as_group", g.value)?;
    }

    let mut additional = vec![gid];
    if let Some(name) = &username {
        for g in groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name))
        {
            additional.push(g.gid);
        }
    }
    for (i, g) in sc
        .map(|s| s.supplemental_groups.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        additional.push(id32(
            &format!("linux.security_context.supplemental_groups[{i}]"),
            *g,
        )?);
    }
    let mut seen = std::collections::HashSet::new();
    additional.retain(|g| seen.insert(*g));
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        username,
    })
}

/// The image config `User` field: `user[:group]`, each part a number or a name.
fn image_identity(
    user: &str,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<(u32, u32, Option<String>), SpecError> {
    const FIELD: &str = "image config User";
    if user.is_empty() {
        let name = passwd.iter().find(|p| p.uid == 0).map(|p| p.name.clone());
        return Ok((0, 0, name));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, pgid, name) = match u.parse::<u32>() {
        Ok(uid) => match passwd.iter().find(|p| p.uid == uid) {
            Some(p) => (uid, p.gid, Some(p.name.clone())),
            None => (uid, 0, None),
        },
        Err(_) => {
            let p = passwd.iter().find(|p| p.name == u).ok_or_else(|| {
                SpecError::invalid(FIELD, user, "no such user in the image's /etc/passwd")
            })?;
            (p.uid, p.gid, Some(p.name.clone()))
        }
    };
    let gid = match g {
        None | Some("") => pgid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                groups
                    .iter()
                    .find(|e| e.name == g)
                    .ok_or_else(|| {
                        SpecError::invalid(FIELD, user, "no such group in the image's /etc/group")
                    })?
                    .gid
            }
        },
    };
    Ok((uid, gid, name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        daemon:x:1:1::/:/bin/false\n\
        www:x:33:33::/var/www:/bin/sh\n\
        app:x:1000:1001::/home/app:/bin/sh\n\
        broken line\n";
    const GROUP: &str = "root:x:0:\n\
        daemon:x:1:\n\
        www:x:33:\n\
        appgrp:x:1001:\n\
        wheel:x:10:root,app\n\
        audio:x:29:app, www\n";

    fn rootfs(passwd: Option<&str>, group: Option<&str>) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        if let Some(p) = passwd {
            std::fs::write(d.path().join("etc/passwd"), p).unwrap();
        }
        if let Some(g) = group {
            std::fs::write(d.path().join("etc/group"), g).unwrap();
        }
        d
    }

    fn sc(
        user: Option<i64>,
        name: &str,
        group: Option<i64>,
        supp: &[i64],
    ) -> cri::LinuxContainerSecurityContext {
        cri::LinuxContainerSecurityContext {
            run_as_user: user.map(|value| cri::Int64Value { value }),
            run_as_username: name.to_string(),
            run_as_group: group.map(|value| cri::Int64Value { value }),
            supplemental_groups: supp.to_vec(),
            ..Default::default()
        }
    }

    /// (security context, image user, uid, gid, additional gids)
    type UserCase = (
        Option<cri::LinuxContainerSecurityContext>,
        &'static str,
        u32,
        u32,
        Vec<u32>,
    );

    #[test]
    fn resolution_table() {
        let root = rootfs(Some(PASSWD), Some(GROUP));
        // (security context, image user, uid, gid, additional gids)
        let cases: Vec<UserCase> = vec![
            (None, "", 0, 0, vec![0, 10]),
            (None, "app", 1000, 1001, vec![1001, 10, 29]),
            (None, "1000", 1000, 1001, vec![1001, 10, 29]),
            (None, "1000:33", 1000, 33, vec![33, 10, 29]),
            (None, "app:www", 1000, 33, vec![33, 10, 29]),
            (None, "4242", 4242, 0, vec![0]),
            (None, "4242:7", 4242, 7, vec![7]),
            (
                Some(sc(Some(33), "", None, &[])),
                "app",
                33,
                33,
                vec![33, 29],
            ),
            (
                Some(sc(Some(1000), "", Some(5), &[7, 5, 8])),
                "",
                1000,
                5,
                vec![5, 10, 29, 7, 8],
            ),
            (
                Some(sc(None, "www", None, &[])),
                "app",
                33,
                33,
                vec![33, 29],
            ),
            (
                Some(sc(Some(1), "www", None, &[])),
                "",
                33,
                33,
                vec![33, 29],
            ),
            (
                Some(sc(None, "", None, &[3000])),
                "daemon",
                1,
                1,
                vec![1, 3000],
            ),
        ];
        for (sc, image, uid, gid, extra) in cases {
            let u = resolve_user(root.path(), sc.as_ref(), image).unwrap();
            assert_eq!(
                (u.uid, u.gid, u.additional_gids),
                (uid, gid, extra),
                "{sc:?} {image}"
            );
        }
    }

    #[test]
    fn unknown_names_are_invalid_argument() {
        let root = rootfs(Some(PASSWD), Some(GROUP));
        let e = resolve_user(root.path(), Some(&sc(None, "nobody", None, &[])), "").unwrap_err();
        assert!(e.is_invalid_argument());
        assert!(e.to_string().contains("run_as_username"), "{e}");
        assert!(e.to_string().contains("nobody"), "{e}");
        let e = resolve_user(root.path(), None, "ghost").unwrap_err();
        assert!(e.to_string().contains("ghost"), "{e}");
        let e = resolve_user(root.path(), None, "app:nogroup").unwrap_err();
        assert!(e.to_string().contains("app:nogroup"), "{e}");
        let e = resolve_user(root.path(), Some(&sc(Some(-1), "", None, &[])), "").unwrap_err();
        assert!(e.to_string().contains("run_as_user"), "{e}");
    }

    #[test]
    fn missing_files_numeric_ok() {
        let root = rootfs(None, None);
        let u = resolve_user(root.path(), None, "1234").unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (1234, 0, vec![0]));
        assert!(resolve_user(root.path(), None, "app").is_err());
        // no etc at all
        let bare = tempfile::tempdir().unwrap();
        let u = resolve_user(bare.path(), None, "").unwrap();
        assert_eq!(u.uid, 0);
    }

    #[test]
    fn symlink_out_of_rootfs_is_confined() {
        // A host file the image tries to make us read.
        let host = tempfile::tempdir().unwrap();
        let host_passwd = host.path().join("passwd");
        std::fs::write(&host_passwd, "evil:x:4242:4242::/:/bin/sh\n").unwrap();
        let root = rootfs(None, None);
        std::os::unix::fs::symlink(&host_passwd, root.path().join("etc/passwd")).unwrap();
        let e = resolve_user(root.path(), None, "evil").unwrap_err();
        assert!(e.is_invalid_argument(), "{e}");
        // A relative escape is clamped to the rootfs root as well.
        let root = rootfs(None, None);
        let depth = host_passwd.components().count() + 5;
        let rel = format!("{}{}", "../".repeat(depth), host_passwd.display());
        std::os::unix::fs::symlink(rel, root.path().join("etc/passwd")).unwrap();
        assert!(resolve_user(root.path(), None, "evil").is_err());
        // A symlinked /etc directory pointing at the host's /etc resolves inside the rootfs.
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("etc")).unwrap();
        assert!(resolve_user(root.path(), None, "root").is_err());
        // ... while a symlink that stays inside the rootfs works.
        let root = rootfs(None, None);
        std::fs::create_dir_all(root.path().join("data")).unwrap();
        std::fs::write(root.path().join("data/pw"), PASSWD).unwrap();
        std::os::unix::fs::symlink("/data/pw", root.path().join("etc/passwd")).unwrap();
        assert_eq!(resolve_user(root.path(), None, "www").unwrap().uid, 33);
    }

    #[test]
    fn fifo_is_ignored_not_blocking() {
        let root = rootfs(None, None);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.path().join("etc/passwd"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert_eq!(read_confined(root.path(), "etc/passwd").unwrap(), None);
    }
}
