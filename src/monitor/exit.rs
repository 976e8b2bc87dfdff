//! Exit files and liveness: how the daemon learns that a container ended, including
//! while the daemon itself was down.
//!
//! The monitor writes `{"exit_code":137,"signal":9,"finished_at":"<RFC3339Nano>",
//! "oom_killed":false}` atomically (temp + rename) once the init exited and its output
//! was drained, like conmon's `--exit-dir` files for CRI-O.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::MonitorError;

/// A container's end, as recorded by its monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecord {
    /// Exit status, or 128 + signal for a signal death.
    pub exit_code: i32,
    /// Terminating signal; 0 for a normal exit.
    pub signal: i32,
    /// When the init exited.
    pub finished_at: SystemTime,
    /// The container's memory cgroup saw an OOM kill.
    pub oom_killed: bool,
}

#[derive(Deserialize)]
struct RawExit {
    exit_code: i32,
    #[serde(default)]
    signal: i32,
    finished_at: String,
    #[serde(default)]
    oom_killed: bool,
}

/// Parse exit-file JSON.
pub fn parse_exit(json: &[u8]) -> Result<ExitRecord, String> {
    let raw: RawExit = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let finished_at = parse_rfc3339(&raw.finished_at)
        .ok_or_else(|| format!("finished_at {:?} is not RFC 3339", raw.finished_at))?;
    Ok(ExitRecord {
        exit_code: raw.exit_code,
        signal: raw.signal,
        finished_at,
        oom_killed: raw.oom_killed,
    })
}

/// Read `path`; `None` when it does not exist (the container has not exited, or never
/// started).
pub fn read_exit_file(path: &Path) -> Result<Option<ExitRecord>, MonitorError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(MonitorError::ExitFileRead {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse_exit(&bytes)
        .map(Some)
        .map_err(|reason| MonitorError::ExitFileInvalid {
            path: path.to_path_buf(),
            reason,
        })
}

/// Poll for `path` until it appears or `timeout` passes (StopContainer's grace period).
/// The monitor writes it within milliseconds of the exit, so a short poll interval
/// beats an inotify watch in simplicity at no measurable cost.
pub async fn wait_exit_file(
    path: &Path,
    timeout: Duration,
) -> Result<Option<ExitRecord>, MonitorError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut interval = Duration::from_millis(5);
    loop {
        let p = path.to_path_buf();
        if let Some(r) =
            crate::blocking::run("read exit file", move || read_exit_file(&p)).await??
        {
            return Ok(Some(r));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(Duration::from_millis(100));
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse RFC 3339 (`2026-11-23T08:17:00.123456789Z`, any fraction length, `Z` or a
/// `+hh:mm`/`-hh:mm` offset) as Go's `time.RFC3339Nano` writes it. Times before
/// 1970 are rejected (no exit can have happened then).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(s.get(0..4)?)?, num(s.get(5..7)?)?, num(s.get(8..10)?)?);
    let (hour, min, sec) = (
        num(s.get(11..13)?)?,
        num(s.get(14..16)?)?,
        num(s.get(17..19)?)?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let d = &frac[..digits];
        let mut n: u32 = 0;
        for (i, c) in d.bytes().take(9).enumerate() {
            n += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        nanos = n;
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' {
                return None;
            }
            let sign = match rb[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = (num(rest.get(1..3)?)?, num(rest.get(4..6)?)?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Whether a process with `pid` exists (`kill(pid, 0)`; EPERM still means it exists).
/// Note pids are reused: callers pair this with the monitor socket or a start time.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn rfc3339_variants() {
        // date -u -d 2026-11-23T08:17:00Z +%s = 1795421820
        let base = 1_795_421_820;
        assert_eq!(
            parse_rfc3339("2026-11-23T08:17:00.123456789Z"),
            Some(at(base, 123_456_789))
        );
        assert_eq!(parse_rfc3339("2026-11-23T08:17:00Z"), Some(at(base, 0)));
        assert_eq!(
            parse_rfc3339("2026-11-23T08:17:00.5Z"),
            Some(at(base, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T09:17:00.000000001+01:00"),
            Some(at(base, 1))
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T08:17:00.1234567891Z"),
            Some(at(base, 123_456_789))
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(at(0, 0)));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(at(1_709_164_800, 0))
        );
        for bad in [
            "",
            "2026-11-23",
            "2026-13-23T08:17:00Z",
            "2026-11-23T08:17:00",
            "2026-11-23T08:17:00.Z",
            "2026-11-23T08:17:00+0100",
            "1969-12-31T23:59:59Z",
            "2026-11-23T08:17:00Zjunk",
            "२०२६-11-23T08:17:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn exit_file_parsing() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("exit.json");
        assert_eq!(read_exit_file(&p).unwrap(), None);
        std::fs::write(
            &p,
            "{\"exit_code\":137,\"signal\":9,\"finished_at\":\"2026-11-23T08:17:00.123456789Z\",\"oom_killed\":true}\n",
        )
        .unwrap();
        let r = read_exit_file(&p).unwrap().unwrap();
        assert_eq!(
            r,
            ExitRecord {
                exit_code: 137,
                signal: 9,
                finished_at: at(1_795_421_820, 123_456_789),
                oom_killed: true
            }
        );
        std::fs::write(&p, "{\"exit_code\":1,\"finished_at\":\"yesterday\"}").unwrap();
        let e = read_exit_file(&p).unwrap_err();
        assert!(
            e.to_string().contains("\"yesterday\" is not RFC 3339"),
            "{e}"
        );
        std::fs::write(&p, "{").unwrap();
        assert!(matches!(
            read_exit_file(&p),
            Err(MonitorError::ExitFileInvalid { .. })
        ));
    }

    #[tokio::test]
    async fn wait_for_exit_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("exit.json");
        assert_eq!(
            wait_exit_file(&p, Duration::from_millis(30)).await.unwrap(),
            None
        );
        let p2 = p.clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::fs::write(
                &p2,
                "{\"exit_code\":0,\"signal\":0,\"finished_at\":\"2026-11-23T08:17:00Z\",\"oom_killed\":false}",
            )
            .unwrap();
        });
        let r = wait_exit_file(&p, Duration::from_secs(5)).await.unwrap();
        assert_eq!(r.unwrap().exit_code, 0);
        writer.await.unwrap();
    }

    #[test]
    fn liveness() {
        assert!(process_alive(std::process::id() as i32));
        assert!(process_alive(1));
        assert!(!process_alive(0));
        assert!(!process_alive(-5));
        assert!(!process_alive(i32::MAX));
    }
}
