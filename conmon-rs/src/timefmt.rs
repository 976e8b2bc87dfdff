//! Hand-written RFC 3339 UTC timestamps with nanoseconds.
//!
//! The CRI log format (kubernetes/cri-api `pkg/apis/runtime/v1/api.proto`, kubelet
//! `pkg/kubelet/kuberuntime/logs`) prefixes each line with an RFC3339Nano time. We
//! always print nine fractional digits and `Z` (fixed width keeps log lines
//! sortable; Go's `time.RFC3339Nano` parser accepts it). Hand-written so the
//! monitor needs no date crate.

/// Formats seconds + nanoseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn rfc3339_nano(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Current wall-clock time, formatted.
pub fn now() -> String {
    let (s, n) = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(_) => (0, 0),
    };
    rfc3339_nano(s, n)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days` algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch() {
        assert_eq!(rfc3339_nano(0, 0), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn known_dates() {
        // date -u -d @1795421820 => 2026-11-23T08:17:00Z
        assert_eq!(
            rfc3339_nano(1_795_421_820, 123_456_789),
            "2026-11-23T08:17:00.123456789Z"
        );
        // leap day
        assert_eq!(
            rfc3339_nano(951_782_400, 5),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(rfc3339_nano(-1, 0), "1969-12-31T23:59:59.000000000Z");
    }

    #[test]
    fn now_has_fixed_width() {
        let n = now();
        assert_eq!(n.len(), 30);
        assert!(n.ends_with('Z'));
    }
}
