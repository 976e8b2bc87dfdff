//! systemd readiness notification (`sd_notify(3)`), without libsystemd.
//!
//! The unit is `Type=notify` (contrib/systemd/crust.service), so systemd (and with it
//! `Before=kubelet.service` ordering) waits for `READY=1`, which crust sends once the CRI
//! socket is bound and listening, i.e. once a kubelet connection would be accepted. Around a
//! SIGHUP reload crust sends `RELOADING=1` with `MONOTONIC_USEC=` (required by systemd 253+
//! for `Type=notify-reload`, harmless before) and then `READY=1` again; on shutdown
//! `STOPPING=1`.
//!
//! The protocol (systemd's `sd_notify(3)` "NOTES"): one datagram of newline-separated
//! `KEY=VALUE` assignments sent on an `AF_UNIX` `SOCK_DGRAM` socket to the path in
//! `$NOTIFY_SOCKET`; a leading `@` means a Linux abstract socket name. Without
//! `NOTIFY_SOCKET` (not started by systemd, tests, CI) every call is a no-op. Failures are
//! logged and otherwise ignored: readiness reporting must never stop the daemon.

use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Errors sending a notification.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is set but unusable (empty, or a relative path).
    #[error("NOTIFY_SOCKET {value:?} is neither an absolute path nor an @abstract name")]
    BadAddress {
        /// The variable's value.
        value: String,
    },
    /// The datagram could not be sent.
    #[error("cannot send {state:?} to NOTIFY_SOCKET {value:?}")]
    Send {
        /// The variable's value.
        value: String,
        /// The state sent (first line).
        state: String,
        #[source]
        source: io::Error,
    },
}

/// Where notifications go: parsed once from `$NOTIFY_SOCKET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A filesystem socket path.
    Path(PathBuf),
    /// A Linux abstract socket name (without the leading `@`).
    Abstract(Vec<u8>),
}

impl Target {
    /// Parse a `$NOTIFY_SOCKET` value.
    pub fn parse(value: &str) -> Result<Self, NotifyError> {
        if let Some(name) = value.strip_prefix('@') {
            if !name.is_empty() {
                return Ok(Self::Abstract(name.as_bytes().to_vec()));
            }
        } else if value.starts_with('/') {
            return Ok(Self::Path(PathBuf::from(value)));
        }
        Err(NotifyError::BadAddress {
            value: value.to_owned(),
        })
    }

    fn describe(&self) -> String {
        match self {
            Self::Path(p) => p.display().to_string(),
            Self::Abstract(n) => format!("@{}", String::from_utf8_lossy(n)),
        }
    }

    /// Send one datagram holding `state`.
    pub fn send(&self, state: &str) -> Result<(), NotifyError> {
        let err = |source: io::Error| NotifyError::Send {
            value: self.describe(),
            state: state.lines().next().unwrap_or_default().to_owned(),
            source,
        };
        let sock = UnixDatagram::unbound().map_err(err)?;
        match self {
            Self::Path(p) => sock.send_to(state.as_bytes(), p).map(|_| ()).map_err(err),
            Self::Abstract(name) => {
                let addr = SocketAddr::from_abstract_name(name).map_err(err)?;
                sock.send_to_addr(state.as_bytes(), &addr)
                    .map(|_| ())
                    .map_err(err)
            }
        }
    }
}

/// The notifier the daemon uses: `None` when not started by systemd.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<Target>,
    /// Why a set `NOTIFY_SOCKET` was ignored; logged by [`Notifier::ready`] because
    /// [`take_from_env`] runs before logging is set up.
    ignored: Option<String>,
}

static GLOBAL: OnceLock<Notifier> = OnceLock::new();

/// Read `$NOTIFY_SOCKET` once and remove it from the environment (like `sd_notify`'s
/// `unset_environment`): runc reacts to an inherited `NOTIFY_SOCKET` by proxying the
/// container's own notifications to systemd, and monitors must not talk to systemd either.
///
/// Call it from `main` while the process is still single-threaded (before the tokio
/// runtime is built); later calls return the value taken first.
pub fn take_from_env() -> &'static Notifier {
    GLOBAL.get_or_init(|| {
        let Some(value) = std::env::var_os(NOTIFY_SOCKET_ENV) else {
            return Notifier::default();
        };
        // SAFETY: documented precondition: called before any other thread exists, so no
        // thread reads the environment concurrently.
        unsafe { std::env::remove_var(NOTIFY_SOCKET_ENV) };
        let value = value.to_string_lossy().into_owned();
        match Target::parse(&value) {
            Ok(t) => Notifier::to(t),
            Err(e) => Notifier {
                target: None,
                ignored: Some(e.to_string()),
            },
        }
    })
}

/// The notifier taken by [`take_from_env`], or a disabled one when it was never called
/// (the daemon run in-process by tests).
pub fn notifier() -> &'static Notifier {
    static DISABLED: Notifier = Notifier {
        target: None,
        ignored: None,
    };
    GLOBAL.get().unwrap_or(&DISABLED)
}

impl Notifier {
    /// A notifier sending to `target` (tests).
    pub fn to(target: Target) -> Self {
        Self {
            target: Some(target),
            ignored: None,
        }
    }

    /// Whether notifications are sent at all.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    fn send(&self, state: &str) {
        let Some(t) = &self.target else { return };
        match t.send(state) {
            Ok(()) => tracing::debug!(state, "notified systemd"),
            Err(e) => tracing::warn!(error = %crate::logging::error_chain(&e), "sd_notify failed"),
        }
    }

    /// The CRI socket accepts connections.
    pub fn ready(&self) {
        if let Some(why) = &self.ignored {
            tracing::warn!(error = %why, "not notifying systemd");
        }
        self.send(&format!(
            "READY=1\nSTATUS=serving CRI v1\nMAINPID={}",
            std::process::id()
        ));
    }

    /// A SIGHUP reload starts; call [`Notifier::ready`] when it is done.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading configuration",
            monotonic_usec()
        ));
    }

    /// Shutdown starts.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=shutting down");
    }
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd expects in `MONOTONIC_USEC`.
fn monotonic_usec() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u128::try_from(ts.tv_sec).unwrap_or_default();
    let nanos = u128::try_from(ts.tv_nsec).unwrap_or_default();
    secs * 1_000_000 + nanos / 1_000
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn parses_addresses() {
        assert_eq!(
            Target::parse("/run/systemd/notify").unwrap(),
            Target::Path("/run/systemd/notify".into())
        );
        assert_eq!(
            Target::parse("@abc").unwrap(),
            Target::Abstract(b"abc".to_vec())
        );
        for bad in ["", "@", "relative/sock"] {
            let err = Target::parse(bad).unwrap_err();
            assert!(err.to_string().contains("NOTIFY_SOCKET"), "{err}");
        }
    }

    #[test]
    fn sends_states_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::to(Target::Path(path));
        assert!(n.enabled());
        n.ready();
        let got = recv(&sock);
        assert!(got.starts_with("READY=1\n"), "{got}");
        assert!(got.contains(&format!("MAINPID={}", std::process::id())));
        let before = monotonic_usec();
        n.reloading();
        let got = recv(&sock);
        let mut lines = got.lines();
        assert_eq!(lines.next(), Some("RELOADING=1"));
        let usec: u128 = lines
            .next()
            .unwrap()
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(usec >= before && usec <= monotonic_usec(), "{usec}");
        n.stopping();
        assert!(recv(&sock).starts_with("STOPPING=1\n"));
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("crust-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let target = Target::parse(&format!("@{name}")).unwrap();
        Notifier::to(target).stopping();
        assert!(recv(&sock).starts_with("STOPPING=1"));
    }

    #[test]
    fn disabled_is_a_no_op_and_missing_socket_is_not_fatal() {
        let n = Notifier::default();
        assert!(!n.enabled());
        n.ready();
        let dir = tempfile::tempdir().unwrap();
        let t = Target::Path(dir.path().join("nobody-listens"));
        let err = t.send("READY=1").unwrap_err();
        assert!(err.to_string().contains("READY=1"), "{err}");
        // The daemon-facing API only logs.
        Notifier::to(t).ready();
    }
}
