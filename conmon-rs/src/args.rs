//! Command-line contract between the daemon and the monitor (see `main.rs` and
//! README.md). Hand-parsed: a few flags do not justify an argument-parser crate
//! in a process that runs once per container.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("argument {flag}: value missing")]
    Missing { flag: String },
    #[error("argument {flag}: required")]
    Required { flag: &'static str },
    #[error("argument {flag}: invalid number `{value}`")]
    Number { flag: String, value: String },
    #[error("unknown argument `{0}`")]
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: PathBuf,
    pub runtime_root: Option<PathBuf>,
    pub runtime_args: Vec<OsString>,
    pub log_path: PathBuf,
    pub log_max_size: Option<u64>,
    pub exit_file: PathBuf,
    pub socket: PathBuf,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub sync_fd: Option<i32>,
    /// Do not fork/setsid (tests, or a daemon that already detached us).
    pub no_daemonize: bool,
}

fn string(o: OsString) -> String {
    String::from_utf8_lossy(&o.into_vec()).into_owned()
}

/// Parses the arguments after argv[0].
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Args, ArgsError> {
    let mut a = Args::default();
    let mut it = argv.into_iter();
    let (mut id, mut bundle, mut runtime, mut log, mut exit, mut sock) =
        (None, None, None, None, None, None);
    while let Some(arg) = it.next() {
        let flag = string(arg);
        let mut value = |flag: &str| {
            it.next().ok_or_else(|| ArgsError::Missing {
                flag: flag.to_string(),
            })
        };
        let number = |flag: &str, v: OsString| {
            let s = string(v);
            s.parse::<u64>().map_err(|_| ArgsError::Number {
                flag: flag.to_string(),
                value: s,
            })
        };
        match flag.as_str() {
            "--id" => id = Some(string(value(&flag)?)),
            "--bundle" => bundle = Some(PathBuf::from(value(&flag)?)),
            "--runtime" => runtime = Some(PathBuf::from(value(&flag)?)),
            "--runtime-root" => a.runtime_root = Some(PathBuf::from(value(&flag)?)),
            "--runtime-arg" => a.runtime_args.push(value(&flag)?),
            "--log-path" => log = Some(PathBuf::from(value(&flag)?)),
            "--log-max-size" => a.log_max_size = Some(number(&flag, value(&flag)?)?),
            "--exit-file" => exit = Some(PathBuf::from(value(&flag)?)),
            "--socket" => sock = Some(PathBuf::from(value(&flag)?)),
            "--sync-fd" => {
                let v = value(&flag)?;
                let n = number(&flag, v.clone())?;
                a.sync_fd = Some(i32::try_from(n).map_err(|_| ArgsError::Number {
                    flag: flag.clone(),
                    value: string(v),
                })?);
            }
            "--tty" => a.tty = true,
            "--stdin" => a.stdin = true,
            "--stdin-once" => a.stdin_once = true,
            "--no-daemonize" => a.no_daemonize = true,
            _ => return Err(ArgsError::Unknown(flag)),
        }
    }
    a.id = id.ok_or(ArgsError::Required { flag: "--id" })?;
    a.bundle = bundle.ok_or(ArgsError::Required { flag: "--bundle" })?;
    a.runtime = runtime.ok_or(ArgsError::Required { flag: "--runtime" })?;
    a.log_path = log.ok_or(ArgsError::Required { flag: "--log-path" })?;
    a.exit_file = exit.ok_or(ArgsError::Required {
        flag: "--exit-file",
    })?;
    a.socket = sock.ok_or(ArgsError::Required { flag: "--socket" })?;
    Ok(a)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Result<Args, ArgsError> {
        parse(s.iter().map(OsString::from))
    }

    const BASE: &[&str] = &[
        "--id",
        "c1",
        "--bundle",
        "/b",
        "--runtime",
        "/usr/sbin/runc",
        "--log-path",
        "/l",
        "--exit-file",
        "/e",
        "--socket",
        "/s",
    ];

    #[test]
    fn minimal() {
        let a = p(BASE).unwrap();
        assert_eq!(a.id, "c1");
        assert_eq!(a.bundle, PathBuf::from("/b"));
        assert!(!a.tty && !a.stdin && a.sync_fd.is_none() && a.runtime_args.is_empty());
    }

    #[test]
    fn all_flags() {
        let mut v = BASE.to_vec();
        v.extend([
            "--runtime-root",
            "/r",
            "--runtime-arg",
            "--systemd-cgroup",
            "--runtime-arg",
            "--debug",
            "--log-max-size",
            "1024",
            "--tty",
            "--stdin",
            "--stdin-once",
            "--sync-fd",
            "3",
            "--no-daemonize",
        ]);
        let a = p(&v).unwrap();
        assert_eq!(a.runtime_root, Some(PathBuf::from("/r")));
        assert_eq!(
            a.runtime_args,
            vec![
                OsString::from("--systemd-cgroup"),
                OsString::from("--debug")
            ]
        );
        assert_eq!(a.log_max_size, Some(1024));
        assert_eq!(a.sync_fd, Some(3));
        assert!(a.tty && a.stdin && a.stdin_once && a.no_daemonize);
    }

    #[test]
    fn errors() {
        assert_eq!(
            p(&["--id"]),
            Err(ArgsError::Missing {
                flag: "--id".into()
            })
        );
        assert_eq!(
            p(&["--id", "x"]),
            Err(ArgsError::Required { flag: "--bundle" })
        );
        assert_eq!(p(&["--bogus"]), Err(ArgsError::Unknown("--bogus".into())));
        let mut v = BASE.to_vec();
        v.extend(["--sync-fd", "x"]);
        assert_eq!(
            p(&v),
            Err(ArgsError::Number {
                flag: "--sync-fd".into(),
                value: "x".into()
            })
        );
    }
}
