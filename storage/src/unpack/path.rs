//! Lexical checks and normalisation of tar entry names (pure logic, no syscalls).
//!
//! A layer entry name is refused before any filesystem access when it is absolute, contains a
//! `..` component or a NUL byte, or exceeds NAME_MAX/PATH_MAX. Leading `./`, repeated slashes
//! and `.` components are dropped (tar writers emit `./usr/bin`; the OCI image spec layer
//! format does not require a prefix). Symlinks inside the layer are the kernel's job:
//! `openat2(RESOLVE_BENEATH)` in `fsops.rs` enforces that resolution stays beneath the
//! layer directory. This module also classifies OCI whiteout names
//! (image-spec `layer.md`, "Whiteouts").

/// Linux NAME_MAX: longest path component.
pub(crate) const NAME_MAX: usize = 255;
/// Linux PATH_MAX, including the terminating NUL.
pub(crate) const PATH_MAX: usize = 4096;

/// OCI whiteout prefix (`.wh.<name>` deletes `<name>` from lower layers).
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// OCI opaque whiteout: the directory containing it hides lower layers' children.
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Prefix reserved for AUFS-style metadata entries (`.wh..wh.plnk`, `.wh..wh.aufs`): ignored.
pub(crate) const META_PREFIX: &[u8] = b".wh..wh.";

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathProblem {
    Absolute,
    DotDot,
    Nul,
    ComponentTooLong,
    PathTooLong,
    WhiteoutDirectory,
}

impl PathProblem {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Absolute => "absolute path escapes the layer directory",
            Self::DotDot => "`..` component escapes the layer directory",
            Self::Nul => "name contains a NUL byte",
            Self::ComponentTooLong => "a path component is longer than NAME_MAX (255 bytes)",
            Self::PathTooLong => "the path is longer than PATH_MAX (4096 bytes)",
            Self::WhiteoutDirectory => "a directory component starts with the `.wh.` prefix",
        }
    }

    pub(crate) fn is_length(self) -> bool {
        matches!(self, Self::ComponentTooLong | Self::PathTooLong)
    }
}

/// Normalise `raw` into `out` (cleared first): components joined by single `/`, without
/// `.` components. An empty result is the layer root. `out` is reused across entries so the
/// hot path does not allocate.
pub(crate) fn normalize(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathProblem> {
    out.clear();
    if raw.first() == Some(&b'/') {
        return Err(PathProblem::Absolute);
    }
    if raw.contains(&0) {
        return Err(PathProblem::Nul);
    }
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return Err(PathProblem::DotDot),
            _ => {}
        }
        if comp.len() > NAME_MAX {
            return Err(PathProblem::ComponentTooLong);
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(comp);
        if out.len() >= PATH_MAX {
            return Err(PathProblem::PathTooLong);
        }
    }
    // `.wh.` names are markers, never real files: a marker used as a directory would be
    // materialised, which the spec rules out.
    if let Some((parent, _)) = split_parent(out)
        && parent
            .split(|&b| b == b'/')
            .any(|c| c.starts_with(WHITEOUT_PREFIX))
    {
        return Err(PathProblem::WhiteoutDirectory);
    }
    Ok(())
}

/// Split a normalised, non-empty path into (parent, final component). The parent is empty for
/// top-level names. `None` for the root (empty path).
pub(crate) fn split_parent(clean: &[u8]) -> Option<(&[u8], &[u8])> {
    if clean.is_empty() {
        return None;
    }
    Some(match clean.iter().rposition(|&b| b == b'/') {
        Some(i) => (&clean[..i], &clean[i + 1..]),
        None => (&b""[..], clean),
    })
}

/// What an entry's final component means under the OCI whiteout rules.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Whiteout<'a> {
    /// An ordinary name.
    None,
    /// `.wh..wh..opq`: mark the parent directory opaque.
    Opaque,
    /// `.wh..wh.*` other than the opaque marker: AUFS metadata, ignored.
    Ignored,
    /// `.wh.<name>`: delete `<name>`.
    Delete(&'a [u8]),
    /// `.wh.` followed by nothing, `.` or `..`.
    Invalid,
}

/// Classify a final path component.
pub(crate) fn classify(name: &[u8]) -> Whiteout<'_> {
    let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) else {
        return Whiteout::None;
    };
    if name == OPAQUE_MARKER {
        return Whiteout::Opaque;
    }
    if name.starts_with(META_PREFIX) {
        return Whiteout::Ignored;
    }
    match target {
        b"" | b"." | b".." => Whiteout::Invalid,
        t => Whiteout::Delete(t),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, PathProblem> {
        let mut out = Vec::new();
        normalize(raw.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn strips_dot_prefixes_and_slashes() {
        assert_eq!(norm("./usr/bin/").unwrap(), "usr/bin");
        assert_eq!(norm("././a//b/./c").unwrap(), "a/b/c");
        assert_eq!(norm(".").unwrap(), "");
        assert_eq!(norm("./").unwrap(), "");
        assert_eq!(norm("").unwrap(), "");
        assert_eq!(norm("..a/b..").unwrap(), "..a/b..");
    }

    #[test]
    fn refuses_escapes() {
        assert_eq!(norm("../x"), Err(PathProblem::DotDot));
        assert_eq!(norm("a/../../x"), Err(PathProblem::DotDot));
        assert_eq!(norm("a/.."), Err(PathProblem::DotDot));
        assert_eq!(norm("/abs"), Err(PathProblem::Absolute));
        assert_eq!(norm("//abs"), Err(PathProblem::Absolute));
        assert_eq!(norm("a\0b"), Err(PathProblem::Nul));
        assert_eq!(norm(".wh.d/x"), Err(PathProblem::WhiteoutDirectory));
        assert_eq!(
            norm("a/.wh..wh..opq/x"),
            Err(PathProblem::WhiteoutDirectory)
        );
    }

    #[test]
    fn refuses_long_names() {
        let comp = "c".repeat(256);
        assert_eq!(norm(&comp), Err(PathProblem::ComponentTooLong));
        assert!(norm(&"c".repeat(255)).is_ok());
        let deep = "abc/".repeat(1100);
        assert_eq!(norm(&deep), Err(PathProblem::PathTooLong));
        assert!(PathProblem::PathTooLong.is_length());
    }

    #[test]
    fn splits_parent() {
        assert_eq!(split_parent(b""), None);
        assert_eq!(split_parent(b"a"), Some((&b""[..], &b"a"[..])));
        assert_eq!(split_parent(b"a/b/c"), Some((&b"a/b"[..], &b"c"[..])));
    }

    #[test]
    fn classifies_whiteouts() {
        assert_eq!(classify(b"file"), Whiteout::None);
        assert_eq!(classify(b".wh.file"), Whiteout::Delete(b"file"));
        assert_eq!(classify(b".wh..hidden"), Whiteout::Delete(b".hidden"));
        assert_eq!(classify(b".wh..wh..opq"), Whiteout::Opaque);
        assert_eq!(classify(b".wh..wh.plnk"), Whiteout::Ignored);
        assert_eq!(classify(b".wh."), Whiteout::Invalid);
        assert_eq!(classify(b".wh.."), Whiteout::Invalid);
        assert_eq!(classify(b".wh..."), Whiteout::Invalid);
    }
}
