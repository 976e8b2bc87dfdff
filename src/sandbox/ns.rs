//! Pod sandbox namespaces: create a pod's network, IPC and UTS namespaces once and pin them
//! by bind-mounting their nsfs files, so every container of the pod joins them by path.
//!
//! This is what CRI-O's `pinns` does (there as a separate binary; here on a short-lived
//! thread of the daemon): no pause process is needed to keep the namespaces alive, the bind
//! mount holds the reference. Namespaces are per-thread for `unshare(2)` of
//! `CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS`, so a fresh `std::thread` unshares, sets the
//! namespaces up (loopback up, hostname), bind-mounts `/proc/thread-self/ns/<kind>` onto an
//! empty file and exits: the daemon's own threads never change namespace.
//!
//! Mount propagation: the pins are ordinary bind mounts in the daemon's mount namespace
//! under `<runroot>/pods/<pod-id>/ns/`. If that directory lives on a shared mount they
//! propagate to its peers exactly like `ip netns add` pins do, and the detach in [`unpin`]
//! propagates the same way; containers never see them because runc pivots into the
//! container rootfs and detaches the old root.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::mount::{UnmountFlags, mount_bind, unmount};
use rustix::thread::UnshareFlags;

/// `statfs(2)` magic of the nsfs pseudo file system (`linux/magic.h`).
pub const NSFS_MAGIC: i64 = 0x6e73_6673;

/// The namespaces a pod pins (the pid namespace is a pause process, see `pause.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NsKind {
    Net,
    Ipc,
    Uts,
}

impl NsKind {
    /// All pinnable kinds, in the order they are set up and torn down.
    pub const ALL: [NsKind; 3] = [NsKind::Net, NsKind::Ipc, NsKind::Uts];

    /// The name used by `/proc/<pid>/ns/` and for the pin file.
    pub fn name(self) -> &'static str {
        match self {
            NsKind::Net => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
        }
    }

    fn unshare_flag(self) -> UnshareFlags {
        match self {
            NsKind::Net => UnshareFlags::NEWNET,
            NsKind::Ipc => UnshareFlags::NEWIPC,
            NsKind::Uts => UnshareFlags::NEWUTS,
        }
    }
}

impl std::fmt::Display for NsKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Paths of the pinned namespaces (`None` for a kind that was not asked for).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinnedNs {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

impl PinnedNs {
    /// The pin of `kind`, if any.
    pub fn get(&self, kind: NsKind) -> Option<&Path> {
        match kind {
            NsKind::Net => self.net.as_deref(),
            NsKind::Ipc => self.ipc.as_deref(),
            NsKind::Uts => self.uts.as_deref(),
        }
    }

    fn set(&mut self, kind: NsKind, path: PathBuf) {
        match kind {
            NsKind::Net => self.net = Some(path),
            NsKind::Ipc => self.ipc = Some(path),
            NsKind::Uts => self.uts = Some(path),
        }
    }
}

/// Errors creating or removing namespace pins.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("namespace pin {path}: {op}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("namespace pin {path}: already pinned")]
    AlreadyPinned { path: PathBuf },
    #[error("unshare {kinds} namespaces")]
    Unshare {
        kinds: String,
        #[source]
        source: io::Error,
    },
    #[error("bring loopback up in the new network namespace")]
    Loopback {
        #[source]
        source: io::Error,
    },
    #[error("invalid pod hostname `{hostname}`: {reason}")]
    InvalidHostname {
        hostname: String,
        reason: &'static str,
    },
    #[error("set hostname `{hostname}` in the new uts namespace")]
    Hostname {
        hostname: String,
        #[source]
        source: io::Error,
    },
    #[error("bind-mount the {kind} namespace onto {path}")]
    Mount {
        kind: NsKind,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unmount namespace pin {path}")]
    Unmount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("namespace pinning thread panicked")]
    ThreadPanicked,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> NsError + 'a {
    move |source| NsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Maximum hostname length accepted by `sethostname(2)` (`HOST_NAME_MAX`).
const HOST_NAME_MAX: usize = 64;

/// Check a hostname before it reaches the kernel, so a bad pod config is an
/// invalid-argument error rather than an opaque `EINVAL`.
pub fn validate_hostname(hostname: &str) -> Result<(), NsError> {
    let bad = |reason| NsError::InvalidHostname {
        hostname: hostname.to_string(),
        reason,
    };
    if hostname.is_empty() {
        return Err(bad("empty"));
    }
    if hostname.len() > HOST_NAME_MAX {
        return Err(bad("longer than 64 bytes"));
    }
    if hostname
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'/' || b == 0)
    {
        return Err(bad("contains whitespace, control characters or `/`"));
    }
    Ok(())
}

/// Create new namespaces of `kinds` and pin them as `dir/<kind>`.
///
/// Loopback is brought up in a new network namespace (CNI comes later; until then a pod
/// has a working `lo`, as with CRI-O's pinns + the loopback plugin). With `hostname` and
/// [`NsKind::Uts`] the new UTS namespace gets that hostname. On failure nothing is left
/// behind: mounts are detached and files this call created are removed.
pub fn pin(dir: &Path, kinds: &[NsKind], hostname: Option<&str>) -> Result<PinnedNs, NsError> {
    let mut wanted: Vec<NsKind> = Vec::new();
    for k in NsKind::ALL {
        if kinds.contains(&k) {
            wanted.push(k);
        }
    }
    if wanted.is_empty() {
        return Ok(PinnedNs::default());
    }
    let hostname = match hostname {
        Some(h) if wanted.contains(&NsKind::Uts) => {
            validate_hostname(h)?;
            Some(h.to_string())
        }
        _ => None,
    };
    let dir_existed = dir.exists();
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;

    let mut created: Vec<PathBuf> = Vec::new();
    let result = create_pin_files(dir, &wanted, &mut created).and_then(|targets| {
        let handle = std::thread::Builder::new()
            .name("crust-pinns".into())
            .spawn(move || pin_on_this_thread(&targets, hostname.as_deref()))
            .map_err(io_err("spawn pinning thread", dir))?;
        handle.join().map_err(|_| NsError::ThreadPanicked)?
    });
    match result {
        Ok(pinned) => {
            tracing::debug!(dir = %dir.display(), kinds = ?wanted, "pinned pod namespaces");
            Ok(pinned)
        }
        Err(e) => {
            for path in &created {
                let _ = fs::remove_file(path);
            }
            if !dir_existed {
                let _ = fs::remove_dir(dir);
            }
            Err(e)
        }
    }
}

fn create_pin_files(
    dir: &Path,
    wanted: &[NsKind],
    created: &mut Vec<PathBuf>,
) -> Result<Vec<(NsKind, PathBuf)>, NsError> {
    let mut targets = Vec::new();
    for &k in wanted {
        let path = dir.join(k.name());
        if is_pinned(&path) {
            return Err(NsError::AlreadyPinned { path });
        }
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => created.push(path.clone()),
            // A leftover empty file from an interrupted pin/unpin is fine to reuse.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create pin file", &path)(e)),
        }
        targets.push((k, path));
    }
    Ok(targets)
}

/// Runs on a dedicated thread that exits afterwards: its namespaces are changed for good.
fn pin_on_this_thread(
    targets: &[(NsKind, PathBuf)],
    hostname: Option<&str>,
) -> Result<PinnedNs, NsError> {
    let mut flags = UnshareFlags::empty();
    for (k, _) in targets {
        flags |= k.unshare_flag();
    }
    // SAFETY: only namespace flags are passed (no CLONE_FILES/CLONE_FS), which affect this
    // thread alone and not any file descriptor table shared with other threads.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(|e| NsError::Unshare {
        kinds: targets
            .iter()
            .map(|(k, _)| k.name())
            .collect::<Vec<_>>()
            .join(","),
        source: e.into(),
    })?;
    if targets.iter().any(|(k, _)| *k == NsKind::Net) {
        loopback_up().map_err(|source| NsError::Loopback { source })?;
    }
    if let Some(h) = hostname {
        set_hostname(h).map_err(|source| NsError::Hostname {
            hostname: h.to_string(),
            source,
        })?;
    }
    let mut pinned = PinnedNs::default();
    let mut mounted: Vec<&Path> = Vec::new();
    for (k, path) in targets {
        let src = format!("/proc/thread-self/ns/{}", k.name());
        if let Err(e) = mount_bind(src.as_str(), path.as_path()) {
            for m in mounted {
                let _ = unmount(m, UnmountFlags::DETACH);
            }
            return Err(NsError::Mount {
                kind: *k,
                path: path.clone(),
                source: e.into(),
            });
        }
        mounted.push(path);
        pinned.set(*k, path.clone());
    }
    Ok(pinned)
}

/// `ip link set lo up` via `SIOCGIFFLAGS`/`SIOCSIFFLAGS` on a datagram socket of the
/// calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2) call with constant arguments; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid descriptor owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes ifru_flags of a valid,
    // exclusively borrowed ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS only reads the ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_hostname(h: &str) -> io::Result<()> {
    // SAFETY: the pointer/length pair describes `h`'s bytes, which outlive the call;
    // sethostname(2) does not need NUL termination.
    let rc = unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Remove the pins under `dir` and the directory. Idempotent: a missing dir or file, or a
/// file that is no longer mounted, is not an error.
pub fn unpin(dir: &Path) -> Result<(), NsError> {
    for k in NsKind::ALL {
        let path = dir.join(k.name());
        // Loop: a pin mounted twice (a racing pin) needs two detaches.
        let mut rounds = 0;
        while is_pinned(&path) && rounds < 8 {
            rounds += 1;
            match unmount(path.as_path(), UnmountFlags::DETACH) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => break,
                Err(e) => {
                    return Err(NsError::Unmount {
                        path,
                        source: e.into(),
                    });
                }
            }
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove pin file", &path)(e)),
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove directory", dir)(e)),
    }
}

/// Whether `path` is still an nsfs mount (a live pin).
pub fn is_pinned(path: &Path) -> bool {
    match rustix::fs::statfs(path) {
        #[allow(clippy::unnecessary_cast)]
        Ok(st) => st.f_type as i64 == NSFS_MAGIC,
        Err(_) => false,
    }
}

#[cfg(test)]
#[path = "ns_tests.rs"]
mod tests;
