//! Hostile and malformed layers: every one must be refused with an error naming the entry,
//! and nothing may be written outside the layer directory.
#![allow(clippy::unwrap_used)]

use std::io::Read;

use tar::EntryType;

use super::UnpackError;
use super::testutil::{Sandbox, Tar};

fn assert_unsafe(r: Result<super::UnpackStats, UnpackError>, entry: &str, why: &str) {
    match r {
        Err(e @ UnpackError::UnsafePath { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&format!("entry `{entry}`")), "{msg}");
            assert!(msg.contains(why), "{msg} (wanted `{why}`)");
            assert!(e.is_bad_layer());
        }
        other => panic!("expected UnsafePath for {entry}, got {other:?}"),
    }
}

#[test]
fn dotdot_and_absolute_paths_are_refused() {
    for name in ["../x", "a/../../x", "./../x", "a/.."] {
        let sb = Sandbox::new();
        let tar = Tar::new().file(name, b"pwned").finish();
        assert_unsafe(sb.unpack(&tar), name, "`..`");
        assert!(sb.outside_entries().is_empty());
    }
    let sb = Sandbox::new();
    let tar = Tar::new().file("/abs", b"pwned").finish();
    assert_unsafe(sb.unpack(&tar), "/abs", "absolute");
}

#[test]
fn file_through_absolute_symlink_is_refused() {
    let sb = Sandbox::new();
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let tar = Tar::new()
        .symlink("evil", "/")
        .file("evil/etc/passwd", b"root::0:0::/:/bin/sh\n")
        .finish();
    assert_unsafe(sb.unpack(&tar), "evil/etc/passwd", "resolves outside");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
    // The same with an absolute symlink to a directory next to dest.
    let sb = Sandbox::new();
    let target = sb.outside().to_str().unwrap().to_owned();
    let tar = Tar::new()
        .symlink("evil", &target)
        .file("evil/x", b"pwned")
        .finish();
    assert_unsafe(sb.unpack(&tar), "evil/x", "resolves outside");
    assert!(sb.outside_entries().is_empty());
}

#[test]
fn file_through_relative_escaping_symlink_is_refused() {
    let sb = Sandbox::new();
    let tar = Tar::new().symlink("a", "..").file("a/x", b"pwned").finish();
    assert_unsafe(sb.unpack(&tar), "a/x", "resolves outside");
    assert!(sb.outside_entries().is_empty());
    // Deeper: d/up -> ../.. then d/up/x; also directories and whiteouts through it.
    for last in [
        "d/up/x",
        "d/up/newdir/",
        "d/up/.wh.dest",
        "d/up/.wh..wh..opq",
    ] {
        let sb = Sandbox::new();
        let mut t = Tar::new();
        t.dir("d").symlink("d/up", "../..");
        if last.ends_with('/') {
            t.dir(last);
        } else {
            t.file(last, b"pwned");
        }
        assert_unsafe(sb.unpack(&t.finish()), last, "resolves outside");
        assert!(sb.outside_entries().is_empty(), "{last}");
        assert!(sb.dest.is_dir());
    }
}

#[test]
fn symlink_loops_are_refused() {
    let sb = Sandbox::new();
    let tar = Tar::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"x")
        .finish();
    assert_unsafe(sb.unpack(&tar), "a/x", "symlink loop");
}

#[test]
fn escaping_hardlinks_are_refused() {
    let sb = Sandbox::new();
    let tar = Tar::new().hardlink("h", "/etc/passwd").finish();
    assert_unsafe(
        sb.unpack(&tar),
        "h",
        "hardlink target `/etc/passwd`: absolute",
    );

    let sb = Sandbox::new();
    let tar = Tar::new().hardlink("h", "../../x").finish();
    assert_unsafe(sb.unpack(&tar), "h", "hardlink target `../../x`");

    // Through a symlink pointing outside.
    let sb = Sandbox::new();
    std::fs::write(sb.outside().join("secret"), b"s").unwrap();
    let tar = Tar::new()
        .symlink("s", "..")
        .hardlink("h", "s/secret")
        .finish();
    assert_unsafe(sb.unpack(&tar), "h", "resolves outside");
    assert!(!sb.path("h").exists());

    // To a file that is not in this layer.
    let sb = Sandbox::new();
    let tar = Tar::new().hardlink("h", "missing").finish();
    assert_unsafe(sb.unpack(&tar), "h", "not found in this layer");
}

#[test]
fn hardlink_to_a_symlink_links_the_symlink_itself() {
    let sb = Sandbox::new();
    let tar = Tar::new()
        .symlink("s", "/etc/passwd")
        .hardlink("h", "s")
        .finish();
    sb.unpack(&tar).unwrap();
    let md = std::fs::symlink_metadata(sb.path("h")).unwrap();
    assert!(md.file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(sb.path("h")).unwrap().to_str(),
        Some("/etc/passwd")
    );
}

#[test]
fn huge_names_are_refused() {
    let sb = Sandbox::new();
    let long = "a/".repeat(5000);
    let tar = Tar::new()
        .pax(&[("path", long.as_bytes())])
        .file("short", b"x")
        .finish();
    let err = sb.unpack(&tar).unwrap_err();
    assert!(matches!(err, UnpackError::NameTooLong { .. }), "{err:?}");
    assert!(err.to_string().contains("PATH_MAX"), "{err}");

    let sb = Sandbox::new();
    let comp = "c".repeat(10_000);
    let tar = Tar::new()
        .pax(&[("path", comp.as_bytes())])
        .file("short", b"x")
        .finish();
    let err = sb.unpack(&tar).unwrap_err();
    assert!(err.to_string().contains("NAME_MAX"), "{err}");

    // 300-byte component through a GNU long name, as tar::Builder writes it.
    let sb = Sandbox::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    b.append_data(&mut h, format!("dir/{}", "n".repeat(300)), &b"x"[..])
        .unwrap();
    let tar = b.into_inner().unwrap();
    let err = sb.unpack(&tar).unwrap_err();
    assert!(matches!(err, UnpackError::NameTooLong { .. }), "{err:?}");
}

#[test]
fn truncated_streams_are_refused() {
    let mut t = Tar::new();
    t.file("a", &vec![7u8; 5000]).file("b", b"bbb");
    let full = t.finish();
    // Inside a's body, inside a's padding, inside b's header, inside the end marker.
    for cut in [
        512 + 1000,
        512 + 5000 + 50,
        512 + 5120 + 100,
        full.len() - 700,
    ] {
        let sb = Sandbox::new();
        let err = sb.unpack(&full[..cut]).unwrap_err();
        assert!(
            matches!(err, UnpackError::Truncated { .. }),
            "cut {cut}: {err:?}"
        );
        assert!(err.is_bad_layer());
    }
    // A clean end between entries without the end-of-archive marker is accepted, as by
    // Go's archive/tar (the store's diff-id check covers real truncation).
    let sb = Sandbox::new();
    assert_eq!(sb.unpack(&full[..512 + 5120 + 1024]).unwrap().entries, 2);
    assert_eq!(Sandbox::new().unpack(b"").unwrap().entries, 0);
    // The complete stream works, and an empty tar (only the marker) is fine.
    let sb = Sandbox::new();
    assert_eq!(sb.unpack(&full).unwrap().entries, 2);
    assert_eq!(Sandbox::new().unpack(&[0u8; 1024]).unwrap().entries, 0);
}

#[test]
fn garbage_is_refused() {
    let mut x: u32 = 12345;
    let garbage: Vec<u8> = (0..8192)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    let sb = Sandbox::new();
    let err = sb.unpack(&garbage).unwrap_err();
    assert!(matches!(err, UnpackError::Tar { .. }), "{err:?}");
    // A valid entry followed by a corrupt header names the last good entry.
    let mut t = Tar::new();
    t.file("good", b"x");
    t.buf.extend_from_slice(&garbage[..512]);
    let err = sb.unpack(&t.finish()).unwrap_err();
    assert!(err.to_string().contains("`good`"), "{err}");
}

#[test]
fn failing_reader_is_a_read_error() {
    struct Failing(Vec<u8>, usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1 >= self.0.len() {
                return Err(std::io::Error::other("digest mismatch"));
            }
            let n = buf.len().min(self.0.len() - self.1).min(100);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let mut t = Tar::new();
    t.file("a", &[1u8; 3000]);
    let data = t.buf[..2000].to_vec();
    let sb = Sandbox::new();
    let err = super::unpack_layer(Failing(data, 0), &sb.dest, &Default::default()).unwrap_err();
    assert!(matches!(err, UnpackError::Read { .. }), "{err:?}");
    assert!(!err.is_bad_layer());
}

#[test]
fn bad_whiteouts_sparse_and_root_entries_are_refused() {
    for name in [".wh.", "d/.wh..", "d/.wh...", ".wh.d/x"] {
        let sb = Sandbox::new();
        let err = sb.unpack(&Tar::new().file(name, b"").finish()).unwrap_err();
        assert!(
            matches!(err, UnpackError::UnsafePath { .. }),
            "{name}: {err:?}"
        );
    }
    let sb = Sandbox::new();
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..6].copy_from_slice(b"sparse");
    h.set_entry_type(EntryType::GNUSparse);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.as_gnu_mut().unwrap().set_real_size(0);
    h.set_cksum();
    let tar = Tar::new().raw(h.as_bytes(), b"").finish();
    let err = sb.unpack(&tar).unwrap_err();
    assert!(err.to_string().contains("sparse"), "{err}");
    let sb = Sandbox::new();
    // A regular file named `./` is a v7-style directory entry: fine.
    sb.unpack(&Tar::new().file("./", b"x").finish()).unwrap();
    // A symlink named `.` is refused.
    let sb = Sandbox::new();
    let err = sb
        .unpack(&Tar::new().symlink(".", "/").finish())
        .unwrap_err();
    assert!(
        err.to_string().contains("root entry must be a directory"),
        "{err}"
    );
}

#[test]
fn overlay_xattrs_cannot_be_injected() {
    let sb = Sandbox::new();
    let tar = Tar::new()
        .pax(&[
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            ("SCHILY.xattr.user.ok", b"1"),
        ])
        .dir("d")
        .finish();
    sb.unpack(&tar).unwrap();
    let mut buf = [0u8; 16];
    assert!(rustix::fs::lgetxattr(sb.path("d"), "trusted.overlay.opaque", &mut buf[..]).is_err());
    assert!(rustix::fs::lgetxattr(sb.path("d"), "trusted.overlay.redirect", &mut buf[..]).is_err());
    let n = rustix::fs::lgetxattr(sb.path("d"), "user.ok", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"1");
}

#[test]
fn bad_ids_are_refused() {
    let sb = Sandbox::new();
    let tar = Tar::new()
        .pax(&[("uid", b"4294967295")])
        .file("f", b"")
        .finish();
    let err = sb.unpack(&tar).unwrap_err();
    assert!(
        matches!(err, UnpackError::InvalidHeader { field: "uid", .. }),
        "{err:?}"
    );
}
