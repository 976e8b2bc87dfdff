//! The CRI streaming server: `Exec`, `Attach` and `PortForward` return a URL on it, and
//! the kubelet (or `crust ctl`, crictl, kubectl through the API server) connects there
//! to run the session.
//!
//! Design follows the kubelet's `k8s.io/kubelet/pkg/cri/streaming` server that CRI-O and
//! containerd embed: the RPC validates the request and stores it under a single-use
//! token ([`token`]) that expires after a minute; `GET|POST /{exec,attach,portforward}/
//! <token>` upgrades the HTTP/1.1 connection ([`http`]) to SPDY/3.1 (negotiated with
//! `X-Stream-Protocol-Version`) or to WebSocket (`Sec-WebSocket-Protocol`), the
//! transport layers ([`spdy`], [`ws`]) turn it into streams, and the handlers
//! ([`exec`], [`attach`], [`portforward`]) connect those to the process, the container
//! monitor's attach socket, or a TCP connection made inside the pod's network namespace
//! ([`dial`]).

pub mod attach;
pub mod dial;
pub mod error;
pub mod exec;
pub mod http;
pub mod portforward;
pub mod protocol;
pub mod spdy;
pub mod streams;
pub mod tls;
pub mod token;
pub mod ws;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use error::StreamError;
pub use streams::StreamOpts;

use crate::config::streaming::StreamConfig;
use crate::lifecycle::{LifecycleError, Manager};
use crate::state::PodState;

/// A validated request waiting for its client to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// Run `cmd` in the container.
    Exec {
        /// Full container id.
        container_id: String,
        /// Command and arguments.
        cmd: Vec<String>,
        /// Streams.
        opts: StreamOpts,
    },
    /// Join the container's stdio.
    Attach {
        /// Full container id.
        container_id: String,
        /// Streams.
        opts: StreamOpts,
    },
    /// Forward TCP connections into the pod.
    PortForward {
        /// Full pod id.
        pod_id: String,
        /// Ports named by the CRI request (WebSocket clients may name others).
        ports: Vec<u16>,
    },
}

impl Pending {
    /// The URL path segment serving this kind.
    pub fn path(&self) -> &'static str {
        match self {
            Pending::Exec { .. } => "exec",
            Pending::Attach { .. } => "attach",
            Pending::PortForward { .. } => "portforward",
        }
    }
}

/// What the HTTP layer and handlers share.
pub struct Shared {
    /// Outstanding requests.
    pub tokens: token::TokenCache<Pending>,
    /// Pods and containers.
    pub lifecycle: Arc<Manager>,
    /// `stream_idle_timeout` (zero: none).
    pub idle_timeout: Duration,
    /// How long clients get to open their SPDY streams.
    pub creation_timeout: Duration,
}

/// A running streaming server.
pub struct StreamServer {
    base_url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl StreamServer {
    /// Bind `[crust.stream]`'s address and serve until [`StreamServer::shutdown`].
    pub async fn start(cfg: &StreamConfig, lifecycle: Arc<Manager>) -> Result<Self, StreamError> {
        let ip: IpAddr = cfg.address.parse().map_err(|_| StreamError::Address {
            address: cfg.address.clone(),
        })?;
        let addr = SocketAddr::new(ip, cfg.port);
        let tls = if cfg.tls() {
            Some(tls::acceptor(&cfg.tls_cert, &cfg.tls_key)?)
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StreamError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StreamError::Bind { addr, source })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{addr}");
        let shared = Arc::new(Shared {
            tokens: token::TokenCache::new(cfg.token_ttl),
            lifecycle,
            idle_timeout: cfg.stream_idle_timeout,
            creation_timeout: spdy::STREAM_CREATION_TIMEOUT,
        });
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(http::serve(listener, tls, Arc::clone(&shared), stop_rx));
        tracing::info!(url = %base_url, "streaming server listening");
        Ok(Self {
            base_url,
            addr,
            shared,
            stop,
            task,
        })
    }

    /// `http(s)://<address>:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound address (the real port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn url_for(&self, req: Pending) -> Result<String, StreamError> {
        let path = req.path();
        let token = self.shared.tokens.insert(req)?;
        Ok(format!("{}/{path}/{token}", self.base_url))
    }

    /// Validate an exec request (CRI `Exec`) and return its URL.
    pub fn exec(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        opts: StreamOpts,
    ) -> Result<String, StreamError> {
        if cmd.is_empty() {
            return Err(StreamError::InvalidArgument {
                field: "cmd",
                value: "[]".into(),
                reason: "must not be empty",
            });
        }
        check_opts(opts)?;
        let container_id = self.running_container(container_id, "exec")?;
        self.url_for(Pending::Exec {
            container_id,
            cmd,
            opts,
        })
    }

    /// Validate an attach request (CRI `Attach`) and return its URL.
    pub fn attach(&self, container_id: &str, opts: StreamOpts) -> Result<String, StreamError> {
        check_opts(opts)?;
        let container_id = self.running_container(container_id, "attach")?;
        self.url_for(Pending::Attach { container_id, opts })
    }

    /// Validate a port-forward request (CRI `PortForward`) and return its URL.
    pub fn port_forward(&self, pod_id: &str, ports: &[i32]) -> Result<String, StreamError> {
        let pod = self.shared.lifecycle.pod(pod_id)?;
        if pod.record().state != PodState::Ready {
            return Err(LifecycleError::precondition(
                format!("pod sandbox {}", pod.id),
                "is not ready: port-forward needs a ready pod",
            )
            .into());
        }
        let ports = ports
            .iter()
            .map(|p| {
                u16::try_from(*p).ok().filter(|p| *p > 0).ok_or_else(|| {
                    StreamError::InvalidArgument {
                        field: "port",
                        value: p.to_string(),
                        reason: "must be between 1 and 65535",
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.url_for(Pending::PortForward {
            pod_id: pod.id.clone(),
            ports,
        })
    }

    fn running_container(&self, id: &str, op: &str) -> Result<String, StreamError> {
        let what = format!("{op} needs a running container");
        let c = self.shared.lifecycle.running_container(id, &what)?;
        Ok(c.id.clone())
    }

    /// Stop accepting and end every open session.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CRI: at least one of stdin, stdout, stderr; a tty merges stderr into stdout so
/// `tty` with `stderr` is invalid.
fn check_opts(o: StreamOpts) -> Result<(), StreamError> {
    if !o.stdin && !o.stdout && !o.stderr {
        return Err(StreamError::InvalidArgument {
            field: "stdin/stdout/stderr",
            value: "false".into(),
            reason: "one of stdin, stdout, or stderr must be set",
        });
    }
    if o.tty && o.stderr {
        return Err(StreamError::InvalidArgument {
            field: "tty",
            value: "true".into(),
            reason: "tty and stderr cannot both be set",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opts_validation() {
        let none = StreamOpts::default();
        assert!(matches!(
            check_opts(none),
            Err(StreamError::InvalidArgument { .. })
        ));
        let tty_err = StreamOpts {
            stdout: true,
            stderr: true,
            tty: true,
            ..Default::default()
        };
        let e = check_opts(tty_err).err();
        assert!(
            e.is_some_and(|e| e.to_string().contains("tty and stderr")),
            "tty+stderr must be rejected"
        );
        let ok = StreamOpts {
            stdin: true,
            tty: true,
            ..Default::default()
        };
        assert!(check_opts(ok).is_ok());
    }
}
