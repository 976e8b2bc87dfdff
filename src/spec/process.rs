//! The container process: argv, environment, working directory and stop signal.
//!
//! The argv merge follows CRI api.proto (`ContainerConfig.command` "Command to execute (i.e.,
//! entrypoint for docker)", `args` "Args for the Command (i.e., command for docker)") and
//! Docker/containerd semantics: a CRI `command` replaces the image `Entrypoint` and then the
//! image `Cmd` is dropped (unless CRI `args` is given); CRI `args` replaces `Cmd`.
//! The environment is containerd's: `HOSTNAME` first, then the image `Env`, then the CRI
//! `envs`, a later entry overriding an earlier one with the same name; `PATH` gets the
//! usual default when nobody set it.

use super::SpecError;

/// `PATH` used when neither the image nor the request sets one (Docker's/containerd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the image config (OCI image spec `config` object) contributes to a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSpecInfo {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` (`NAME=value` entries).
    pub env: Vec<String>,
    /// `WorkingDir` ("" = `/`).
    pub working_dir: String,
    /// `User` ("", "name", "uid", "uid:gid", "name:group").
    pub user: String,
    /// `StopSignal`, if the image has one.
    pub stop_signal: Option<String>,
}

impl ImageSpecInfo {
    /// Read the OCI image config's `config` object (the `config` member of the image
    /// configuration JSON, not the whole document). Missing or `null` members are empty; a
    /// member of the wrong type is ignored rather than failing the container.
    pub fn from_config_json(v: &serde_json::Value) -> Self {
        let strings = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(serde_json::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let string = |key: &str| -> String {
            v.get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let stop = string("StopSignal");
        ImageSpecInfo {
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
            env: strings("Env"),
            working_dir: string("WorkingDir"),
            user: string("User"),
            stop_signal: (!stop.is_empty()).then_some(stop),
        }
    }
}

/// The process argv from the image and the CRI request (see the module docs).
pub fn merge_args(
    command: &[String],
    args: &[String],
    image: &ImageSpecInfo,
) -> Result<Vec<String>, SpecError> {
    let mut argv: Vec<String> = if command.is_empty() {
        image.entrypoint.clone()
    } else {
        command.to_vec()
    };
    if !args.is_empty() {
        argv.extend(args.iter().cloned());
    } else if command.is_empty() {
        argv.extend(image.cmd.iter().cloned());
    }
    if argv.is_empty() {
        return Err(SpecError::invalid(
            "command",
            "",
            "no command specified: neither the request nor the image has an entrypoint or cmd",
        ));
    }
    Ok(argv)
}

/// The name part of a `NAME=value` entry (the whole entry when it has no `=`).
fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// The process environment (see the module docs). `hostname` "" sets no `HOSTNAME`.
pub fn merge_env(
    hostname: &str,
    image_env: &[String],
    cri_envs: &[(String, String)],
    tty: bool,
) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut set = |entry: String| {
        let key = env_key(&entry).to_string();
        match env.iter_mut().find(|e| env_key(e) == key) {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    };
    if !hostname.is_empty() {
        set(format!("HOSTNAME={hostname}"));
    }
    for e in image_env {
        set(e.clone());
    }
    for (k, v) in cri_envs {
        set(format!("{k}={v}"));
    }
    if !env.iter().any(|e| env_key(e) == "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    // containerd's WithTTY: a terminal gets TERM unless someone chose one.
    if tty && !env.iter().any(|e| env_key(e) == "TERM") {
        env.push("TERM=xterm".to_string());
    }
    env
}

/// The working directory: the request's, else the image's, else `/`. It must be absolute
/// (OCI runtime spec `process.cwd`); a relative image `WorkingDir` is taken from `/` like
/// Docker does.
pub fn working_dir(cri: &str, image: &str) -> Result<String, SpecError> {
    if !cri.is_empty() {
        if !cri.starts_with('/') {
            return Err(SpecError::invalid(
                "working_dir",
                cri,
                "must be an absolute path",
            ));
        }
        return Ok(cri.to_string());
    }
    if image.is_empty() {
        return Ok("/".to_string());
    }
    if image.starts_with('/') {
        Ok(image.to_string())
    } else {
        Ok(format!("/{image}"))
    }
}

/// Linux signal names and numbers (x86, arm, aarch64 and the generic ABI agree on these).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// First and last real-time signal numbers as seen by programs (glibc reserves 32 and 33).
const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

/// Parse a stop signal the way Docker's `signal.ParseSignal` does: a number, or a name with
/// or without `SIG`, any case, including `RTMIN+n` / `RTMAX-n`.
pub fn parse_signal(s: &str) -> Result<i32, SpecError> {
    let bad = |reason: &str| SpecError::invalid("stop signal", s, reason);
    let trimmed = s.trim();
    if let Ok(n) = trimmed.parse::<i32>() {
        if (1..=SIGRTMAX).contains(&n) {
            return Ok(n);
        }
        return Err(bad("signal number out of range 1..64"));
    }
    let upper = trimmed.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = SIGNALS.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32, SpecError> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse()
                .map_err(|_| bad("bad real-time signal offset"))?
        };
        let n = base + sign * off;
        if (SIGRTMIN..=SIGRTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad("real-time signal out of range"))
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return match rest.strip_prefix('+') {
            Some(off) => rt(SIGRTMIN, off, 1),
            None if rest.is_empty() => Ok(SIGRTMIN),
            None => Err(bad("unknown signal")),
        };
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return match rest.strip_prefix('-') {
            Some(off) => rt(SIGRTMAX, off, -1),
            None if rest.is_empty() => Ok(SIGRTMAX),
            None => Err(bad("unknown signal")),
        };
    }
    Err(bad("unknown signal"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    /// (entrypoint, cmd, command, args, expected)
    type MergeCase<'a> = (
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
    );

    #[test]
    fn args_merge_table() {
        // (entrypoint, cmd, command, args, expected)
        let cases: &[MergeCase] = &[
            (&["/ep"], &["c1"], &[], &[], &["/ep", "c1"]),
            (&["/ep"], &["c1"], &["/x"], &[], &["/x"]),
            (&["/ep"], &["c1"], &[], &["a"], &["/ep", "a"]),
            (&["/ep"], &["c1"], &["/x"], &["a"], &["/x", "a"]),
            (&[], &["sh"], &[], &[], &["sh"]),
            (&[], &["sh"], &[], &["ls", "-l"], &["ls", "-l"]),
            (&[], &[], &["/bin/true"], &[], &["/bin/true"]),
            (&[], &[], &[], &["echo"], &["echo"]),
        ];
        for (ep, cmd, command, args, want) in cases {
            let image = ImageSpecInfo {
                entrypoint: v(ep),
                cmd: v(cmd),
                ..Default::default()
            };
            let got = merge_args(&v(command), &v(args), &image).unwrap();
            assert_eq!(
                got,
                v(want),
                "ep={ep:?} cmd={cmd:?} c={command:?} a={args:?}"
            );
        }
    }

    #[test]
    fn empty_argv_is_invalid_command() {
        let e = merge_args(&[], &[], &ImageSpecInfo::default()).unwrap_err();
        assert!(e.is_invalid_argument());
        assert!(e.to_string().contains("command"), "{e}");
    }

    #[test]
    fn env_override_and_defaults() {
        let image = v(&["PATH=/img", "A=1", "B=2", "HOSTNAME=fromimage", "NOVALUE"]);
        let cri = vec![
            ("B".to_string(), "3".to_string()),
            ("C".to_string(), "x=y".to_string()),
        ];
        let env = merge_env("pod1", &image, &cri, false);
        assert_eq!(
            env,
            v(&[
                "HOSTNAME=fromimage",
                "PATH=/img",
                "A=1",
                "B=3",
                "NOVALUE",
                "C=x=y"
            ])
        );
        let env = merge_env("pod1", &[], &[], true);
        assert_eq!(
            env,
            v(&[
                "HOSTNAME=pod1",
                &format!("PATH={DEFAULT_PATH}"),
                "TERM=xterm"
            ])
        );
        let env = merge_env("", &[], &[("PATH".into(), "/p".into())], false);
        assert_eq!(env, v(&["PATH=/p"]));
    }

    #[test]
    fn working_dir_rules() {
        assert_eq!(working_dir("", "").unwrap(), "/");
        assert_eq!(working_dir("", "/app").unwrap(), "/app");
        assert_eq!(working_dir("", "app").unwrap(), "/app");
        assert_eq!(working_dir("/w", "/app").unwrap(), "/w");
        assert!(
            working_dir("rel", "/app")
                .unwrap_err()
                .is_invalid_argument()
        );
    }

    #[test]
    fn signals() {
        let ok = [
            ("SIGTERM", 15),
            ("TERM", 15),
            ("term", 15),
            ("15", 15),
            ("SIGKILL", 9),
            ("SIGQUIT", 3),
            ("SIGWINCH", 28),
            ("SIGRTMIN", 34),
            ("SIGRTMIN+3", 37),
            ("RTMAX-1", 63),
            ("SIGRTMAX", 64),
            ("64", 64),
        ];
        for (s, n) in ok {
            assert_eq!(parse_signal(s).unwrap(), n, "{s}");
        }
        for s in [
            "", "0", "65", "-1", "SIGFOO", "RTMIN+40", "RTMIN-1", "RTMAXX",
        ] {
            assert!(parse_signal(s).unwrap_err().is_invalid_argument(), "{s}");
        }
    }

    #[test]
    fn image_config_json() {
        let j = serde_json::json!({
            "Entrypoint": ["/ep"], "Cmd": null, "Env": ["A=1", 5],
            "WorkingDir": "/w", "User": "1000:1000", "StopSignal": "SIGQUIT"
        });
        let i = ImageSpecInfo::from_config_json(&j);
        assert_eq!(i.entrypoint, v(&["/ep"]));
        assert!(i.cmd.is_empty());
        assert_eq!(i.env, v(&["A=1"]));
        assert_eq!(i.working_dir, "/w");
        assert_eq!(i.user, "1000:1000");
        assert_eq!(i.stop_signal.as_deref(), Some("SIGQUIT"));
        let i = ImageSpecInfo::from_config_json(&serde_json::json!({}));
        assert_eq!(i, ImageSpecInfo::default());
    }
}
