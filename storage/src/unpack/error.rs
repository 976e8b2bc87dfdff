//! The unpacker's error type.
//!
//! Every variant names the tar entry it is about (lossily decoded, shortened to a readable
//! length) so that a rejected layer can be diagnosed from the daemon's log or the CRI error.
//! [`UnpackError::is_bad_layer`] separates "the layer is malformed or hostile" (the client's
//! fault: invalid argument) from local I/O failures (internal).

use std::io;

/// Longest entry name we quote in an error message (hostile names can be 10 000+ bytes).
const MAX_DISPLAY: usize = 256;

/// Errors of the unpacker.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The entry's path (or a hardlink target) would write outside the layer directory, or
    /// is otherwise unsafe (absolute, `..`, symlink loop, NUL byte, bad whiteout name).
    #[error("entry `{entry}`: {reason}")]
    UnsafePath {
        /// The entry as written in the tar.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// A path component is longer than NAME_MAX (255) or the path longer than PATH_MAX.
    #[error("entry `{entry}`: name too long ({reason})")]
    NameTooLong {
        /// The entry as written in the tar (shortened).
        entry: String,
        /// Which limit was exceeded.
        reason: &'static str,
    },
    /// A header field could not be parsed or is out of range.
    #[error("entry `{entry}`: invalid header field `{field}`: {reason}")]
    InvalidHeader {
        /// The entry as written in the tar.
        entry: String,
        /// The field (`mode`, `uid`, `mtime`, `pax`...).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry type crust does not unpack (GNU sparse files, volume labels, ...).
    #[error("entry `{entry}`: unsupported tar entry type {kind}")]
    Unsupported {
        /// The entry as written in the tar.
        entry: String,
        /// The type, as the tar type flag.
        kind: String,
    },
    /// A filesystem operation failed.
    #[error("entry `{entry}`: {op} failed")]
    Io {
        /// The entry being applied (`.` for the layer root).
        entry: String,
        /// The operation (`create file`, `mkdir`, `chown`, ...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The tar stream is corrupt (bad header checksum, malformed numbers, garbage).
    #[error("corrupt layer tar stream (after entry `{after}`)")]
    Tar {
        /// The last entry read successfully (empty at the start of the stream).
        after: String,
        /// What the tar parser reported.
        #[source]
        source: io::Error,
    },
    /// The stream ended in the middle of a header, a file body or its padding.
    #[error("layer tar stream is truncated (at or after entry `{after}`)")]
    Truncated {
        /// The entry being read or the last one read.
        after: String,
    },
    /// Reading the underlying stream failed (decompression, digest check, network).
    #[error("reading the layer stream failed (after entry `{after}`)")]
    Read {
        /// The entry being read or the last one read.
        after: String,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// True when the layer itself is at fault (hostile or malformed content), as opposed to a
    /// local filesystem problem or a failing input stream. Callers map this to
    /// "invalid argument" rather than "internal".
    pub fn is_bad_layer(&self) -> bool {
        matches!(
            self,
            Self::UnsafePath { .. }
                | Self::NameTooLong { .. }
                | Self::InvalidHeader { .. }
                | Self::Unsupported { .. }
                | Self::Tar { .. }
                | Self::Truncated { .. }
        )
    }
}

/// Render an entry name for messages: lossy UTF-8, `.` for the root, shortened with a
/// byte count when very long.
pub(crate) fn display_name(raw: &[u8]) -> String {
    if raw.is_empty() {
        return ".".to_owned();
    }
    if raw.len() <= MAX_DISPLAY {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let mut s = String::from_utf8_lossy(&raw[..MAX_DISPLAY]).into_owned();
    s.push_str(&format!("... ({} bytes)", raw.len()));
    s
}

/// Build an [`UnpackError::UnsafePath`].
pub(crate) fn unsafe_path(entry: &[u8], reason: impl Into<String>) -> UnpackError {
    UnpackError::UnsafePath {
        entry: display_name(entry),
        reason: reason.into(),
    }
}

/// Build an [`UnpackError::Io`] from a rustix errno.
pub(crate) fn io_err(entry: &[u8], op: &'static str, errno: rustix::io::Errno) -> UnpackError {
    UnpackError::Io {
        entry: display_name(entry),
        op,
        source: errno.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_shortens_and_names_root() {
        assert_eq!(display_name(b""), ".");
        assert_eq!(display_name(b"a/b"), "a/b");
        let long = vec![b'x'; 10_000];
        let shown = display_name(&long);
        assert!(shown.len() < 300, "{shown}");
        assert!(shown.ends_with("(10000 bytes)"));
    }

    #[test]
    fn messages_are_lower_case_and_name_the_entry() {
        let e = unsafe_path(b"../x", "escapes the layer directory");
        assert_eq!(e.to_string(), "entry `../x`: escapes the layer directory");
        assert!(e.is_bad_layer());
        let e = io_err(b"a", "mkdir", rustix::io::Errno::NOSPC);
        assert_eq!(e.to_string(), "entry `a`: mkdir failed");
        assert!(!e.is_bad_layer());
    }
}
