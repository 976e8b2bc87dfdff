//! Registry credentials: auth.json (containers-auth.json(5), docker `config.json` `auths`)
//! and the CRI `AuthConfig` fields of a PullImage request.
//!
//! Keys may be `host`, `host/namespace/repo` or legacy URLs such as
//! `https://index.docker.io/v1/`; lookup picks the most specific key as containers/image does
//! (`host/ns/repo` before `host/ns` before `host`).

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;

use super::RegistriesError;

/// Credentials for one registry request.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials.
    Anonymous,
    /// HTTP basic (or the token exchange using it).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` / CRI `identity_token`).
    IdentityToken(String),
    /// A ready bearer token (CRI `registry_token`).
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    /// Never prints secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(***)"),
            Credentials::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

#[derive(Deserialize, Default)]
struct RawFile {
    #[serde(default)]
    auths: HashMap<String, RawEntry>,
}

#[derive(Deserialize, Default)]
struct RawEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    identitytoken: String,
}

/// Parsed auth.json: normalised key -> credentials.
#[derive(Debug, Clone, Default)]
pub struct AuthFile {
    entries: HashMap<String, Credentials>,
}

/// Decode `auth` = base64("user:pass").
fn decode_auth(auth: &str) -> Result<(String, String), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| format!("not valid base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "decoded value is not UTF-8".to_string())?;
    let (u, p) = text
        .split_once(':')
        .ok_or_else(|| "decoded value is not `username:password`".to_string())?;
    Ok((u.to_string(), p.to_string()))
}

/// Normalise a key: URLs keep only the host; docker.io aliases become `docker.io`.
/// Returns whether the key was URL-form (legacy, less preferred).
fn normalize_key(key: &str) -> (String, bool) {
    let (rest, url) = match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(r) => (r.split('/').next().unwrap_or(r), true),
        None => (key.trim_end_matches('/'), false),
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    if path.is_empty() {
        (host.to_string(), url)
    } else {
        (format!("{host}/{path}"), url)
    }
}

impl AuthFile {
    /// No credentials.
    pub fn empty() -> AuthFile {
        AuthFile::default()
    }

    /// Load an auth.json; a missing file is empty, a malformed one an error naming it.
    pub fn load(path: &Path) -> Result<AuthFile, RegistriesError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AuthFile::empty()),
            Err(source) => {
                return Err(RegistriesError::Io {
                    file: path.display().to_string(),
                    source,
                });
            }
        };
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Parse auth.json text; `origin` names the file in errors.
    pub fn from_json_str(text: &str, origin: &str) -> Result<AuthFile, RegistriesError> {
        let err = |reason: String| RegistriesError::AuthFile {
            file: origin.to_string(),
            reason,
        };
        let raw: RawFile = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut keys: Vec<_> = raw.auths.into_iter().collect();
        // URL-form keys first so a plain key for the same host wins.
        keys.sort_by_key(|(k, _)| {
            let (n, url) = normalize_key(k);
            (!url, n, k.clone())
        });
        let mut entries = HashMap::new();
        for (key, e) in keys {
            let creds = if !e.identitytoken.is_empty() {
                Credentials::IdentityToken(e.identitytoken)
            } else if !e.auth.is_empty() {
                let (username, password) =
                    decode_auth(&e.auth).map_err(|r| err(format!("auths.\"{key}\".auth: {r}")))?;
                Credentials::Basic { username, password }
            } else if !e.username.is_empty() || !e.password.is_empty() {
                Credentials::Basic {
                    username: e.username,
                    password: e.password,
                }
            } else {
                continue;
            };
            entries.insert(normalize_key(&key).0, creds);
        }
        Ok(AuthFile { entries })
    }

    /// Most specific match for `registry` + `repository`: `reg/ns/repo`, `reg/ns`, `reg`.
    pub fn lookup(&self, registry: &str, repository: &str) -> Credentials {
        let registry = normalize_key(registry).0;
        let mut key = format!("{registry}/{}", repository.trim_matches('/'));
        loop {
            if let Some(c) = self.entries.get(&key) {
                return c.clone();
            }
            match key.rfind('/') {
                Some(i) if key.len() > registry.len() => key.truncate(i),
                _ => return Credentials::Anonymous,
            }
        }
    }
}

/// Credentials from CRI `AuthConfig` fields (api.proto). Precedence: `registry_token` >
/// `identity_token` > `username`/`password` > `auth` (base64 `user:pass`). All empty =>
/// anonymous; a malformed `auth` is an error naming the field.
pub fn credentials_from_fields(
    username: &str,
    password: &str,
    auth: &str,
    identity_token: &str,
    registry_token: &str,
) -> Result<Credentials, RegistriesError> {
    if !registry_token.is_empty() {
        return Ok(Credentials::Bearer(registry_token.to_string()));
    }
    if !identity_token.is_empty() {
        return Ok(Credentials::IdentityToken(identity_token.to_string()));
    }
    if !username.is_empty() || !password.is_empty() {
        return Ok(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
        });
    }
    if !auth.is_empty() {
        let (username, password) =
            decode_auth(auth).map_err(|reason| RegistriesError::AuthField {
                field: "auth".into(),
                reason,
            })?;
        return Ok(Credentials::Basic { username, password });
    }
    Ok(Credentials::Anonymous)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn most_specific_wins() {
        let json = format!(
            r#"{{"auths": {{
                "quay.io": {{"auth": "{}"}},
                "quay.io/ns": {{"username": "ns", "password": "p2"}},
                "quay.io/ns/repo": {{"identitytoken": "tok"}},
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "localhost:5000": {{"auth": "{}"}}
            }}, "credHelpers": {{}}}}"#,
            b64("host:p1"),
            b64("dock:er"),
            b64("l:p")
        );
        let f = AuthFile::from_json_str(&json, "auth.json").unwrap();
        assert_eq!(f.lookup("quay.io", "other/x"), basic("host", "p1"));
        assert_eq!(f.lookup("quay.io", "ns/x"), basic("ns", "p2"));
        assert_eq!(
            f.lookup("quay.io", "ns/repo"),
            Credentials::IdentityToken("tok".into())
        );
        assert_eq!(f.lookup("quay.io", "ns/repository"), basic("ns", "p2"));
        assert_eq!(
            f.lookup("docker.io", "library/busybox"),
            basic("dock", "er")
        );
        assert_eq!(f.lookup("localhost:5000", "a"), basic("l", "p"));
        assert_eq!(f.lookup("other.io", "a"), Credentials::Anonymous);
    }

    #[test]
    fn plain_key_beats_legacy_url() {
        let json = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}}, "docker.io": {{"auth": "{}"}}}}}}"#,
            b64("old:1"),
            b64("new:2")
        );
        let f = AuthFile::from_json_str(&json, "a.json").unwrap();
        assert_eq!(f.lookup("docker.io", "x/y"), basic("new", "2"));
    }

    #[test]
    fn missing_and_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = AuthFile::load(&dir.path().join("none.json")).unwrap();
        assert_eq!(f.lookup("docker.io", "a"), Credentials::Anonymous);
        let p = dir.path().join("bad.json");
        std::fs::write(&p, "{not json").unwrap();
        let e = AuthFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("bad.json"), "{e}");
        std::fs::write(&p, r#"{"auths": {"q.io": {"auth": "!!!"}}}"#).unwrap();
        let e = AuthFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("bad.json") && e.contains("q.io"), "{e}");
    }

    #[test]
    fn cri_fields_precedence() {
        let a = b64("u:p");
        assert_eq!(
            credentials_from_fields("", "", "", "", "").unwrap(),
            Credentials::Anonymous
        );
        assert_eq!(
            credentials_from_fields("", "", &a, "", "").unwrap(),
            basic("u", "p")
        );
        assert_eq!(
            credentials_from_fields("x", "y", &a, "", "").unwrap(),
            basic("x", "y")
        );
        assert_eq!(
            credentials_from_fields("x", "y", &a, "id", "").unwrap(),
            Credentials::IdentityToken("id".into())
        );
        assert_eq!(
            credentials_from_fields("x", "y", &a, "id", "rt").unwrap(),
            Credentials::Bearer("rt".into())
        );
        let e = credentials_from_fields("", "", "%%%", "", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`auth`"), "{e}");
        let e = credentials_from_fields("", "", &b64("nocolon"), "", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("username:password"), "{e}");
        assert!(!format!("{:?}", basic("u", "secret")).contains("secret"));
    }
}
