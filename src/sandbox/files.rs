//! Pod sandbox files: `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` and the pod's shared
//! `/dev/shm`, created once per pod and bind-mounted into every container of the pod.
//!
//! Follows the kubelet/CRI-O split: the kubelet sends `hostname` and `DNSConfig` in
//! `PodSandboxConfig`; the runtime writes the files (CRI-O `sandbox_run_linux.go`,
//! containerd `sandbox_run.go`). A host-network pod sees the host's `/etc/hosts`, a pod
//! without a `DNSConfig` the host's `/etc/resolv.conf`. Writes are atomic (temporary file
//! in the same directory + rename) so a container never sees a half-written file.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags, mount, unmount};

/// Default size of a pod's `/dev/shm`, as Docker, containerd and CRI-O use (64 MiB).
pub const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;

/// The host files copied for host-network pods / pods without DNS settings.
const HOST_HOSTS: &str = "/etc/hosts";
const HOST_RESOLV: &str = "/etc/resolv.conf";

/// `tmpfs` magic (`linux/magic.h`), to tell whether the shm dir is still mounted.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// DNS settings of a pod (CRI `DNSConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Errors writing pod files or mounting the pod's shm.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("invalid {field} `{value}`: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("pod file {path}: {op}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mount pod shm tmpfs on {path}")]
    Mount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unmount pod shm {path}")]
    Unmount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl FilesError {
    /// Whether the error is the caller's bad input (gRPC InvalidArgument).
    pub fn is_invalid_argument(&self) -> bool {
        matches!(self, FilesError::Invalid { .. })
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FilesError + 'a {
    move |source| FilesError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A value that ends up on one line of a config file: no whitespace or control characters.
fn check_word(field: &'static str, value: &str) -> Result<(), FilesError> {
    if value.is_empty() {
        return Err(FilesError::Invalid {
            field,
            value: value.to_string(),
            reason: "empty",
        });
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(FilesError::Invalid {
            field,
            value: value.to_string(),
            reason: "contains whitespace, control characters or `#`",
        });
    }
    Ok(())
}

/// Hostname check shared by the hostname and hosts files (RFC 1123-ish, lenient on case).
fn check_hostname(hostname: &str) -> Result<(), FilesError> {
    check_word("hostname", hostname)?;
    if hostname.len() > 64 || hostname.contains('/') {
        return Err(FilesError::Invalid {
            field: "hostname",
            value: hostname.to_string(),
            reason: "longer than 64 bytes or contains `/`",
        });
    }
    Ok(())
}

/// Write `data` to `path` atomically (mode 0644, readable by any container user). Not
/// fsynced: pod files live in the runroot, which does not outlive a reboot.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FilesError> {
    crate::atomic_file::write(path, data, false).map_err(|e| io_err(e.op, &e.path)(e.source))
}

/// `/etc/hostname`: the pod hostname and a newline.
pub fn write_hostname(path: &Path, hostname: &str) -> Result<(), FilesError> {
    check_hostname(hostname)?;
    write_atomic(path, format!("{hostname}\n").as_bytes())
}

/// Contents of a pod's `/etc/hosts` (kubelet's managed-hosts layout, without the pod IP,
/// which only CNI knows).
pub fn hosts_content(hostname: &str) -> String {
    format!(
        "# Kubernetes-managed hosts file (crust).\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n\
         127.0.1.1\t{hostname}\n"
    )
}

/// `/etc/hosts`: localhost (v4 and v6) and the pod hostname; with `host_network` a copy of
/// the host's `/etc/hosts` (the kubelet does the same for host-network pods).
pub fn write_hosts(path: &Path, hostname: &str, host_network: bool) -> Result<(), FilesError> {
    write_hosts_from(path, hostname, host_network, Path::new(HOST_HOSTS))
}

fn write_hosts_from(
    path: &Path,
    hostname: &str,
    host_network: bool,
    host_file: &Path,
) -> Result<(), FilesError> {
    if host_network {
        let data = fs::read(host_file).map_err(io_err("read host hosts file", host_file))?;
        return write_atomic(path, &data);
    }
    check_hostname(hostname)?;
    write_atomic(path, hosts_content(hostname).as_bytes())
}

/// A resolv.conf nameserver: an IPv4 or IPv6 address, the latter optionally with a
/// `%zone` scope for link-local servers (glibc accepts it).
fn is_nameserver(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    match s.split_once('%') {
        Some((addr, zone)) => {
            addr.parse::<std::net::Ipv6Addr>().is_ok()
                && !zone.is_empty()
                && zone
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        }
        None => false,
    }
}

/// Validate DNS settings and render them as resolv.conf (resolv.conf(5)).
pub fn resolv_content(dns: &DnsSettings) -> Result<String, FilesError> {
    let mut out = String::new();
    for s in &dns.servers {
        if !is_nameserver(s) {
            return Err(FilesError::Invalid {
                field: "dns_config.servers",
                value: s.clone(),
                reason: "not an IP address",
            });
        }
        out.push_str("nameserver ");
        out.push_str(s);
        out.push('\n');
    }
    for s in &dns.searches {
        check_word("dns_config.searches", s)?;
    }
    if !dns.searches.is_empty() {
        out.push_str("search ");
        out.push_str(&dns.searches.join(" "));
        out.push('\n');
    }
    for o in &dns.options {
        check_word("dns_config.options", o)?;
    }
    if !dns.options.is_empty() {
        out.push_str("options ");
        out.push_str(&dns.options.join(" "));
        out.push('\n');
    }
    Ok(out)
}

/// `/etc/resolv.conf` from the pod's DNS settings; `None` copies the host's file.
pub fn write_resolv(path: &Path, dns: Option<&DnsSettings>) -> Result<(), FilesError> {
    write_resolv_from(path, dns, Path::new(HOST_RESOLV))
}

fn write_resolv_from(
    path: &Path,
    dns: Option<&DnsSettings>,
    host_file: &Path,
) -> Result<(), FilesError> {
    match dns {
        Some(d) => write_atomic(path, resolv_content(d)?.as_bytes()),
        None => match fs::read(host_file) {
            Ok(data) => write_atomic(path, &data),
            // A host without resolv.conf: the pod gets an empty one (libc defaults).
            Err(e) if e.kind() == io::ErrorKind::NotFound => write_atomic(path, b""),
            Err(e) => Err(io_err("read host resolv.conf", host_file)(e)),
        },
    }
}

/// tmpfs mount options for the pod shm.
pub fn shm_options(size_bytes: u64) -> String {
    let size = if size_bytes == 0 {
        DEFAULT_SHM_SIZE
    } else {
        size_bytes
    };
    format!("mode=1777,size={size}")
}

/// Mount the pod's `/dev/shm` tmpfs at `path` (created if missing): nosuid, nodev, noexec,
/// mode 1777, `size_bytes` (0 = [`DEFAULT_SHM_SIZE`]), like CRI-O's and containerd's
/// sandbox shm.
pub fn mount_shm(path: &Path, size_bytes: u64) -> Result<(), FilesError> {
    fs::create_dir_all(path).map_err(io_err("create shm directory", path))?;
    let data =
        std::ffi::CString::new(shm_options(size_bytes)).map_err(|_| FilesError::Invalid {
            field: "shm size",
            value: size_bytes.to_string(),
            reason: "unrepresentable",
        })?;
    mount(
        "shm",
        path,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        data.as_c_str(),
    )
    .map_err(|e| FilesError::Mount {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    tracing::debug!(path = %path.display(), size_bytes, "mounted pod shm");
    Ok(())
}

fn is_tmpfs_mount(path: &Path) -> bool {
    let Ok(st) = rustix::fs::statfs(path) else {
        return false;
    };
    #[allow(clippy::unnecessary_cast)]
    let tmpfs = st.f_type as i64 == TMPFS_MAGIC;
    if !tmpfs {
        return false;
    }
    // A tmpfs parent (e.g. /run) also reports TMPFS_MAGIC: compare with the parent's device.
    let (Ok(me), Some(parent)) = (rustix::fs::stat(path), path.parent()) else {
        return false;
    };
    match rustix::fs::stat(parent) {
        Ok(p) => p.st_dev != me.st_dev,
        Err(_) => false,
    }
}

/// Unmount the pod shm at `path` (detached, so a container still using it does not block
/// the pod's removal) and remove the directory. Idempotent.
pub fn unmount_shm(path: &Path) -> Result<(), FilesError> {
    let mut rounds = 0;
    while is_tmpfs_mount(path) && rounds < 8 {
        rounds += 1;
        match unmount(path, UnmountFlags::DETACH) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => break,
            Err(e) => {
                return Err(FilesError::Unmount {
                    path: path.to_path_buf(),
                    source: e.into(),
                });
            }
        }
    }
    match fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove shm directory", path)(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dns(servers: &[&str], searches: &[&str], options: &[&str]) -> DnsSettings {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        DnsSettings {
            servers: v(servers),
            searches: v(searches),
            options: v(options),
        }
    }

    #[test]
    fn resolv_rendering() {
        let d = dns(
            &["10.96.0.10", "fd00::a"],
            &["default.svc.cluster.local", "svc.cluster.local"],
            &["ndots:5", "edns0"],
        );
        assert_eq!(
            resolv_content(&d).unwrap(),
            "nameserver 10.96.0.10\nnameserver fd00::a\n\
             search default.svc.cluster.local svc.cluster.local\noptions ndots:5 edns0\n"
        );
        assert_eq!(resolv_content(&DnsSettings::default()).unwrap(), "");
        assert!(is_nameserver("fe80::1%eth0"));
        assert!(!is_nameserver("1.2.3.4%eth0"));
        assert!(!is_nameserver("fe80::1%"));
        assert!(!is_nameserver("fe80::1%eth0\nx"));
        assert!(!is_nameserver(" 1.2.3.4"));
    }

    #[test]
    fn resolv_validation() {
        for (d, field, value) in [
            (
                dns(&["dns.example"], &[], &[]),
                "dns_config.servers",
                "dns.example",
            ),
            (
                dns(&["1.2.3.4\n"], &[], &[]),
                "dns_config.servers",
                "1.2.3.4\n",
            ),
            (dns(&[], &["a b"], &[]), "dns_config.searches", "a b"),
            (
                dns(&[], &["a\nnameserver 6.6.6.6"], &[]),
                "dns_config.searches",
                "a\nnameserver 6.6.6.6",
            ),
            (
                dns(&[], &[], &["ndots:5\n"]),
                "dns_config.options",
                "ndots:5\n",
            ),
            (dns(&[], &[], &[""]), "dns_config.options", ""),
        ] {
            match resolv_content(&d) {
                Err(FilesError::Invalid {
                    field: f, value: v, ..
                }) => {
                    assert_eq!((f, v.as_str()), (field, value));
                }
                other => panic!("expected invalid for {d:?}, got {other:?}"),
            }
        }
        assert!(
            resolv_content(&dns(&["x"], &[], &[]))
                .unwrap_err()
                .is_invalid_argument()
        );
    }

    #[test]
    fn write_files() {
        let t = tempfile::tempdir().unwrap();
        let h = t.path().join("hostname");
        write_hostname(&h, "pod-1").unwrap();
        assert_eq!(fs::read_to_string(&h).unwrap(), "pod-1\n");
        write_hostname(&h, "pod-2").unwrap();
        assert_eq!(fs::read_to_string(&h).unwrap(), "pod-2\n");
        assert!(
            write_hostname(&h, "bad name")
                .unwrap_err()
                .is_invalid_argument()
        );

        let hosts = t.path().join("hosts");
        write_hosts(&hosts, "pod-1", false).unwrap();
        let s = fs::read_to_string(&hosts).unwrap();
        assert!(s.contains("127.0.0.1\tlocalhost\n"));
        assert!(s.contains("::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(s.ends_with("127.0.1.1\tpod-1\n"));

        let host_hosts = t.path().join("host-hosts");
        fs::write(&host_hosts, "1.2.3.4 myhost\n").unwrap();
        write_hosts_from(&hosts, "ignored", true, &host_hosts).unwrap();
        assert_eq!(fs::read_to_string(&hosts).unwrap(), "1.2.3.4 myhost\n");

        let r = t.path().join("resolv.conf");
        write_resolv(&r, Some(&dns(&["8.8.8.8"], &[], &[]))).unwrap();
        assert_eq!(fs::read_to_string(&r).unwrap(), "nameserver 8.8.8.8\n");
        let host_resolv = t.path().join("host-resolv");
        fs::write(&host_resolv, "nameserver 9.9.9.9\n").unwrap();
        write_resolv_from(&r, None, &host_resolv).unwrap();
        assert_eq!(fs::read_to_string(&r).unwrap(), "nameserver 9.9.9.9\n");
        write_resolv_from(&r, None, &t.path().join("missing")).unwrap();
        assert_eq!(fs::read_to_string(&r).unwrap(), "");
        // Invalid input leaves the previous file alone and no temp files behind.
        assert!(write_resolv(&r, Some(&dns(&["nope"], &[], &[]))).is_err());
        let names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(&r).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn shm_options_default() {
        assert_eq!(shm_options(0), "mode=1777,size=67108864");
        assert_eq!(shm_options(1 << 20), "mode=1777,size=1048576");
    }

    #[test]
    fn unmount_shm_missing_is_ok() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("shm");
        unmount_shm(&p).unwrap();
        fs::create_dir(&p).unwrap();
        unmount_shm(&p).unwrap();
        assert!(!p.exists());
    }

    #[test]
    fn shm_mount_root() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        struct Guard(PathBuf);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = unmount_shm(&self.0);
            }
        }
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("shm");
        let _g = Guard(p.clone());
        mount_shm(&p, 2 << 20).unwrap();
        assert!(is_tmpfs_mount(&p));
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info
            .lines()
            .find(|l| l.contains(p.to_str().unwrap()))
            .unwrap()
            .to_string();
        assert!(
            line.contains("nosuid") && line.contains("nodev") && line.contains("noexec"),
            "{line}"
        );
        // tmpfs lists mode= only when it differs from its default 1777: check the inode.
        assert!(line.contains("size=2048k"), "{line}");
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777
        };
        assert_eq!(mode, 0o1777);
        unmount_shm(&p).unwrap();
        assert!(!p.exists());
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!info.contains(p.to_str().unwrap()));
        unmount_shm(&p).unwrap();
    }
}
