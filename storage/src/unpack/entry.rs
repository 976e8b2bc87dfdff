//! Per-entry metadata read from the tar header and its PAX records: mode, ownership,
//! modification time (with PAX nanoseconds) and extended attributes.
//!
//! The `tar` crate already applies PAX `size`, `uid`, `gid`, `path` and `linkpath`; `mtime`
//! with its fractional part and `SCHILY.xattr.*` (the form Go's archive/tar, Docker,
//! BuildKit and containerd write) are read here. `trusted.overlay.*` (and the
//! `user.overlay.*` variant used by `userxattr` mounts) are dropped: a layer must not be able
//! to forge overlay whiteouts, opaque markers or redirects.

use rustix::fs::Timespec;
use tar::{EntryType, Header};

use super::error::{UnpackError, display_name};

/// PAX key prefix for extended attributes (POSIX pax, "SCHILY" vendor extension).
const PAX_XATTR: &[u8] = b"SCHILY.xattr.";

/// Metadata to apply to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Permission bits incl. setuid/setgid/sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
}

/// The kinds of entries the unpacker materialises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
    /// PAX global header: carries no file; ignored.
    Skip,
}

/// Map the tar type flag. Old (v7) tars mark directories as regular files with a trailing
/// slash; Go's archive/tar reader does the same conversion.
pub(crate) fn kind_of(raw_path: &[u8], ty: EntryType) -> Result<Kind, UnpackError> {
    Ok(match ty {
        EntryType::Regular | EntryType::Continuous if raw_path.ends_with(b"/") => Kind::Dir,
        EntryType::Regular | EntryType::Continuous => Kind::File,
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => Kind::Symlink,
        EntryType::Link => Kind::Hardlink,
        EntryType::Char => Kind::Char,
        EntryType::Block => Kind::Block,
        EntryType::Fifo => Kind::Fifo,
        EntryType::XGlobalHeader => Kind::Skip,
        other => {
            let flag = other.as_byte();
            let kind = if other.is_gnu_sparse() {
                "GNU sparse file ('S'); rebuild the layer without --sparse".to_owned()
            } else if flag.is_ascii_graphic() {
                format!("'{}'", flag as char)
            } else {
                format!("{flag:#04x}")
            };
            return Err(UnpackError::Unsupported {
                entry: display_name(raw_path),
                kind,
            });
        }
    })
}

fn invalid(entry: &[u8], field: &'static str, reason: impl ToString) -> UnpackError {
    UnpackError::InvalidHeader {
        entry: display_name(entry),
        field,
        reason: reason.to_string(),
    }
}

/// Read mode, ownership and mtime. `pax` is the entry's raw PAX records, if any.
pub(crate) fn read_meta(
    entry: &[u8],
    header: &Header,
    pax: Option<tar::PaxExtensions<'_>>,
) -> Result<Meta, UnpackError> {
    let old = header.as_old();
    let mode =
        lenient(&old.mode, header.mode().map(u64::from)).map_err(|e| invalid(entry, "mode", e))?;
    let mode = (mode & 0o7777) as u32;
    let uid = id(entry, "uid", lenient(&old.uid, header.uid()))?;
    let gid = id(entry, "gid", lenient(&old.gid, header.gid()))?;
    let mut mtime = None;
    if let Some(pax) = pax {
        for ext in pax {
            let ext = ext.map_err(|e| invalid(entry, "pax", e))?;
            if ext.key_bytes() == b"mtime" {
                mtime = Some(
                    parse_pax_time(ext.value_bytes())
                        .ok_or_else(|| invalid(entry, "mtime", "malformed pax time"))?,
                );
            }
        }
    }
    let mtime = match mtime {
        Some(t) => t,
        None => {
            let secs =
                lenient(&old.mtime, header.mtime()).map_err(|e| invalid(entry, "mtime", e))?;
            Timespec {
                tv_sec: i64::try_from(secs).map_err(|_| invalid(entry, "mtime", "out of range"))?,
                tv_nsec: 0,
            }
        }
    };
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
    })
}

/// An all-NUL/space numeric field reads as 0, as in Go's archive/tar (some writers leave
/// fields they do not use empty); anything else must parse.
fn lenient(raw: &[u8], parsed: std::io::Result<u64>) -> std::io::Result<u64> {
    if raw.iter().all(|&b| b == 0 || b == b' ') {
        return Ok(0);
    }
    parsed
}

/// uid/gid must fit in 32 bits and not be `-1` (which chown reads as "leave unchanged").
fn id(entry: &[u8], field: &'static str, v: std::io::Result<u64>) -> Result<u32, UnpackError> {
    let v = v.map_err(|e| invalid(entry, field, e))?;
    match u32::try_from(v) {
        Ok(id) if id != u32::MAX => Ok(id),
        _ => Err(invalid(entry, field, format!("{v} is out of range"))),
    }
}

/// Parse a PAX time: `[-]seconds[.fraction]` (POSIX pax "mtime"), to nanoseconds.
pub(crate) fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (secs, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if secs.is_empty() || !secs.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let secs: i64 = std::str::from_utf8(secs).ok()?.parse().ok()?;
    let mut nsec: i64 = 0;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |d| i64::from(d - b'0'));
    }
    Some(if !neg {
        Timespec {
            tv_sec: secs,
            tv_nsec: nsec,
        }
    } else if nsec == 0 {
        Timespec {
            tv_sec: -secs,
            tv_nsec: 0,
        }
    } else {
        // -1.25 s is 2 s before the epoch plus 0.75 s.
        Timespec {
            tv_sec: -secs - 1,
            tv_nsec: 1_000_000_000 - nsec,
        }
    })
}

/// Whether an xattr from the layer must be dropped rather than applied.
pub(crate) fn is_forbidden_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Call `f(name, value)` for each `SCHILY.xattr.*` record, skipping forbidden names.
pub(crate) fn for_each_xattr<E>(
    entry: &[u8],
    pax: Option<tar::PaxExtensions<'_>>,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<UnpackError>,
{
    let Some(pax) = pax else { return Ok(()) };
    for ext in pax {
        let ext = ext.map_err(|e| invalid(entry, "pax", e))?;
        let Some(name) = ext.key_bytes().strip_prefix(PAX_XATTR) else {
            continue;
        };
        if name.is_empty() || name.contains(&0) {
            return Err(invalid(entry, "xattr", "empty or NUL in xattr name").into());
        }
        if is_forbidden_xattr(name) {
            tracing::debug!(
                entry = %display_name(entry),
                xattr = %String::from_utf8_lossy(name),
                "ignoring overlay xattr found in the layer"
            );
            continue;
        }
        f(name, ext.value_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ts(tv_sec: i64, tv_nsec: i64) -> Timespec {
        Timespec { tv_sec, tv_nsec }
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"1700000000"), Some(ts(1_700_000_000, 0)));
        assert_eq!(
            parse_pax_time(b"1700000000.123456789"),
            Some(ts(1_700_000_000, 123_456_789))
        );
        assert_eq!(parse_pax_time(b"5.5"), Some(ts(5, 500_000_000)));
        // Digits beyond nanoseconds are truncated.
        assert_eq!(parse_pax_time(b"5.0000000019"), Some(ts(5, 1)));
        assert_eq!(parse_pax_time(b"-1.25"), Some(ts(-2, 750_000_000)));
        assert_eq!(parse_pax_time(b"-3"), Some(ts(-3, 0)));
        assert_eq!(parse_pax_time(b""), None);
        assert_eq!(parse_pax_time(b".5"), None);
        assert_eq!(parse_pax_time(b"1e9"), None);
        assert_eq!(parse_pax_time(b"99999999999999999999999"), None);
    }

    #[test]
    fn kinds() {
        assert_eq!(kind_of(b"a", EntryType::Regular).unwrap(), Kind::File);
        assert_eq!(kind_of(b"a/", EntryType::Regular).unwrap(), Kind::Dir);
        assert_eq!(kind_of(b"a", EntryType::Fifo).unwrap(), Kind::Fifo);
        let err = kind_of(b"s", EntryType::GNUSparse).unwrap_err();
        assert!(err.to_string().contains("sparse"), "{err}");
        let err = kind_of(b"v", EntryType::new(b'V')).unwrap_err();
        assert_eq!(err.to_string(), "entry `v`: unsupported tar entry type 'V'");
    }

    #[test]
    fn overlay_xattrs_are_forbidden() {
        assert!(is_forbidden_xattr(b"trusted.overlay.opaque"));
        assert!(is_forbidden_xattr(b"user.overlay.redirect"));
        assert!(!is_forbidden_xattr(b"security.capability"));
        assert!(!is_forbidden_xattr(b"trusted.overlayfoo"));
    }

    #[test]
    fn ids_reject_minus_one_and_overflow() {
        assert_eq!(id(b"x", "uid", Ok(1234)).unwrap(), 1234);
        assert!(id(b"x", "uid", Ok(u64::from(u32::MAX))).is_err());
        assert!(id(b"x", "gid", Ok(1 << 40)).is_err());
    }
}
