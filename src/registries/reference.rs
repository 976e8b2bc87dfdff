//! Image references: the docker/distribution reference grammar and docker.io normalisation.
//!
//! Grammar followed (distribution/reference `reference.go`):
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [domain "/"] path-component ("/" path-component)*
//! domain    := host [":" port]          (host: DNS labels, IPv4, or "[" IPv6 "]")
//! path-component := [a-z0-9]+ (separator [a-z0-9]+)*   separator := "." | "_" | "__" | "-"+
//! tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest    := algorithm ":" hex
//! ```
//! The first component is a domain only if it contains `.` or `:` or is `localhost`, exactly as
//! docker decides; everything else lives on docker.io (with `library/` for one-component names).

use std::fmt;

/// Longest name (domain + path) docker accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A reference could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input breaks the grammar; `reason` says which rule.
    #[error("invalid image reference `{input}`: {reason}")]
    Invalid {
        /// The reference as given.
        input: String,
        /// The rule broken.
        reason: String,
    },
}

fn invalid(input: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError::Invalid {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// A parsed image reference. `registry` is empty only for short names before expansion.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    /// Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/busybox`.
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Digest (`sha256:<hex>`), if any.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parse `s` without search-registry expansion. A short name (no domain) gets an empty
    /// `registry` and its path unchanged; see [`ImageReference::normalize_docker`].
    pub fn parse(s: &str) -> Result<ImageReference, ReferenceError> {
        if s.is_empty() {
            return Err(invalid(s, "reference is empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                validate_digest(s, d)?;
                (rest, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag follows the last ':' that is after the last '/' (a ':' before that is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                let tag = &rest[i + 1..];
                validate_tag(s, tag)?;
                (&rest[..i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid(s, "repository name is empty"));
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(
                s,
                format!("repository name is longer than {NAME_TOTAL_LENGTH_MAX} characters"),
            ));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if is_domain_like(first) => {
                validate_domain(s, first)?;
                (first.to_string(), path)
            }
            _ => (String::new(), name),
        };
        for component in path.split('/') {
            validate_component(s, component)?;
        }
        Ok(ImageReference {
            registry,
            repository: path.to_string(),
            tag,
            digest,
        })
    }

    /// True when the first component of `s` names a registry (docker's rule).
    pub fn is_fully_qualified_input(s: &str) -> bool {
        s.split_once('/')
            .is_some_and(|(first, _)| is_domain_like(first))
    }

    /// docker.io normalisation: `busybox` -> `docker.io/library/busybox:latest`,
    /// `index.docker.io/x` -> `docker.io/x`; `:latest` is added only without tag and digest.
    pub fn normalize_docker(s: &str) -> Result<ImageReference, ReferenceError> {
        let mut r = Self::parse(s)?;
        if r.registry.is_empty() || r.registry == "index.docker.io" {
            r.registry = "docker.io".to_string();
        }
        if r.registry == "docker.io" && !r.repository.contains('/') {
            r.repository = format!("library/{}", r.repository);
        }
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".to_string());
        }
        Ok(r)
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        if self.registry.is_empty() {
            self.repository.clone()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// `registry/repository:tag`, when there is a tag.
    pub fn tagged_name(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// `registry/repository@digest`.
    pub fn digested_name(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn is_domain_like(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn validate_domain(input: &str, domain: &str) -> Result<(), ReferenceError> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(input, format!("registry `{domain}` has an unclosed `[`")))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid(input, format!("`{v6}` is not an IPv6 address")));
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(invalid(input, format!("registry `{domain}` is malformed"))),
            },
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            return Err(invalid(
                input,
                format!("registry host `{host}` is not a valid host name"),
            ));
        }
    }
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid(
            input,
            format!("registry port `{port}` is not a number"),
        ));
    }
    Ok(())
}

/// `[a-z0-9]+ (("." | "_" | "__" | "-"+) [a-z0-9]+)*`
fn validate_component(input: &str, c: &str) -> Result<(), ReferenceError> {
    let bad = |why: &str| invalid(input, format!("path component `{c}` {why}"));
    if c.is_empty() {
        return Err(bad("is empty"));
    }
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("must be lowercase"));
    }
    let bytes = c.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !is_alnum(bytes[0]) || !bytes.last().is_some_and(|&b| is_alnum(b)) {
        return Err(bad("must start and end with a lowercase letter or digit"));
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(bad(&format!("has an invalid separator `{sep}`")));
        }
    }
    Ok(())
}

fn validate_tag(input: &str, tag: &str) -> Result<(), ReferenceError> {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            format!("tag `{tag}` must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"),
        ))
    }
}

fn validate_digest(input: &str, digest: &str) -> Result<(), ReferenceError> {
    let (alg, hex) = digest
        .split_once(':')
        .ok_or_else(|| invalid(input, format!("digest `{digest}` has no algorithm")))?;
    let want = match alg {
        "sha256" => 64,
        "sha512" => 128,
        other => {
            return Err(invalid(
                input,
                format!("digest algorithm `{other}` is not supported (sha256, sha512)"),
            ));
        }
    };
    if hex.len() != want
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid(
            input,
            format!("digest `{digest}` must be {want} lowercase hex characters after `{alg}:`"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("foo/bar", "docker.io/foo/bar:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            (
                "index.docker.io/library/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("quay.io/a/b:v1", "quay.io/a/b:v1"),
            ("localhost/a", "localhost/a:latest"),
            ("localhost:5000/a", "localhost:5000/a:latest"),
            ("127.0.0.1:5000/x/y:t", "127.0.0.1:5000/x/y:t"),
            ("[::1]:5000/x", "[::1]:5000/x:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(
                ImageReference::normalize_docker(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
        let by_digest = ImageReference::normalize_docker(&format!("busybox@{D}")).unwrap();
        assert_eq!(by_digest.tag, None);
        assert_eq!(
            by_digest.to_string(),
            format!("docker.io/library/busybox@{D}")
        );
        let both = ImageReference::normalize_docker(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(both.tag.as_deref(), Some("1"));
    }

    #[test]
    fn rejects_invalid_references_naming_the_rule() {
        let cases = [
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("busybox:", "tag"),
            ("busybox:-x", "tag"),
            ("busybox@sha256:abc", "64 lowercase hex"),
            ("busybox@md5:abc", "not supported"),
            ("a//b", "empty"),
            ("a/-b", "start and end"),
            ("a/b.-c", "separator"),
            ("exa_mple.com/a", "host name"),
            ("host:port/a", "port"),
            ("[::zz]/a", "IPv6"),
        ];
        for (input, why) in cases {
            let err = ImageReference::parse(input).unwrap_err().to_string();
            assert!(err.contains(why), "{input}: {err}");
            assert!(err.contains(&format!("`{input}`")), "{err}");
        }
        let long = format!("a/{}", "b".repeat(300));
        assert!(
            ImageReference::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("255")
        );
        assert!(ImageReference::parse(&format!("a:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn qualified_detection() {
        assert!(ImageReference::is_fully_qualified_input("localhost/a"));
        assert!(ImageReference::is_fully_qualified_input("a.b/c"));
        assert!(ImageReference::is_fully_qualified_input("a:5000/c"));
        assert!(!ImageReference::is_fully_qualified_input("busybox"));
        assert!(!ImageReference::is_fully_qualified_input("library/busybox"));
    }

    #[test]
    fn separators() {
        for ok in ["a__b", "a---b", "a.b", "a_b", "a1/b2"] {
            ImageReference::parse(ok).unwrap();
        }
        for bad in ["a___b", "a..b", "a_-b"] {
            assert!(ImageReference::parse(bad).is_err(), "{bad}");
        }
    }
}
