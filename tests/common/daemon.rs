//! Spawns the real `crust` daemon on a temp root and socket, connects CRI clients over the
//! unix socket, and cleans up on drop (SIGTERM, then SIGKILL; unmounts leftovers under the
//! temp dir found in /proc/self/mountinfo).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crust_proto::cri::image_service_client::ImageServiceClient;
use crust_proto::cri::runtime_service_client::RuntimeServiceClient;
use crust_proto::cri::{ImageSpec, PullImageRequest, VersionRequest};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Path of the daemon binary under test.
pub fn crust_bin() -> &'static str {
    env!("CARGO_BIN_EXE_crust")
}

/// The `--log-level` daemons are started with: `debug` (tests want the detail when they
/// fail) unless [`set_log_level`] chose another, or `CRUST_TEST_LOG_LEVEL` overrides both.
static LOG_LEVEL: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Start every later daemon with `level` (benchmarks measure the default, `info`: debug
/// logging is not what a node runs, and it costs time on every RPC).
pub fn set_log_level(level: &'static str) {
    let _ = LOG_LEVEL.set(level);
}

fn log_level() -> String {
    std::env::var("CRUST_TEST_LOG_LEVEL")
        .unwrap_or_else(|_| LOG_LEVEL.get().copied().unwrap_or("debug").to_string())
}

/// Connect a gRPC channel over a unix socket.
pub async fn connect(sock: &Path) -> Result<Channel> {
    let sock = sock.to_path_buf();
    let ch = Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    UnixStream::connect(sock).await?,
                ))
            }
        }))
        .await?;
    Ok(ch)
}

/// A running daemon. Its files live in `base` (owned by the caller so a restart can reuse it).
pub struct Daemon {
    child: Option<Child>,
    pub base: PathBuf,
    pub root: PathBuf,
    pub sock: PathBuf,
    pub registries_conf: PathBuf,
    log: PathBuf,
}

/// `registries.conf` trusting the test registry over plain HTTP, plus it as the short-name
/// search registry; `extra` is appended verbatim.
pub fn registries_conf(registry_host: &str, extra: &str) -> String {
    format!(
        "unqualified-search-registries = [\"{registry_host}\"]\nshort-name-mode = \"permissive\"\n\n[[registry]]\nlocation = \"{registry_host}\"\ninsecure = true\n\n{extra}"
    )
}

impl Daemon {
    /// Write config files into `base` and start the daemon.
    pub async fn start(base: &Path, registries: &str) -> Result<Self> {
        std::fs::create_dir_all(base)?;
        // An empty CNI config dir of its own: the node's /etc/cni/net.d (a `make run` or an
        // installed package may have filled it) must not change what a test sees. Tests
        // that want a network point `[crust.network]` elsewhere with a drop-in.
        let net_d = base.join("net.d");
        std::fs::create_dir_all(&net_d)?;
        std::fs::write(
            base.join("crust.toml"),
            format!(
                "[crust.network]\nnetwork_dir = {:?}\n",
                net_d.display().to_string()
            ),
        )?;
        std::fs::create_dir_all(base.join("crust.conf.d"))?;
        std::fs::write(base.join("registries.conf"), registries)?;
        let mut d = Daemon {
            child: None,
            base: base.to_path_buf(),
            root: base.join("root"),
            sock: base.join("crust.sock"),
            registries_conf: base.join("registries.conf"),
            log: base.join("daemon.log"),
        };
        d.spawn().await?;
        Ok(d)
    }

    /// Start (again) on the same root.
    ///
    /// The target dir is shared with concurrent `cargo build`s: a daemon that exits
    /// silently (status 0, nothing logged) was most likely exec'd while the linker was
    /// rewriting `target/debug/crust`, so that case is retried a few times.
    pub async fn spawn(&mut self) -> Result<()> {
        for attempt in 0.. {
            let logged = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
            match self.spawn_once().await {
                Err(e)
                    if attempt < 5
                        && self.child.is_none()
                        && std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0) == logged =>
                {
                    eprintln!("crust exited silently ({e}); binary being rebuilt? retrying");
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                other => return other,
            }
        }
        Ok(())
    }

    async fn spawn_once(&mut self) -> Result<()> {
        let _ = std::fs::remove_file(&self.sock);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let b = &self.base;
        let child = Command::new(crust_bin())
            .arg("--config")
            .arg(b.join("crust.toml"))
            .arg("--config-dir")
            .arg(b.join("crust.conf.d"))
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(b.join("run"))
            .arg("--listen")
            .arg(&self.sock)
            .arg("--registries-conf")
            .arg(&self.registries_conf)
            .arg("--log-level")
            .arg(log_level())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", crust_bin()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.sock.exists() && self.answers_version().await {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Some(st) = c.try_wait()?
            {
                self.child = None;
                bail!(
                    "crust exited with {st} before serving; log:\n{}",
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "crust did not answer Version on {} within 20s; log:\n{}",
                    self.sock.display(),
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the socket answers a Version RPC within 2 s.
    async fn answers_version(&self) -> bool {
        let probe = async {
            let mut c = RuntimeServiceClient::new(connect(&self.sock).await?);
            c.version(VersionRequest::default()).await?;
            Ok::<_, anyhow::Error>(())
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), probe).await,
            Ok(Ok(()))
        )
    }

    /// Pid of the running daemon process, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's runroot (`--runroot`): bundles, monitor sockets, pinned namespaces.
    pub fn runroot(&self) -> PathBuf {
        self.base.join("run")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn images(&self) -> Result<ImageServiceClient<Channel>> {
        Ok(ImageServiceClient::new(connect(&self.sock).await?))
    }

    /// `PullImage` of `image` (no credentials); returns the image ref (`sha256:<id>`).
    pub async fn pull(&self, image: &str) -> Result<String> {
        Ok(self
            .images()
            .await?
            .pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: image.to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .with_context(|| format!("pull {image}"))?
            .into_inner()
            .image_ref)
    }

    pub async fn runtime(&self) -> Result<RuntimeServiceClient<Channel>> {
        Ok(RuntimeServiceClient::new(connect(&self.sock).await?))
    }

    /// `kill -9` (simulates a crash; no cleanup by the daemon).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `<root>/storage/layers/<hex>` directories (published layers).
    pub fn layer_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.root.join("storage/layers"))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The unpacked `diff` directory of the layer with diff id hex `hex`.
    pub fn layer_diff(&self, hex: &str) -> PathBuf {
        self.root.join("storage/layers").join(hex).join("diff")
    }

    /// Run `crust ctl <args>` against this daemon; returns (success, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> Result<(bool, String, String)> {
        let out = Command::new(crust_bin())
            .arg("ctl")
            .arg("--endpoint")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

/// Unmount (lazily) everything mounted at or below `dir`, deepest first.
pub fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| {
            PathBuf::from(
                p.replace("\\040", " ")
                    .replace("\\011", "\t")
                    .replace("\\012", "\n")
                    .replace("\\134", "\\"),
            )
        })
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in points {
        let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        unmount_below(&self.base);
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- crust log tail ({}) ----", self.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}
