//! What a well-formed layer produces on disk: entry types, whiteouts, metadata,
//! replacement rules. Run as root (CI does): ownership, devices and trusted xattrs need it.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use tar::EntryType;

use super::testutil::{MTIME, Sandbox, Tar};
use super::{UnpackOptions, UnpackStats};

fn md(sb: &Sandbox, rel: &str) -> std::fs::Metadata {
    std::fs::symlink_metadata(sb.path(rel)).unwrap()
}

fn xattr(sb: &Sandbox, rel: &str, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(sb.path(rel), name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn basic_tree_and_stats() {
    let sb = Sandbox::new();
    let big: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
    let tar = Tar::new()
        .dir("./")
        .dir("./usr/")
        .file("./usr/big", &big)
        .file("usr/empty", b"")
        .file("deep/missing/parents/f", b"hello")
        .symlink("usr/abs", "/etc/passwd")
        .symlink("usr/rel", "../nowhere/at/all")
        .finish();
    let stats = sb.unpack(&tar).unwrap();
    assert_eq!(
        stats,
        UnpackStats {
            entries: 7,
            bytes: big.len() as u64 + 5,
            inodes: 6,
        }
    );
    assert_eq!(std::fs::read(sb.path("usr/big")).unwrap(), big);
    assert_eq!(std::fs::read(sb.path("usr/empty")).unwrap(), b"");
    assert_eq!(
        std::fs::read(sb.path("deep/missing/parents/f")).unwrap(),
        b"hello"
    );
    assert_eq!(md(&sb, "deep/missing").mode() & 0o7777, 0o755);
    // Symlink targets are data: kept verbatim, never resolved.
    assert_eq!(
        std::fs::read_link(sb.path("usr/abs")).unwrap().to_str(),
        Some("/etc/passwd")
    );
    assert_eq!(
        std::fs::read_link(sb.path("usr/rel")).unwrap().to_str(),
        Some("../nowhere/at/all")
    );
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let sb = Sandbox::new();
    let tar = Tar::new()
        .file("etc/gone", b"x")
        .dir("etc/gonedir")
        .file("etc/gonedir/f", b"x")
        .file("etc/.wh.gone", b"")
        .file("etc/.wh.gonedir", b"")
        .file("lower/.wh.fromlower", b"")
        .file(".wh..wh.plnk", b"")
        .file("opq/.wh..wh..opq", b"")
        .dir("kept")
        .file("kept/f", b"x")
        .file("kept/.wh..wh..opq", b"")
        .finish();
    let stats = sb.unpack(&tar).unwrap();
    for wh in ["etc/gone", "etc/gonedir", "lower/fromlower"] {
        let m = md(&sb, wh);
        assert!(m.file_type().is_char_device(), "{wh}");
        assert_eq!(m.rdev(), 0, "{wh}");
    }
    for never in [
        "etc/.wh.gone",
        ".wh..wh.plnk",
        "opq/.wh..wh..opq",
        "kept/.wh..wh..opq",
    ] {
        assert!(
            std::fs::symlink_metadata(sb.path(never)).is_err(),
            "{never}"
        );
    }
    assert_eq!(
        xattr(&sb, "opq", "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr(&sb, "kept", "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    // The opaque marker hides lower layers only, not this layer's own entries.
    assert!(sb.path("kept/f").is_file());
    assert_eq!(xattr(&sb, "etc", "trusted.overlay.opaque"), None);
    // The plnk marker is not counted.
    assert_eq!(stats.entries, 10);
}

#[test]
fn hardlinks_share_an_inode() {
    let sb = Sandbox::new();
    let tar = Tar::new()
        .file("bin/busybox", b"elf")
        .hardlink("bin/sh", "bin/busybox")
        .hardlink("./sbin/init", "./bin/busybox")
        .file("bin/ls", b"old")
        .hardlink("bin/ls", "bin/busybox")
        .finish();
    sb.unpack(&tar).unwrap();
    let ino = md(&sb, "bin/busybox").ino();
    for l in ["bin/sh", "sbin/init", "bin/ls"] {
        assert_eq!(md(&sb, l).ino(), ino, "{l}");
    }
    assert_eq!(md(&sb, "bin/busybox").nlink(), 4);
}

#[test]
fn fifos_and_devices() {
    let sb = Sandbox::new();
    let tar = Tar::new()
        .entry("dev/null", EntryType::Char, b"", |h| {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
            h.set_mode(0o666);
        })
        .entry("dev/loop9", EntryType::Block, b"", |h| {
            h.set_device_major(7).unwrap();
            h.set_device_minor(9).unwrap();
            h.set_mode(0o660);
        })
        .entry("run/fifo", EntryType::Fifo, b"", |h| h.set_mode(0o620))
        .finish();
    sb.unpack(&tar).unwrap();
    let null = md(&sb, "dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let lp = md(&sb, "dev/loop9");
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.rdev(), rustix::fs::makedev(7, 9));
    let fifo = md(&sb, "run/fifo");
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o620);
    assert_eq!(fifo.mtime(), MTIME as i64);
}

/// `vfs_cap_data` revision 2 granting CAP_NET_BIND_SERVICE (permitted + effective).
const CAP_NET_BIND: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn ownership_modes_and_capabilities() {
    let sb = Sandbox::new();
    let owned = |h: &mut tar::Header| {
        h.set_uid(1234);
        h.set_gid(5678);
    };
    let tar = Tar::new()
        .entry("d", EntryType::Directory, b"", |h| {
            owned(h);
            h.set_mode(0o1777);
        })
        .entry("d/suid", EntryType::Regular, b"x", |h| {
            owned(h);
            h.set_mode(0o4755);
        })
        .entry("d/sgid", EntryType::Regular, b"x", |h| {
            owned(h);
            h.set_mode(0o2711);
        })
        .entry("d/link", EntryType::Symlink, b"", |h| {
            owned(h);
            h.set_link_name_literal("suid").unwrap();
        })
        .pax(&[
            ("SCHILY.xattr.security.capability", &CAP_NET_BIND[..]),
            ("SCHILY.xattr.user.note", b"hello"),
        ])
        .entry("d/ping", EntryType::Regular, b"x", |h| {
            owned(h);
            h.set_mode(0o755);
        })
        .finish();
    sb.unpack(&tar).unwrap();
    for (p, mode) in [
        ("d", 0o1777),
        ("d/suid", 0o4755),
        ("d/sgid", 0o2711),
        ("d/ping", 0o755),
    ] {
        let m = md(&sb, p);
        assert_eq!((m.uid(), m.gid()), (1234, 5678), "{p}");
        assert_eq!(m.mode() & 0o7777, mode, "{p}");
    }
    let l = md(&sb, "d/link");
    assert_eq!((l.uid(), l.gid()), (1234, 5678));
    // Set after chown, which would have cleared it.
    assert_eq!(
        xattr(&sb, "d/ping", "security.capability").as_deref(),
        Some(&CAP_NET_BIND[..])
    );
    assert_eq!(
        xattr(&sb, "d/ping", "user.note").as_deref(),
        Some(&b"hello"[..])
    );

    // Without preserve_ownership everything belongs to the caller.
    let sb2 = Sandbox::new();
    sb2.unpack_with(
        &tar,
        &UnpackOptions {
            preserve_ownership: false,
            ..UnpackOptions::default()
        },
    )
    .unwrap();
    let m = md(&sb2, "d/suid");
    assert_eq!(
        (m.uid(), m.gid()),
        (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw()
        )
    );
    assert_eq!(m.mode() & 0o7777, 0o4755);
}

#[test]
fn mtimes_of_files_symlinks_and_directories() {
    let sb = Sandbox::new();
    let tar = Tar::new()
        .entry("./", EntryType::Directory, b"", |h| {
            h.set_mtime(1000);
            h.set_mode(0o750);
        })
        .entry("d", EntryType::Directory, b"", |h| h.set_mtime(2000))
        .pax(&[("mtime", b"1234567890.123456789")])
        .file("d/f", b"x")
        .entry("d/l", EntryType::Symlink, b"", |h| {
            h.set_link_name_literal("f").unwrap();
            h.set_mtime(3000);
        })
        .entry("d/sub", EntryType::Directory, b"", |h| h.set_mtime(4000))
        .file("d/sub/late", b"x")
        .finish();
    sb.unpack(&tar).unwrap();
    let root = std::fs::metadata(&sb.dest).unwrap();
    assert_eq!(root.mtime(), 1000);
    assert_eq!(root.mode() & 0o7777, 0o750);
    assert_eq!(md(&sb, "d").mtime(), 2000);
    let f = md(&sb, "d/f");
    assert_eq!((f.mtime(), f.mtime_nsec()), (1_234_567_890, 123_456_789));
    assert_eq!(md(&sb, "d/l").mtime(), 3000);
    assert_eq!(md(&sb, "d/sub").mtime(), 4000);
    assert_eq!(md(&sb, "d/sub/late").mtime(), MTIME as i64);
}

#[test]
fn later_entries_replace_earlier_ones() {
    let sb = Sandbox::new();
    let tar = Tar::new()
        // file -> dir
        .file("a", b"file")
        .dir("a")
        .file("a/inside", b"x")
        // dir tree -> file
        .dir("b")
        .dir("b/c")
        .file("b/c/d", b"x")
        .file("b", b"now a file")
        // dir -> symlink, then a file through the new symlink's directory
        .dir("c")
        .dir("target")
        .symlink("c", "target")
        .file("c/via", b"v")
        // file -> file, symlink -> file, dir kept as dir with new metadata
        .file("e", b"one")
        .file("e", b"two")
        .symlink("s", "/etc/passwd")
        .file("s", b"plain")
        .dir("k")
        .file("k/child", b"x")
        .entry("k", EntryType::Directory, b"", |h| h.set_mode(0o700))
        .finish();
    sb.unpack(&tar).unwrap();
    assert!(md(&sb, "a").is_dir());
    assert!(sb.path("a/inside").is_file());
    assert_eq!(std::fs::read(sb.path("b")).unwrap(), b"now a file");
    assert!(md(&sb, "c").file_type().is_symlink());
    assert_eq!(std::fs::read(sb.path("target/via")).unwrap(), b"v");
    assert_eq!(std::fs::read(sb.path("e")).unwrap(), b"two");
    assert!(md(&sb, "s").is_file());
    assert!(!std::fs::read("/etc/passwd").unwrap().is_empty());
    assert!(sb.path("k/child").is_file());
    assert_eq!(md(&sb, "k").mode() & 0o7777, 0o700);
}

#[test]
fn long_names_via_pax_and_gnu_work() {
    let sb = Sandbox::new();
    let long_dir = format!("{}/{}", "x".repeat(200), "y".repeat(200));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    b.append_data(&mut h, format!("{long_dir}/gnu"), &b"ok"[..])
        .unwrap();
    // `into_inner` would append the end-of-archive marker.
    let mut tar = b.get_ref().clone();
    let mut t = Tar::new();
    t.pax(&[("path", format!("{long_dir}/pax").as_bytes())])
        .file("ignored", b"ok");
    tar.extend_from_slice(&t.finish());
    sb.unpack(&tar).unwrap();
    assert_eq!(
        std::fs::read(sb.path(&format!("{long_dir}/gnu"))).unwrap(),
        b"ok"
    );
    assert_eq!(
        std::fs::read(sb.path(&format!("{long_dir}/pax"))).unwrap(),
        b"ok"
    );
}

#[test]
fn many_small_files_are_fast_enough() {
    // Not a benchmark: catches accidental per-entry quadratic work or syscall storms.
    let mut t = Tar::new();
    for d in 0..20 {
        t.dir(&format!("d{d}"));
        for f in 0..250 {
            t.file(&format!("d{d}/f{f}"), b"0123456789");
        }
    }
    let tar = t.finish();
    let sb = Sandbox::new();
    let start = std::time::Instant::now();
    let stats = sb.unpack(&tar).unwrap();
    assert_eq!(stats.entries, 20 * 251);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn xattrs_on_symlinks_and_fifos_apply_to_the_node_itself() {
    let sb = Sandbox::new();
    let tar = Tar::new()
        .file("target", b"t")
        .pax(&[
            ("SCHILY.xattr.trusted.crust", b"link"),
            // Not allowed on symlinks (EPERM): skipped with a warning, not an error.
            ("SCHILY.xattr.user.nope", b"x"),
        ])
        .symlink("link", "target")
        .pax(&[("SCHILY.xattr.trusted.crust", b"fifo")])
        .entry("fifo", EntryType::Fifo, b"", |_| {})
        .finish();
    sb.unpack(&tar).unwrap();
    assert_eq!(
        xattr(&sb, "link", "trusted.crust").as_deref(),
        Some(&b"link"[..])
    );
    assert_eq!(xattr(&sb, "target", "trusted.crust"), None);
    assert_eq!(xattr(&sb, "link", "user.nope"), None);
    assert_eq!(
        xattr(&sb, "fifo", "trusted.crust").as_deref(),
        Some(&b"fifo"[..])
    );
}
