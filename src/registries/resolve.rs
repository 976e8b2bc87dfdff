//! Resolution of a CRI image string into candidates and endpoints (containers-registries.conf(5)).
//!
//! Order followed (containers/image `pkg/sysregistriesv2` and `shortnames`):
//! 1. a short name matching an `[aliases]` key becomes the alias value (tag/digest kept);
//! 2. otherwise a short name expands to each `unqualified-search-registries` entry in order
//!    (`docker.io` gets `library/` for one-component names). crust never prompts, so an
//!    ambiguous short name is simply tried in order, whatever `short-name-mode` says;
//! 3. a fully-qualified input is used as is;
//! 4. each candidate gets the mirrors of its longest-prefix `[[registry]]` (filtered by
//!    `pull-from-mirror`), then the primary location; a blocked primary is an error.

use super::RegistriesError;
use super::conf::{ConfFile, PullFromMirror, RegistryConf};
use super::reference::ImageReference;

/// One name to try, with the places to fetch it from, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The name the image is stored under.
    pub reference: ImageReference,
    /// Mirrors first, then the primary location.
    pub endpoints: Vec<Endpoint>,
}

/// One place to fetch a candidate from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Registry host[:port] and repository rewritten to the mirror/location; same tag/digest.
    pub reference: ImageReference,
    /// Plain HTTP allowed / TLS not verified.
    pub insecure: bool,
    /// Whether this is a mirror (as opposed to the primary location).
    pub mirror: bool,
    /// The mirror's `pull-from-mirror` (always `All` for the primary).
    pub pull_from_mirror: PullFromMirror,
}

/// Whether `prefix` matches the name `name` (`host[/path]`, no tag/digest): exact, on a `/`
/// boundary, or `*.example.com` matching a subdomain host.
fn prefix_matches(prefix: &str, name: &str) -> bool {
    if let Some(suffix) = prefix.strip_prefix('*') {
        let host = name.split('/').next().unwrap_or(name);
        return host.len() > suffix.len() && host.ends_with(suffix);
    }
    name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The `[[registry]]` with the longest matching prefix.
pub fn find_registry<'a>(conf: &'a ConfFile, name: &str) -> Option<&'a RegistryConf> {
    conf.registry
        .iter()
        .filter(|r| prefix_matches(&r.prefix, name))
        .max_by_key(|r| r.prefix.len())
}

/// Replace the matched prefix of `r`'s name with `location` (`host[:port][/path]`).
fn rewrite(
    r: &ImageReference,
    prefix: &str,
    location: &str,
) -> Result<ImageReference, RegistriesError> {
    let name = r.name();
    let matched = if prefix.starts_with('*') {
        r.registry.len()
    } else {
        prefix.len()
    };
    let new_name = format!("{location}{}", &name[matched.min(name.len())..]);
    let (registry, repository) = new_name.split_once('/').unwrap_or((&new_name, ""));
    let repository = repository.trim_matches('/');
    if repository.is_empty() {
        return Err(RegistriesError::ShortName {
            image: name,
            reason: format!("rewriting with location `{location}` leaves no repository"),
        });
    }
    Ok(ImageReference {
        registry: registry.to_string(),
        repository: repository.to_string(),
        tag: r.tag.clone(),
        digest: r.digest.clone(),
    })
}

fn endpoints(
    conf: &ConfFile,
    r: &ImageReference,
    image: &str,
) -> Result<Vec<Endpoint>, RegistriesError> {
    let name = r.name();
    let Some(reg) = find_registry(conf, &name) else {
        return Ok(vec![Endpoint {
            reference: r.clone(),
            insecure: false,
            mirror: false,
            pull_from_mirror: PullFromMirror::All,
        }]);
    };
    if reg.blocked {
        return Err(RegistriesError::Blocked {
            registry: reg.prefix.clone(),
            image: image.to_string(),
        });
    }
    let mut out = Vec::new();
    for m in &reg.mirror {
        let mode = m
            .pull_from_mirror
            .or(reg.pull_from_mirror)
            .unwrap_or_default();
        let usable = match mode {
            PullFromMirror::All => true,
            PullFromMirror::DigestOnly => r.digest.is_some(),
            PullFromMirror::TagOnly => r.digest.is_none(),
        };
        if !usable {
            continue;
        }
        let reference = rewrite(r, &reg.prefix, &m.location)?;
        if find_registry(conf, &reference.name()).is_some_and(|b| b.blocked) {
            tracing::debug!(mirror = %m.location, image, "skipping blocked mirror");
            continue;
        }
        out.push(Endpoint {
            reference,
            insecure: m.insecure,
            mirror: true,
            pull_from_mirror: mode,
        });
    }
    let primary = if reg.location.is_empty() {
        r.clone()
    } else {
        rewrite(r, &reg.prefix, &reg.location)?
    };
    out.push(Endpoint {
        reference: primary,
        insecure: reg.insecure,
        mirror: false,
        pull_from_mirror: PullFromMirror::All,
    });
    Ok(out)
}

/// Split off `:tag` / `@digest` (kept verbatim) from the name part.
fn split_suffix(s: &str) -> (&str, &str) {
    let at = s.find('@').unwrap_or(s.len());
    let last_slash = s[..at].rfind('/').map_or(0, |i| i + 1);
    let end = s[last_slash..at].find(':').map_or(at, |i| last_slash + i);
    (&s[..end], &s[end..])
}

/// Resolve `image` into candidates; see the module docs.
pub fn resolve(
    conf: &ConfFile,
    search: &[String],
    image: &str,
) -> Result<Vec<Candidate>, RegistriesError> {
    // Validate the grammar first so errors name the input as given.
    ImageReference::parse(image)?;
    let mut names = Vec::new();
    if ImageReference::is_fully_qualified_input(image) {
        names.push(ImageReference::normalize_docker(image)?);
    } else {
        let (short, suffix) = split_suffix(image);
        if let Some(target) = conf.aliases.get(short) {
            tracing::debug!(image, alias = %target, "short-name alias");
            names.push(ImageReference::normalize_docker(&format!(
                "{target}{suffix}"
            ))?);
        } else {
            if search.is_empty() {
                return Err(RegistriesError::ShortName {
                    image: image.to_string(),
                    reason: "no unqualified-search-registries are configured".into(),
                });
            }
            for reg in search {
                let full = if reg == "docker.io" && !short.contains('/') {
                    format!("{reg}/library/{short}{suffix}")
                } else {
                    format!("{reg}/{short}{suffix}")
                };
                names.push(ImageReference::normalize_docker(&full)?);
            }
        }
    }
    // A blocked search registry only removes that candidate (containers/image tries the
    // next one); the error is returned when nothing is left.
    let mut out = Vec::new();
    let mut first_err = None;
    for reference in names {
        match endpoints(conf, &reference, image) {
            Ok(endpoints) => out.push(Candidate {
                reference,
                endpoints,
            }),
            Err(e @ RegistriesError::Blocked { .. }) => {
                tracing::debug!(image, candidate = %reference, "candidate registry is blocked");
                first_err.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    match first_err {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok(out),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::Registries;
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn reg(s: &str) -> Registries {
        Registries::from_toml_str(s, "test.conf").unwrap()
    }

    fn names(c: &[Candidate]) -> Vec<String> {
        c.iter().map(|c| c.reference.to_string()).collect()
    }

    fn eps(c: &Candidate) -> Vec<(String, bool, bool)> {
        c.endpoints
            .iter()
            .map(|e| (e.reference.to_string(), e.insecure, e.mirror))
            .collect()
    }

    #[test]
    fn defaults_expand_to_docker_io() {
        let r = Registries::default();
        let c = r.resolve("busybox").unwrap();
        assert_eq!(names(&c), ["docker.io/library/busybox:latest"]);
        assert_eq!(
            eps(&c[0]),
            [("docker.io/library/busybox:latest".into(), false, false)]
        );
        let c = r.resolve("quay.io/a/b:1").unwrap();
        assert_eq!(names(&c), ["quay.io/a/b:1"]);
        let c = r.resolve("localhost/foo").unwrap();
        assert_eq!(names(&c), ["localhost/foo:latest"]);
        let c = r.resolve("localhost:5000/a").unwrap();
        assert_eq!(names(&c), ["localhost:5000/a:latest"]);
        assert!(r.resolve("Bad").is_err());
    }

    #[test]
    fn short_names_two_search_registries() {
        let r = reg(
            "unqualified-search-registries = [\"quay.io\", \"docker.io\"]\nshort-name-mode = \"enforcing\"\n",
        );
        assert_eq!(
            names(&r.resolve("busybox:1").unwrap()),
            ["quay.io/busybox:1", "docker.io/library/busybox:1"]
        );
        assert_eq!(
            names(&r.resolve("foo/bar").unwrap()),
            ["quay.io/foo/bar:latest", "docker.io/foo/bar:latest"]
        );
        let none = reg("unqualified-search-registries = []\n");
        assert!(
            none.resolve("busybox")
                .unwrap_err()
                .to_string()
                .contains("busybox")
        );
        // Qualified inputs are never expanded.
        assert_eq!(
            names(&none.resolve("quay.io/x").unwrap()),
            ["quay.io/x:latest"]
        );
    }

    #[test]
    fn aliases() {
        let r = reg(
            "unqualified-search-registries = [\"quay.io\"]\n[aliases]\n\"busybox\" = \"docker.io/library/busybox\"\n",
        );
        assert_eq!(
            names(&r.resolve("busybox:1.36").unwrap()),
            ["docker.io/library/busybox:1.36"]
        );
        assert_eq!(
            names(&r.resolve("other").unwrap()),
            ["quay.io/other:latest"]
        );
        let e = Registries::from_toml_str("[aliases]\n\"x\" = \"short\"\n", "al.conf").unwrap_err();
        let e = e.to_string();
        assert!(e.contains("al.conf") && e.contains("aliases.\"x\""), "{e}");
    }

    #[test]
    fn mirrors_before_primary_with_insecure() {
        let r = reg(r#"
[[registry]]
prefix = "docker.io"
location = "registry-1.docker.io"
[[registry.mirror]]
location = "mirror.local:5000"
insecure = true
[[registry.mirror]]
location = "m2.example.com/cache"
"#);
        let c = r.resolve("docker.io/library/busybox:1").unwrap();
        assert_eq!(names(&c), ["docker.io/library/busybox:1"]);
        assert_eq!(
            eps(&c[0]),
            [
                ("mirror.local:5000/library/busybox:1".into(), true, true),
                ("m2.example.com/cache/library/busybox:1".into(), false, true),
                (
                    "registry-1.docker.io/library/busybox:1".into(),
                    false,
                    false
                ),
            ]
        );
    }

    #[test]
    fn blocked_and_longest_prefix_and_wildcard() {
        let r = reg(r#"
[[registry]]
prefix = "example.com"
blocked = true
[[registry]]
prefix = "example.com/foo"
location = "internal.example.net/foo"
insecure = true
[[registry]]
prefix = "*.corp.io"
insecure = true
[[registry.mirror]]
location = "cache.local"
"#);
        let c = r.resolve("example.com/foo/bar:1").unwrap();
        assert_eq!(
            eps(&c[0]),
            [("internal.example.net/foo/bar:1".into(), true, false)]
        );
        let e = r.resolve("example.com/foobar").unwrap_err();
        assert!(matches!(e, RegistriesError::Blocked { .. }));
        let e = e.to_string();
        assert!(
            e.contains("example.com") && e.contains("example.com/foobar"),
            "{e}"
        );
        let c = r.resolve("a.corp.io/x/y").unwrap();
        assert_eq!(
            eps(&c[0]),
            [
                ("cache.local/x/y:latest".into(), false, true),
                ("a.corp.io/x/y:latest".into(), true, false)
            ]
        );
        // The wildcard does not match the bare domain.
        let c = r.resolve("corp.io/x").unwrap();
        assert_eq!(eps(&c[0]), [("corp.io/x:latest".into(), false, false)]);
    }

    #[test]
    fn blocked_search_registry_skipped() {
        let r = reg(
            "unqualified-search-registries = [\"bad.io\", \"quay.io\"]\n[[registry]]\nprefix = \"bad.io\"\nblocked = true\n",
        );
        assert_eq!(names(&r.resolve("x").unwrap()), ["quay.io/x:latest"]);
        let e = r.resolve("bad.io/x").unwrap_err().to_string();
        assert!(e.contains("bad.io") && e.contains("blocked"), "{e}");
        let only = reg(
            "unqualified-search-registries = [\"bad.io\"]\n[[registry]]\nprefix = \"bad.io\"\nblocked = true\n",
        );
        assert!(matches!(
            only.resolve("x"),
            Err(RegistriesError::Blocked { .. })
        ));
    }

    #[test]
    fn blocked_mirror_skipped() {
        let r = reg(r#"
[[registry]]
prefix = "bad.io"
blocked = true
[[registry]]
prefix = "quay.io"
[[registry.mirror]]
location = "bad.io"
"#);
        let c = r.resolve("quay.io/a").unwrap();
        assert_eq!(eps(&c[0]), [("quay.io/a:latest".into(), false, false)]);
    }

    #[test]
    fn digest_only_mirrors() {
        let r = reg(r#"
[[registry]]
prefix = "quay.io"
[[registry.mirror]]
location = "dig.local"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tag.local"
pull-from-mirror = "tag-only"
"#);
        let c = r.resolve("quay.io/a:1").unwrap();
        assert_eq!(
            eps(&c[0]),
            [
                ("tag.local/a:1".into(), false, true),
                ("quay.io/a:1".into(), false, false)
            ]
        );
        let c = r.resolve(&format!("quay.io/a@{D}")).unwrap();
        assert_eq!(
            eps(&c[0]),
            [
                (format!("dig.local/a@{D}"), false, true),
                (format!("quay.io/a@{D}"), false, false)
            ]
        );
        assert_eq!(
            c[0].endpoints[0].pull_from_mirror,
            PullFromMirror::DigestOnly
        );
    }

    #[test]
    fn drop_ins_override() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("registries.conf");
        std::fs::write(
            &main,
            "unqualified-search-registries = [\"a.io\"]\n[aliases]\n\"x\" = \"a.io/x\"\n[[registry]]\nprefix = \"a.io\"\ninsecure = true\n",
        )
        .unwrap();
        let d = dir.path().join("registries.conf.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("10-b.conf"), "[aliases]\n\"x\" = \"b.io/x\"\n").unwrap();
        std::fs::write(
            d.join("20-c.conf"),
            "unqualified-search-registries = [\"c.io\", \"a.io\"]\n[[registry]]\nprefix = \"a.io\"\nlocation = \"a2.io\"\n",
        )
        .unwrap();
        std::fs::write(d.join("ignored.txt"), "garbage").unwrap();
        let r = Registries::load(&main).unwrap();
        assert_eq!(names(&r.resolve("x").unwrap()), ["b.io/x:latest"]);
        let c = r.resolve("y").unwrap();
        assert_eq!(names(&c), ["c.io/y:latest", "a.io/y:latest"]);
        assert_eq!(eps(&c[1]), [("a2.io/y:latest".into(), false, false)]);

        std::fs::write(d.join("30-bad.conf"), "nope = 1\n").unwrap();
        let e = Registries::load(&main).unwrap_err().to_string();
        assert!(e.contains("30-bad.conf") && e.contains("nope"), "{e}");

        let missing = Registries::load(&dir.path().join("sub/none.conf")).unwrap();
        assert_eq!(missing.search_registries(), ["docker.io"]);
    }
}
