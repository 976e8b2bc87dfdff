//! CNI spec versions (`cniVersion`): parsing and the feature gates that depend on them.
//!
//! The spec (SPEC.md "Version considerations") ties behaviour to the config's version:
//! chaining with `prevResult` from 0.3.0, `CHECK` and `prevResult` on `DEL` from 0.4.0,
//! `STATUS` and `GC` from 1.1.0. Results before 0.3.0 use the old `ip4`/`ip6` layout.

use std::fmt;

/// A `major.minor.patch` CNI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

/// Highest version crust speaks.
pub const MAX: Version = Version(1, 1, 0);
/// Chaining (`prevResult` on ADD) and the current result layout.
pub const V0_3_0: Version = Version(0, 3, 0);
/// `CHECK`, `prevResult` on `DEL`.
pub const V0_4_0: Version = Version(0, 4, 0);
/// `STATUS`, `GC`.
pub const V1_1_0: Version = Version(1, 1, 0);

impl Version {
    /// Parse `x.y.z` (an empty string is 0.1.0, as libcni treats a missing `cniVersion`).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Ok(Version(0, 1, 0));
        }
        let mut parts = s.split('.');
        let mut next = || -> Result<u32, String> {
            parts
                .next()
                .ok_or_else(|| format!("cniVersion {s:?} is not of the form x.y.z"))?
                .parse()
                .map_err(|_| format!("cniVersion {s:?} is not of the form x.y.z"))
        };
        let v = Version(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(format!("cniVersion {s:?} is not of the form x.y.z"));
        }
        if v > MAX {
            return Err(format!(
                "cniVersion {s:?} is newer than the newest version crust supports ({MAX})"
            ));
        }
        Ok(v)
    }

    /// Whether ADD results are chained into the next plugin as `prevResult`.
    pub fn chains(self) -> bool {
        self >= V0_3_0
    }

    /// Whether `CHECK` exists and `DEL` gets `prevResult`.
    pub fn has_check(self) -> bool {
        self >= V0_4_0
    }

    /// Whether `STATUS` and `GC` exist.
    pub fn has_status_and_gc(self) -> bool {
        self >= V1_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_gates() {
        assert_eq!(Version::parse("1.0.0").unwrap(), Version(1, 0, 0));
        assert_eq!(Version::parse("").unwrap(), Version(0, 1, 0));
        assert!(Version::parse("1.0").is_err());
        assert!(Version::parse("1.0.0.0").is_err());
        assert!(Version::parse("a.b.c").is_err());
        assert!(Version::parse("2.0.0").unwrap_err().contains("newer"));
        assert!(!Version::parse("0.2.0").unwrap().chains());
        assert!(Version::parse("0.3.1").unwrap().chains());
        assert!(!Version::parse("0.3.1").unwrap().has_check());
        assert!(Version::parse("0.4.0").unwrap().has_check());
        assert!(!Version::parse("1.0.0").unwrap().has_status_and_gc());
        assert!(Version::parse("1.1.0").unwrap().has_status_and_gc());
    }
}
