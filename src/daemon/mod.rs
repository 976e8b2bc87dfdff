//! The daemon: state directories, the image service, the CRI socket, signals.
//!
//! Start-up order: directories, image service (crash recovery happens in `open`), socket
//! (bound last so the kubelet only connects once we can answer). SIGHUP reloads
//! ([`reload`]); SIGTERM/SIGINT stop accepting connections, give in-flight RPCs
//! [`SHUTDOWN_GRACE`] to finish, remove the socket and return `Ok` (exit 0).

pub mod notify;
pub mod reload;
pub mod socket;

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crust_proto::cri::image_service_server::ImageServiceServer;
use crust_proto::cri::runtime_service_server::RuntimeServiceServer;
use tokio::signal::unix::{SignalKind, signal};
use tokio_stream::wrappers::UnixListenerStream;

use crate::cgroups::Driver;
use crate::config::runtime::CgroupManager;
use crate::config::{self, Config, ConfigFlags};
use crate::image::{ImageError, ImageService, ImageServiceOptions};
use crate::lifecycle::{Manager, ManagerOptions, apparmor_enabled, own_oom_score_adj};
use crate::logging::LogHandle;
use crate::runtime::Handlers;
use crate::runtime::binaries::find_binary;
use crate::server::{Context, CriServer};

/// How long in-flight RPCs may run after SIGTERM before the daemon exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A state directory could not be created.
    #[error("cannot create {key} directory {path:?}")]
    StateDir {
        /// Config key naming the directory.
        key: &'static str,
        /// The directory.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another crust daemon holds the root: two daemons on one store would corrupt it.
    #[error("crust.root {path:?} is in use by another crust daemon (lock file {lock:?} is held)")]
    RootInUse {
        /// The root directory.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The image service did not open.
    /// The runtime handler table is unusable.
    #[error("runtime configuration")]
    Runtime(#[source] crate::runtime::RuntimeError),
    /// Pod/container state could not be set up.
    #[error("cannot set up pod and container state: {0}")]
    Lifecycle(String),
    #[error("cannot open the image service at {path:?}")]
    Images {
        /// The storage root.
        path: PathBuf,
        #[source]
        source: ImageError,
    },
    /// The CRI socket could not be set up.
    #[error(transparent)]
    Socket(#[from] socket::SocketError),
    /// Installing a signal handler failed.
    #[error("cannot install the {signal} handler")]
    Signal {
        /// Signal name.
        signal: &'static str,
        #[source]
        source: io::Error,
    },
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(crate::metrics::server::MetricsError),
    /// The streaming server (Exec/Attach/PortForward URLs) could not start.
    #[error("cannot start the streaming server")]
    Streaming(#[source] crate::streaming::StreamError),
    /// The gRPC server failed.
    #[error("CRI server on {path:?} failed")]
    Serve {
        /// The socket.
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
}

/// The image service options the config implies.
pub fn image_options(config: &Config) -> ImageServiceOptions {
    let c = &config.crust;
    ImageServiceOptions {
        storage_root: c.root.join("storage"),
        registries_conf: c.image.registries_conf.clone(),
        auth_file: c.image.auth_file().map(ToOwned::to_owned),
        pull_progress_timeout: c.image.pull_progress_timeout,
        max_concurrent_downloads: c.image.max_concurrent_downloads,
        pull_sync_fs: c.image.pull_sync_fs,
    }
}

fn create_dir(key: &'static str, path: &std::path::Path, mode: u32) -> Result<(), DaemonError> {
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|source| DaemonError::StateDir {
            key,
            path: path.to_owned(),
            source,
        })
}

/// Take an exclusive `flock` on `<root>/crust.lock` for the daemon's lifetime, as CRI-O and
/// containerd lock their state roots: the socket check alone does not stop a second daemon
/// started with another `--listen` from opening (and garbage-collecting) the same store.
pub(crate) fn lock_root(root: &std::path::Path) -> Result<std::fs::File, DaemonError> {
    let lock = root.join("crust.lock");
    let in_use = |source: io::Error| DaemonError::RootInUse {
        path: root.to_owned(),
        lock: lock.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(in_use)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|e| in_use(e.into()))?;
    Ok(file)
}

fn sig(kind: SignalKind, name: &'static str) -> Result<tokio::signal::unix::Signal, DaemonError> {
    signal(kind).map_err(|source| DaemonError::Signal {
        signal: name,
        source,
    })
}

/// A started daemon: state directories exist, the image service is open and the CRI
/// server is serving on the socket. Tests use [`start`] and [`Running::shutdown`]
/// directly to run a daemon in-process without signals or a global log subscriber.
pub struct Running {
    ctx: Arc<Context>,
    listen: PathBuf,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    /// The exit watcher (aborted at shutdown).
    exits: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
    /// The metrics endpoint, when enabled.
    metrics: Option<crate::metrics::server::MetricsServer>,
    /// `crust.root` (the clean-shutdown marker lives there).
    root: PathBuf,
    /// Held (never read) so the root stays locked until the daemon is dropped.
    _root_lock: std::fs::File,
}

/// The lifecycle manager: runtime handlers from `[crust.runtime]`, helper binaries, and
/// the node facts containers depend on.
pub(crate) fn lifecycle(
    config: &Config,
    images: Arc<ImageService>,
) -> Result<Arc<Manager>, DaemonError> {
    let c = &config.crust;
    let handlers = Handlers::from_config(c).map_err(DaemonError::Runtime)?;
    for h in handlers.all() {
        match &h.unavailable {
            None => {
                tracing::info!(handler = %h.name, runtime = %h.runtime.path.display(), "runtime handler")
            }
            Some(why) => {
                tracing::warn!(handler = %h.name, reason = %why, "runtime handler unavailable")
            }
        }
    }
    let pause_path = find_binary("crust-pause", &c.runtime.pause_path).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "crust-pause not found: pods with a shared pid namespace will fail");
        c.runtime.pause_path.clone()
    });
    let non_empty = |p: &std::path::Path| (!p.as_os_str().is_empty()).then(|| p.to_path_buf());
    let opts = ManagerOptions {
        root: c.root.clone(),
        runroot: c.runroot.clone(),
        cgroup_driver: match c.runtime.cgroup_manager {
            CgroupManager::Systemd => Driver::Systemd,
            CgroupManager::Cgroupfs => Driver::Cgroupfs,
        },
        oom_score_adj_min: own_oom_score_adj(),
        pause_path,
        seccomp_profile: non_empty(&c.runtime.seccomp_profile),
        default_capabilities: c.runtime.default_capabilities.clone(),
        apparmor_enabled: apparmor_enabled(),
    };
    let shared = config::shared(config.clone());
    Manager::new(shared, c, handlers, images, opts)
        .map(Arc::new)
        .map_err(|e| DaemonError::Lifecycle(e.full_message()))
}

/// Create directories, open the image service, bind the socket and start serving.
pub async fn start(config: Config) -> Result<Running, DaemonError> {
    let c = &config.crust;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        root = %c.root.display(),
        runroot = %c.runroot.display(),
        listen = %c.api.listen.display(),
        "starting crust"
    );
    create_dir("crust.root", &c.root, 0o711)?;
    create_dir("crust.runroot", &c.runroot, 0o755)?;
    let root_lock = lock_root(&c.root)?;
    let root = c.root.clone();
    if crate::ops::marker::startup_decision(&root) == crate::ops::marker::StartupCheck::Run {
        let cfg = config.clone();
        let _ =
            crate::blocking::run("storage check", move || crate::ops::check::startup(&cfg)).await;
    } else {
        tracing::info!("clean shutdown marker found: skipping the storage check");
    }
    let opts = image_options(&config);
    let storage_root = opts.storage_root.clone();
    let images = ImageService::open(opts)
        .await
        .map_err(|source| DaemonError::Images {
            path: storage_root,
            source,
        })?;
    let images = Arc::new(images);
    let listen = c.api.listen.clone();
    let (recv, send) = (c.api.grpc_max_recv_msg_size, c.api.grpc_max_send_msg_size);
    let lifecycle = lifecycle(&config, Arc::clone(&images))?;
    let bad_stream = c.stream.validate();
    if let Some((key, reason)) = bad_stream.first() {
        return Err(DaemonError::Streaming(
            crate::streaming::StreamError::Protocol(format!("{key}: {reason}")),
        ));
    }
    let streaming = crate::streaming::StreamServer::start(&c.stream, Arc::clone(&lifecycle))
        .await
        .map_err(DaemonError::Streaming)?;
    let ctx = Arc::new(Context {
        config: config::shared(config),
        images,
        lifecycle: Arc::clone(&lifecycle),
        streaming: Arc::new(streaming),
    });
    lifecycle.recover().await;
    let exits = tokio::spawn(Arc::clone(&lifecycle).watch_exits());
    let cri = CriServer::new(Arc::clone(&ctx));
    // Before the socket: a daemon that cannot serve its metrics fails before it serves.
    let m = config::current(&ctx.config).crust.metrics.clone();
    let metrics = if m.enable {
        let manager = Some(Arc::clone(&lifecycle));
        let served = crate::metrics::server::serve(m.address, manager).await;
        Some(served.map_err(DaemonError::Metrics)?)
    } else {
        None
    };
    let listener = socket::bind(&listen)?;
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(
            RuntimeServiceServer::new(cri.clone())
                .max_decoding_message_size(recv)
                .max_encoding_message_size(send),
        )
        .add_service(
            ImageServiceServer::new(cri)
                .max_decoding_message_size(recv)
                .max_encoding_message_size(send),
        )
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    let server = tokio::spawn(server);
    tracing::info!(listen = %listen.display(), "serving CRI v1");
    Ok(Running {
        ctx,
        listen,
        server,
        exits,
        stop,
        metrics,
        root,
        _root_lock: root_lock,
    })
}

impl Running {
    /// The RPC context (config, image service).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The socket served.
    pub fn socket(&self) -> &std::path::Path {
        &self.listen
    }

    /// Stop accepting, give in-flight RPCs [`SHUTDOWN_GRACE`], remove the socket.
    pub async fn shutdown(mut self, reason: &str) -> Result<(), DaemonError> {
        tracing::info!(
            reason,
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "shutting down"
        );
        let _ = self.stop.send(());
        let mut finished_in_time = true;
        let result = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await {
            Ok(res) => server_result(&self.listen, res),
            Err(_) => {
                finished_in_time = false;
                tracing::warn!("in-flight RPCs did not finish in time; exiting anyway");
                self.server.abort();
                Ok(())
            }
        };
        self.exits.abort();
        // Pulled layers still waiting for their background sync: a clean stop leaves
        // nothing for recovery to redo.
        self.ctx.images.flush().await;
        if let Some(m) = self.metrics.take() {
            m.stop();
        }
        self.ctx.streaming.stop();
        socket::remove(&self.listen);
        // Only when every RPC finished: an aborted one may have left work half-done.
        if finished_in_time && result.is_ok() {
            crate::ops::marker::write(&self.root).unwrap_or_else(
                |e| tracing::warn!(error = %e, "cannot write the clean-shutdown marker"),
            );
        }
        tracing::info!("crust stopped");
        result
    }
}

fn server_result(
    listen: &std::path::Path,
    res: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
) -> Result<(), DaemonError> {
    match res {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(DaemonError::Serve {
            path: listen.to_owned(),
            source,
        }),
        Err(e) => {
            tracing::error!(error = %e, "CRI server task failed");
            Ok(())
        }
    }
}

/// Run the daemon until SIGTERM/SIGINT. `flags` are re-applied on every SIGHUP.
pub async fn run(flags: ConfigFlags, config: Config, log: LogHandle) -> Result<(), DaemonError> {
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut running = start(config).await?;
    notify::notifier().ready();
    let reason = loop {
        tokio::select! {
            res = &mut running.server => {
                // The server stopped without being asked to.
                socket::remove(&running.listen);
                return server_result(&running.listen, res);
            }
            _ = hup.recv() => {
                notify::notifier().reloading();
                reload::reload(&flags, &running.ctx, &log).await;
                notify::notifier().ready();
            }
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
        }
    };
    notify::notifier().stopping();
    running.shutdown(reason).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crust_proto::cri;

    use super::*;

    #[tokio::test]
    async fn serves_version_and_status_then_removes_socket() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.crust.root = dir.path().join("root");
        config.crust.runroot = dir.path().join("run");
        config.crust.api.listen = dir.path().join("run/crust.sock");
        let running = start(config).await.unwrap();
        let endpoint = format!("unix://{}", running.socket().display());
        let (mut rt, _images) = crate::ctl::connect(&endpoint).await.unwrap();
        let v = rt
            .version(cri::VersionRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.runtime_name, "crust");
        assert_eq!(v.runtime_api_version, "v1");
        let s = rt
            .status(cri::StatusRequest { verbose: true })
            .await
            .unwrap()
            .into_inner();
        assert!(s.info["config"].contains("crust.sock"));
        // A second daemon on the same socket is refused.
        let mut again = Config::default();
        again.crust.root = dir.path().join("root2");
        again.crust.runroot = dir.path().join("run2");
        again.crust.api.listen = running.socket().to_owned();
        assert!(matches!(
            start(again).await,
            Err(DaemonError::Socket(socket::SocketError::InUse { .. }))
        ));
        // A second daemon on the same root (another socket) is refused too.
        let mut same_root = Config::default();
        same_root.crust.root = dir.path().join("root");
        same_root.crust.runroot = dir.path().join("run3");
        same_root.crust.api.listen = dir.path().join("run3/crust.sock");
        let err = start(same_root).await.err().unwrap();
        assert!(matches!(err, DaemonError::RootInUse { .. }), "{err}");
        assert!(err.to_string().contains("in use by another crust daemon"));
        let sock = running.socket().to_owned();
        drop(rt);
        running.shutdown("test").await.unwrap();
        assert!(!sock.exists());
    }
}
