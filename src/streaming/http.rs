//! The HTTP/1.1 side of the streaming server (hyper 1 with upgrades): routing
//! `/{exec,attach,portforward}/<token>`, token checks, and the two upgrades.
//!
//! - SPDY: `Upgrade: SPDY/3.1`; the subprotocol comes from `X-Stream-Protocol-Version`
//!   (httpstream `Handshake`: none is 400, no common one is 403 with
//!   `X-Accepted-Stream-Protocol-Versions`); the 101 answer echoes the chosen one.
//! - WebSocket (RFC 6455): `Upgrade: websocket`; the subprotocol comes from
//!   `Sec-WebSocket-Protocol` (first client choice the server supports; none offered
//!   means the binary `channel.k8s.io` behaviour, as `wsstream` treats "").
//!
//! An unknown, used or expired token is 404 (the kubelet answers `http.NotFound`), with
//! a body saying which.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::protocol::{self, HEADER_ACCEPTED_PROTOCOLS, HEADER_PROTOCOL_VERSION, SPDY_31};
use super::streams::{Activity, IdleIo};
use super::token::Rejected;
use super::{Pending, Shared, attach, exec, portforward};

type Body = Full<Bytes>;

/// Accept connections until `stop` flips.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "streaming server accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = tcp.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            match tls {
                Some(acc) => match acc.accept(tcp).await {
                    Ok(s) => connection(s, shared, stop).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "streaming tls handshake failed"),
                },
                None => connection(tcp, shared, stop).await,
            }
        });
    }
}

async fn connection<S>(io: S, shared: Arc<Shared>, stop: tokio::sync::watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        async move { Ok::<_, Infallible>(route(req, shared, stop)) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await
    {
        tracing::debug!(error = %e, "streaming http connection ended with an error");
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The `Upgrade` kinds understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Spdy,
    WebSocket,
}

fn upgrade_kind(req: &Request<Incoming>) -> Option<Kind> {
    let connection_upgrade = req
        .headers()
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("upgrade"));
    if !connection_upgrade {
        return None;
    }
    let up = req.headers().get(UPGRADE)?.to_str().ok()?;
    if up.eq_ignore_ascii_case("websocket") {
        Some(Kind::WebSocket)
    } else if up.eq_ignore_ascii_case(SPDY_31) {
        Some(Kind::Spdy)
    } else {
        None
    }
}

fn header_list(req: &Request<Incoming>, name: &str) -> Vec<String> {
    protocol::split_list(
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

fn route(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Response<Body> {
    if !matches!(*req.method(), hyper::Method::GET | hyper::Method::POST) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n");
    }
    let path = req.uri().path().trim_matches('/').to_owned();
    let Some((kind_path, token)) = path.split_once('/') else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no such streaming endpoint /{path}\n"),
        );
    };
    if !matches!(kind_path, "exec" | "attach" | "portforward") || token.contains('/') {
        return text(
            StatusCode::NOT_FOUND,
            format!("no such streaming endpoint /{path}\n"),
        );
    }
    let pending = match shared.tokens.consume(token) {
        Ok(p) if p.path() == kind_path => p,
        Ok(_) | Err(Rejected::Unknown) => {
            return text(
                StatusCode::NOT_FOUND,
                format!(
                    "streaming token {token:?} is unknown or was already used (tokens are single-use)\n"
                ),
            );
        }
        Err(Rejected::Expired) => {
            return text(
                StatusCode::NOT_FOUND,
                format!("streaming token {token:?} has expired: ask the runtime for a new URL\n"),
            );
        }
    };
    let Some(kind) = upgrade_kind(&req) else {
        return text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: the request must upgrade to SPDY/3.1 or websocket\n",
        );
    };
    let span = tracing::info_span!("stream", endpoint = kind_path, transport = ?kind);
    match kind {
        Kind::Spdy => {
            let offered = header_list(&req, HEADER_PROTOCOL_VERSION);
            if offered.is_empty() {
                return text(
                    StatusCode::BAD_REQUEST,
                    "unable to upgrade: X-Stream-Protocol-Version is required\n",
                );
            }
            let server: &[&'static str] = match pending {
                Pending::PortForward { .. } => &[protocol::PORT_FORWARD_V1],
                _ => protocol::SPDY_REMOTECOMMAND,
            };
            let Some(chosen) = protocol::negotiate(&offered, server) else {
                let mut r = text(
                    StatusCode::FORBIDDEN,
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {server:?}\n"
                    ),
                );
                for p in server {
                    r.headers_mut()
                        .append(HEADER_ACCEPTED_PROTOCOLS, HeaderValue::from_static(p));
                }
                return r;
            };
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(tracing::Instrument::instrument(
                async move {
                    let Some((io, activity)) = upgraded(on_upgrade, "spdy").await else {
                        return;
                    };
                    let (session, incoming) = crust_proto::spdy::Session::server(io);
                    let idle = shared.idle_timeout;
                    let watchdog_session = session.clone();
                    let run = run_spdy(pending, chosen, session, incoming, Arc::clone(&shared));
                    // Closing the session on idleness lets the handler see its client
                    // gone and clean up (kill an exec's process tree) on its own.
                    let watchdog = tokio::spawn(async move {
                        activity.idle(idle).await;
                        tracing::info!(timeout = ?idle, "closing idle spdy stream");
                        watchdog_session.close().await;
                    });
                    until_stopped(run, stop).await;
                    watchdog.abort();
                },
                span,
            ));
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = r.headers_mut();
            h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(UPGRADE, HeaderValue::from_static(SPDY_31));
            h.insert(HEADER_PROTOCOL_VERSION, HeaderValue::from_static(chosen));
            r
        }
        Kind::WebSocket => websocket(req, pending, shared, stop, span),
    }
}

/// The connection after the `101 Switching Protocols`, wrapped so that every byte moved
/// counts as activity for the idle timeout; `None` (logged) when the upgrade failed.
async fn upgraded(
    on_upgrade: hyper::upgrade::OnUpgrade,
    protocol: &'static str,
) -> Option<(IdleIo<TokioIo<hyper::upgrade::Upgraded>>, Activity)> {
    match on_upgrade.await {
        Ok(u) => {
            let activity = Activity::default();
            Some((IdleIo::new(TokioIo::new(u), activity.clone()), activity))
        }
        Err(e) => {
            tracing::debug!(error = %e, protocol, "upgrade failed");
            None
        }
    }
}

/// Resolves once the server is stopping.
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    // An error means the server handle is gone: stopping too.
    let _ = rx.wait_for(|s| *s).await;
}

async fn until_stopped(
    fut: impl std::future::Future<Output = ()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::select! {
        () = fut => {}
        () = stopped(&mut stop) => tracing::debug!("streaming server stopping"),
    }
}

async fn run_spdy(
    pending: Pending,
    chosen: &'static str,
    session: crust_proto::spdy::Session,
    incoming: crust_proto::spdy::Incoming,
    shared: Arc<Shared>,
) {
    match pending {
        Pending::PortForward { pod_id, .. } => {
            portforward::spdy::serve(session, incoming, &pod_id, shared).await;
        }
        Pending::Exec {
            container_id,
            cmd,
            opts,
        } => {
            let version = protocol::Version::from_protocol(chosen);
            match super::spdy::remote_streams(
                session,
                incoming,
                opts,
                version,
                shared.creation_timeout,
            )
            .await
            {
                Ok(streams) => exec::run(&shared, &container_id, cmd, opts, streams).await,
                Err(e) => {
                    tracing::warn!(container = %container_id, error = %e.full_message(), "exec streams")
                }
            }
        }
        Pending::Attach { container_id, opts } => {
            let version = protocol::Version::from_protocol(chosen);
            match super::spdy::remote_streams(
                session,
                incoming,
                opts,
                version,
                shared.creation_timeout,
            )
            .await
            {
                Ok(streams) => attach::run(&shared, &container_id, opts, streams).await,
                Err(e) => {
                    tracing::warn!(container = %container_id, error = %e.full_message(), "attach streams")
                }
            }
        }
    }
}

fn websocket(
    mut req: Request<Incoming>,
    pending: Pending,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
    span: tracing::Span,
) -> Response<Body> {
    let version_ok = req
        .headers()
        .get("sec-websocket-version")
        .is_some_and(|v| v.as_bytes() == b"13");
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return text(
            StatusCode::BAD_REQUEST,
            "websocket upgrade without Sec-WebSocket-Key\n",
        );
    };
    if !version_ok {
        let mut r = text(
            StatusCode::BAD_REQUEST,
            "unsupported Sec-WebSocket-Version (need 13)\n",
        );
        r.headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        return r;
    }
    let offered = header_list(&req, "sec-websocket-protocol");
    let server: &[&'static str] = match pending {
        Pending::PortForward { .. } => protocol::WS_PORT_FORWARD,
        _ => protocol::WS_REMOTECOMMAND,
    };
    let chosen: &'static str = if offered.is_empty() {
        ""
    } else {
        match protocol::negotiate(&offered, server) {
            Some(c) => c,
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "requested websocket protocol(s) are not supported: {offered:?}; supports {server:?}\n"
                    ),
                );
            }
        }
    };
    // Port-forward over WebSocket names its ports in the query (`?port=80&port=8080`).
    let mut query_ports = Vec::new();
    for (k, v) in req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
    {
        if k != protocol::PORT {
            continue;
        }
        match v.parse::<u16>() {
            Ok(p) if p > 0 => query_ports.push(p),
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("unable to parse {v:?} as a port\n"),
                );
            }
        }
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let Some((io, activity)) = upgraded(on_upgrade, "websocket").await else {
                return;
            };
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            let idle = shared.idle_timeout;
            let run = async {
                match pending {
                    Pending::PortForward { pod_id, ports } => {
                        portforward::ws::serve(
                            ws,
                            chosen,
                            &pod_id,
                            ports,
                            query_ports,
                            &shared,
                            activity,
                            idle,
                        )
                        .await;
                    }
                    Pending::Exec {
                        container_id,
                        cmd,
                        opts,
                    } => {
                        let streams =
                            super::ws::remote_streams(ws, chosen, opts, activity, idle).await;
                        exec::run(&shared, &container_id, cmd, opts, streams).await;
                    }
                    Pending::Attach { container_id, opts } => {
                        let streams =
                            super::ws::remote_streams(ws, chosen, opts, activity, idle).await;
                        attach::run(&shared, &container_id, opts, streams).await;
                    }
                }
            };
            until_stopped(run, stop).await;
        },
        span,
    ));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    if !chosen.is_empty() {
        h.insert("sec-websocket-protocol", HeaderValue::from_static(chosen));
    }
    r
}
