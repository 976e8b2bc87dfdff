//! Client side of the streaming server's HTTP upgrade: parse the URL the runtime
//! returned, open TCP (plus TLS for `https`, not verifying the certificate, like
//! crictl), and upgrade to SPDY/3.1 (hyper client, `X-Stream-Protocol-Version`) or
//! WebSocket (tokio-tungstenite, `Sec-WebSocket-Protocol`).

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::streaming::StreamError;
use crate::streaming::protocol::{HEADER_PROTOCOL_VERSION, SPDY_31};
use crate::streaming::tls;

/// A connected byte stream (plain or TLS).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The parts of a streaming URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https`.
    pub tls: bool,
    /// `host:port`.
    pub authority: String,
    /// Host alone (TLS server name).
    pub host: String,
    /// Path and query.
    pub path: String,
}

/// Split `http(s)://host:port/path`.
pub fn parse(url: &str) -> Result<Target, StreamError> {
    let bad = |reason: &str| StreamError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("expected an http:// or https:// url"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (
            rest.get(..i).unwrap_or_default(),
            rest.get(i..).unwrap_or("/"),
        ),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    let host = if let Some(h) = authority.strip_prefix('[') {
        h.split(']').next().unwrap_or_default().to_owned()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_owned()
    };
    let authority = if authority.starts_with('[') || authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    Ok(Target {
        tls,
        authority,
        host,
        path: path.to_owned(),
    })
}

async fn open(t: &Target) -> Result<Box<dyn Io>, StreamError> {
    let tcp = tokio::net::TcpStream::connect(&t.authority)
        .await
        .map_err(StreamError::io("connect to the streaming server"))?;
    let _ = tcp.set_nodelay(true);
    if !t.tls {
        return Ok(Box::new(tcp));
    }
    let name = rustls_pki_types::ServerName::try_from(t.host.clone())
        .map_err(|e| StreamError::Protocol(format!("tls server name {:?}: {e}", t.host)))?;
    let s = tls::insecure_connector()?
        .connect(name, tcp)
        .await
        .map_err(StreamError::io("tls handshake with the streaming server"))?;
    Ok(Box::new(s))
}

/// Upgrade to SPDY/3.1 offering `protocols`; returns the connection and the
/// negotiated protocol.
pub async fn spdy(url: &str, protocols: &[&str]) -> Result<(Box<dyn Io>, String), StreamError> {
    let t = parse(url)?;
    let io = open(&t).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "streaming http client connection");
        }
    });
    let mut req = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(&t.path)
        .header(hyper::header::HOST, &t.authority)
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, SPDY_31);
    for p in protocols {
        req = req.header(HEADER_PROTOCOL_VERSION, *p);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| StreamError::Protocol(format!("build upgrade request: {e}")))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    if status != hyper::StatusCode::SWITCHING_PROTOCOLS {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
            .unwrap_or_default();
        return Err(StreamError::Refused {
            url: url.to_owned(),
            status: status.as_u16(),
            body,
        });
    }
    let negotiated = resp
        .headers()
        .get(HEADER_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let upgraded = hyper::upgrade::on(resp).await?;
    Ok((Box::new(TokioIo::new(upgraded)), negotiated))
}

/// Upgrade to WebSocket offering `protocols`; returns the socket and the negotiated
/// protocol.
pub async fn websocket(
    url: &str,
    protocols: &[&str],
) -> Result<(WebSocketStream<Box<dyn Io>>, String), StreamError> {
    let t = parse(url)?;
    let io = open(&t).await?;
    let ws_url = format!(
        "{}://{}{}",
        if t.tls { "wss" } else { "ws" },
        t.authority,
        t.path
    );
    let mut req = ws_url.into_client_request()?;
    if let Ok(v) = HeaderValue::from_str(&protocols.join(", ")) {
        req.headers_mut().insert("sec-websocket-protocol", v);
    }
    let (ws, resp) = match tokio_tungstenite::client_async(req, io).await {
        Ok(x) => x,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .unwrap_or_default();
            return Err(StreamError::Refused {
                url: url.to_owned(),
                status: resp.status().as_u16(),
                body,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let negotiated = resp
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((ws, negotiated))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = parse("http://127.0.0.1:4242/exec/abc").unwrap();
        assert_eq!(
            t,
            Target {
                tls: false,
                authority: "127.0.0.1:4242".into(),
                host: "127.0.0.1".into(),
                path: "/exec/abc".into()
            }
        );
        let t = parse("https://[::1]:10010/attach/x?y=1").unwrap();
        assert!(t.tls);
        assert_eq!(t.host, "::1");
        assert_eq!(t.authority, "[::1]:10010");
        assert_eq!(t.path, "/attach/x?y=1");
        assert_eq!(parse("https://node").unwrap().authority, "node:443");
        assert!(parse("ftp://x/y").is_err());
    }
}
