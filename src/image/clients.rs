//! oci-client `Client`s, one per distinct (registry, transport, credentials), cached.
//!
//! oci-client keeps the credentials and the bearer tokens it obtained inside a `Client`,
//! keyed by registry host only; sharing one client between requests carrying different
//! credentials for the same registry would let the first request's credentials win. So the
//! cache key includes a fingerprint of the credentials. Reusing clients keeps connection
//! pools and tokens warm across pulls.
//!
//! Transport for `insecure = true` endpoints (containers-registries.conf(5)): like
//! containers/image, HTTPS without certificate verification is tried first, then plain HTTP.

use std::collections::HashMap;
use std::sync::{Mutex, Once};

use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use sha2::{Digest as _, Sha256};

use crate::registries::Credentials;

/// How to talk to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HTTPS with verified certificates.
    Https,
    /// HTTPS accepting any certificate (insecure registry).
    HttpsUnverified,
    /// Plain HTTP (insecure registry).
    Http,
}

/// Transports to try, in order, for an endpoint.
pub fn transports(insecure: bool) -> &'static [Transport] {
    if insecure {
        &[Transport::HttpsUnverified, Transport::Http]
    } else {
        &[Transport::Https]
    }
}

/// Map registry credentials onto what oci-client 0.18 supports (`RegistryAuth` has only
/// Anonymous, Basic and Bearer). An identity token (OAuth2 refresh token) cannot be
/// exchanged by oci-client; it is sent as the password of Basic auth in the token request,
/// which is containerd's fallback when the OAuth2 POST is not supported (and what Azure CR
/// accepts); registries that require the refresh-token grant will refuse it.
pub fn registry_auth(creds: &Credentials) -> RegistryAuth {
    match creds {
        Credentials::Anonymous => RegistryAuth::Anonymous,
        Credentials::Basic { username, password } => {
            RegistryAuth::Basic(username.clone(), password.clone())
        }
        Credentials::IdentityToken(token) => {
            RegistryAuth::Basic("<token>".to_string(), token.clone())
        }
        Credentials::Bearer(token) => RegistryAuth::Bearer(token.clone()),
    }
}

pub fn fingerprint(auth: &RegistryAuth) -> String {
    let mut h = Sha256::new();
    match auth {
        RegistryAuth::Anonymous => h.update(b"anon"),
        RegistryAuth::Basic(u, p) => {
            h.update(b"basic\0");
            h.update(u.as_bytes());
            h.update(b"\0");
            h.update(p.as_bytes());
        }
        RegistryAuth::Bearer(t) => {
            h.update(b"bearer\0");
            h.update(t.as_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// Above this many cached clients the cache is emptied (distinct credentials accumulate).
const MAX_CLIENTS: usize = 64;

/// The cache of clients.
#[derive(Default)]
pub struct Clients {
    cache: Mutex<HashMap<(String, Transport, String), Client>>,
    /// The transport that last worked for an insecure host, tried first next time so a
    /// plain-HTTP registry does not cost a failed TLS handshake on every pull.
    worked: Mutex<HashMap<String, Transport>>,
}

impl Clients {
    /// Transports to try for `host`, the one that worked last first.
    pub fn transports_for(&self, host: &str, insecure: bool) -> Vec<Transport> {
        let mut modes = transports(insecure).to_vec();
        let worked = match self.worked.lock() {
            Ok(g) => g.get(host).copied(),
            Err(poisoned) => poisoned.into_inner().get(host).copied(),
        };
        if let Some(w) = worked
            && let Some(pos) = modes.iter().position(|m| *m == w)
        {
            modes.swap(0, pos);
        }
        modes
    }

    /// Remember that `transport` worked for `host`.
    pub fn remember(&self, host: &str, transport: Transport) {
        match self.worked.lock() {
            Ok(mut g) => g.insert(host.to_string(), transport),
            Err(poisoned) => poisoned.into_inner().insert(host.to_string(), transport),
        };
    }

    /// The client for `host` (as oci-client resolves it, e.g. "index.docker.io"), `transport`
    /// and `auth`.
    ///
    /// Building one costs milliseconds of blocking work (reqwest loads and parses the
    /// system's root certificates), so it is done outside the lock and, for the registries
    /// the configuration names, ahead of time by [`Clients::prewarm`].
    pub fn get(&self, host: &str, transport: Transport, auth: &RegistryAuth) -> Client {
        install_crypto_provider();
        let key = (host.to_string(), transport, fingerprint(auth));
        if let Some(c) = self.lock_cache().get(&key) {
            return c.clone();
        }
        let config = ClientConfig {
            protocol: match transport {
                Transport::Http => ClientProtocol::HttpsExcept(vec![host.to_string()]),
                Transport::Https | Transport::HttpsUnverified => ClientProtocol::Https,
            },
            accept_invalid_certificates: transport == Transport::HttpsUnverified,
            // Index resolution is done by crust (manifest.rs), never by oci-client.
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            user_agent: concat!("crust/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let built = Client::new(config);
        let mut cache = self.lock_cache();
        if cache.len() >= MAX_CLIENTS && !cache.contains_key(&key) {
            cache.clear();
        }
        // A concurrent caller may have built the same client meanwhile: keep the first, so
        // every pull shares one connection pool and token cache.
        cache.entry(key).or_insert(built).clone()
    }

    /// Build the anonymous clients of `endpoints` (registry host and `insecure`, as
    /// [`crate::registries::Registries::known_endpoints`] lists them) for every transport
    /// they may be reached with, so the first pull after start-up or a reload does not
    /// wait for it. Blocking; the caller runs it on a blocking thread.
    pub fn prewarm(&self, endpoints: &[(String, bool)]) {
        let started = std::time::Instant::now();
        let mut built = 0usize;
        for (registry, insecure) in endpoints.iter().take(MAX_CLIENTS / 4) {
            let host = oci_client::Reference::with_tag(
                registry.clone(),
                "prewarm".to_string(),
                "latest".to_string(),
            )
            .resolve_registry()
            .to_string();
            for transport in transports(*insecure) {
                let _ = self.get(&host, *transport, &RegistryAuth::Anonymous);
                built += 1;
            }
        }
        tracing::debug!(
            clients = built,
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "registry clients prepared"
        );
    }

    fn lock_cache(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, Transport, String), Client>> {
        match self.cache.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Forget every client (credentials changed on reload).
    pub fn clear(&self) {
        self.lock_cache().clear();
    }
}

/// rustls needs a process-wide crypto provider; oci-client is built without one. Installing
/// fails harmlessly when someone else already installed one.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn credentials_map_to_registry_auth() {
        assert_eq!(
            registry_auth(&Credentials::Anonymous),
            RegistryAuth::Anonymous
        );
        assert_eq!(
            registry_auth(&Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            }),
            RegistryAuth::Basic("u".into(), "p".into())
        );
        assert_eq!(
            registry_auth(&Credentials::Bearer("t".into())),
            RegistryAuth::Bearer("t".into())
        );
        assert!(matches!(
            registry_auth(&Credentials::IdentityToken("r".into())),
            RegistryAuth::Basic(_, p) if p == "r"
        ));
    }

    #[test]
    fn clients_are_cached_per_credentials() {
        let clients = Clients::default();
        let anon = RegistryAuth::Anonymous;
        let basic = RegistryAuth::Basic("u".into(), "p".into());
        let _ = clients.get("r.example", Transport::Https, &anon);
        let _ = clients.get("r.example", Transport::Https, &anon);
        assert_eq!(clients.cache.lock().unwrap().len(), 1);
        let _ = clients.get("r.example", Transport::Https, &basic);
        let _ = clients.get("r.example", Transport::Http, &anon);
        assert_eq!(clients.cache.lock().unwrap().len(), 3);
        assert_eq!(
            transports(true),
            &[Transport::HttpsUnverified, Transport::Http]
        );
    }
}
