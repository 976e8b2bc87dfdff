//! Tests of `ns.rs` (kept apart so the module stays small): unit tests, root-only pin
//! tests against the real kernel, and a runc container joining the pins.

#![allow(clippy::unwrap_used)]
use super::*;
use std::process::Command;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn mountinfo_mentions(p: &Path) -> bool {
    let s = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let needle = p.to_str().unwrap();
    s.lines().any(|l| l.contains(needle))
}

/// Cleans up even when an assertion fails.
struct Guard(PathBuf);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = unpin(&self.0);
    }
}

#[test]
fn hostname_validation() {
    assert!(validate_hostname("pod-a.example").is_ok());
    assert!(validate_hostname("").is_err());
    assert!(validate_hostname("a b").is_err());
    assert!(validate_hostname("a\nb").is_err());
    assert!(validate_hostname(&"x".repeat(65)).is_err());
    assert!(validate_hostname(&"x".repeat(64)).is_ok());
}

#[test]
fn kinds_and_names() {
    assert_eq!(NsKind::Net.to_string(), "net");
    let mut p = PinnedNs::default();
    p.set(NsKind::Uts, PathBuf::from("/x/uts"));
    assert_eq!(p.get(NsKind::Uts), Some(Path::new("/x/uts")));
    assert_eq!(p.get(NsKind::Net), None);
}

#[test]
fn unpin_missing_dir_is_ok_and_not_pinned() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("ns");
    unpin(&d).unwrap();
    fs::create_dir(&d).unwrap();
    fs::write(d.join("net"), b"").unwrap();
    assert!(!is_pinned(&d.join("net")));
    unpin(&d).unwrap();
    assert!(!d.exists());
}

#[test]
fn pin_nothing_is_noop() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("ns");
    assert_eq!(pin(&d, &[], None).unwrap(), PinnedNs::default());
    assert!(!d.exists());
}

#[test]
fn pin_bad_hostname_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("ns");
    let e = pin(&d, &NsKind::ALL, Some("bad host")).unwrap_err();
    assert!(matches!(e, NsError::InvalidHostname { .. }), "{e}");
    assert!(!d.exists());
}

#[test]
fn pin_and_unpin_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("ns");
    let _g = Guard(d.clone());
    let start = std::time::Instant::now();
    let p = pin(&d, &NsKind::ALL, Some("crust-test-pod")).unwrap();
    let took = start.elapsed();
    eprintln!("pin took {took:?}");
    for k in NsKind::ALL {
        let path = p.get(k).unwrap();
        assert!(is_pinned(path), "{k} not pinned");
        let ours = fs::read_link(format!("/proc/self/ns/{k}")).unwrap();
        let st = rustix::fs::stat(path).unwrap();
        let ours_ino = rustix::fs::stat(format!("/proc/self/ns/{k}").as_str())
            .unwrap()
            .st_ino;
        assert_ne!(st.st_ino, ours_ino, "{k} is our own namespace {ours:?}");
    }
    // Already pinned: refused, and the existing pin is untouched.
    assert!(matches!(
        pin(&d, &[NsKind::Net], None),
        Err(NsError::AlreadyPinned { .. })
    ));
    assert!(is_pinned(p.net.as_ref().unwrap()));

    if Path::new("/usr/bin/nsenter").exists() {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", p.net.as_ref().unwrap().display()))
            .args(["ip", "-o", "link", "show", "lo"])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{s}");
        assert!(s.contains("UP"), "lo not up: {s}");
        let out = Command::new("nsenter")
            .arg(format!("--uts={}", p.uts.as_ref().unwrap().display()))
            .arg("hostname")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "crust-test-pod"
        );
    }

    unpin(&d).unwrap();
    assert!(!d.exists());
    assert!(!mountinfo_mentions(&d), "leftover mounts for {d:?}");
    unpin(&d).unwrap();
}

#[test]
fn pin_subset_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("ns");
    let _g = Guard(d.clone());
    let p = pin(&d, &[NsKind::Ipc], Some("ignored")).unwrap();
    assert!(p.net.is_none() && p.uts.is_none());
    assert!(is_pinned(p.ipc.as_ref().unwrap()));
    assert!(!d.join("net").exists());
    unpin(&d).unwrap();
    assert!(!mountinfo_mentions(&d));
}

/// A runc container joining the pins by path sees the pod hostname and `lo` up.
#[test]
fn runc_joins_pins_root() {
    let runc = Path::new("/usr/sbin/runc");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists());
    let (true, Some(busybox)) = (is_root() && runc.exists(), busybox) else {
        eprintln!("skipped: needs root, runc and busybox");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("ns");
    let _g = Guard(d.clone());
    let p = pin(&d, &NsKind::ALL, Some("crust-runc-pod")).unwrap();

    let bundle = t.path().join("bundle");
    fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    fs::copy(busybox, bundle.join("rootfs/bin/busybox")).unwrap();
    let out = Command::new(runc)
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success());
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!([
        "/bin/busybox",
        "sh",
        "-c",
        "/bin/busybox hostname; /bin/busybox ip -o link show lo"
    ]);
    cfg["hostname"] = serde_json::Value::Null;
    let mut nss = vec![
        serde_json::json!({"type": "pid"}),
        serde_json::json!({"type": "mount"}),
    ];
    for (k, path) in [("network", &p.net), ("ipc", &p.ipc), ("uts", &p.uts)] {
        nss.push(serde_json::json!({"type": k, "path": path.as_ref().unwrap()}));
    }
    cfg["linux"]["namespaces"] = nss.into();
    fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let id = format!("crust-ns-test-{}", std::process::id());
    let root = t.path().join("runc-root");
    let out = Command::new(runc)
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new(runc)
        .arg("--root")
        .arg(&root)
        .args(["delete", "--force", &id])
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "runc run: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("crust-runc-pod"), "{stdout}");
    assert!(lines.next().unwrap_or("").contains(",UP"), "{stdout}");
    unpin(&d).unwrap();
    assert!(!mountinfo_mentions(&d));
}

/// A mount failing half-way (the uts target is a directory) leaves nothing mounted and
/// removes the files this call created.
#[test]
fn pin_failure_undoes_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("ns");
    let _g = Guard(d.clone());
    fs::create_dir_all(d.join("uts")).unwrap();
    let e = pin(&d, &NsKind::ALL, None).unwrap_err();
    assert!(
        matches!(
            e,
            NsError::Mount {
                kind: NsKind::Uts,
                ..
            }
        ),
        "{e}"
    );
    assert!(!d.join("net").exists());
    assert!(!d.join("ipc").exists());
    assert!(!mountinfo_mentions(&d));
    fs::remove_dir(d.join("uts")).unwrap();
}

/// `cargo test --lib -- --ignored sandbox::ns::tests::pin_latency --nocapture`
#[test]
#[ignore = "measurement, prints pin/unpin latencies"]
fn pin_latency() {
    if !is_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mut pins = Vec::new();
    let mut unpins = Vec::new();
    for i in 0..30 {
        let d = t.path().join(format!("ns{i}"));
        let _g = Guard(d.clone());
        let s = std::time::Instant::now();
        pin(&d, &NsKind::ALL, Some("lat")).unwrap();
        pins.push(s.elapsed());
        let s = std::time::Instant::now();
        unpin(&d).unwrap();
        unpins.push(s.elapsed());
    }
    pins.sort();
    unpins.sort();
    eprintln!(
        "pin median {:?} p90 {:?}; unpin median {:?} p90 {:?}",
        pins[15], pins[27], unpins[15], unpins[27]
    );
}
