//! Pod and container helpers for the end-to-end tests: a busybox "tools" image pulled
//! through the daemon, pod/container configs with unique names, polling container states,
//! reading CRI log files, and [`World`], which on drop stops and removes every pod
//! through the daemon before the daemon itself is stopped (see `leftovers.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use crust_proto::cri::runtime_service_client::RuntimeServiceClient;
use crust_proto::cri::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatus, ContainerStatusRequest,
    CreateContainerRequest, DnsConfig, ImageSpec, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PullImageRequest,
    RemoveContainerRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
};
use tonic::transport::Channel;

use super::Env;
use super::image::{Comp, Image, ImageOpts, LayerBuilder, build_image, busybox_layer, push_image};

/// Busybox applets the tools image links in addition to the base layer's.
pub const APPLETS: &[&str] = &[
    "tail", "head", "tr", "grep", "hostname", "touch", "ps", "wc", "cut", "stat", "readlink", "dd",
    "sed", "kill", "printf", "mkdir", "rm", "env", "false", "mount", "test", "seq",
];

/// The busybox base layer plus a layer with more applets and the usual top-level dirs.
pub fn tools_image(label: &str) -> Result<Image> {
    let mut l = LayerBuilder::new()
        .dir("bin")?
        .dir("proc")?
        .dir("sys")?
        .dir("dev")?
        .dir("root")?
        .dir("var")?;
    for a in APPLETS {
        l = l.symlink(&format!("bin/{a}"), "busybox")?;
    }
    build_image(
        vec![busybox_layer()?, l.finish(Comp::Gzip)?],
        &ImageOpts {
            label: Some(label.into()),
            ..Default::default()
        },
    )
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique on this machine for the life of the test run: `<prefix>-<pid>-<n>-<nanos>`.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 100_000)
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Nanoseconds since the epoch (CRI timestamps).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// One parsed CRI log record: `<RFC3339Nano> <stdout|stderr> <F|P> <content>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub time: String,
    pub stream: String,
    pub tag: String,
    pub content: String,
}

/// Whether `ts` is `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (the regex
/// `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`).
pub fn is_rfc3339_nano_utc(ts: &str) -> bool {
    let pat = "dddd-dd-ddTdd:dd:dd.dddddddddZ";
    ts.len() == pat.len()
        && ts.bytes().zip(pat.bytes()).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        })
}

/// Parse a CRI log file strictly: every line must match the CRI format.
pub fn parse_log(text: &str) -> Result<Vec<LogRecord>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut it = line.splitn(4, ' ');
        let (Some(time), Some(stream), Some(tag)) = (it.next(), it.next(), it.next()) else {
            bail!("log line {i} is not `<time> <stream> <tag> <content>`: {line:?}");
        };
        let content = it.next().unwrap_or_default();
        if !is_rfc3339_nano_utc(time) {
            bail!("log line {i}: time {time:?} is not RFC3339Nano UTC with 9 digits");
        }
        if stream != "stdout" && stream != "stderr" {
            bail!("log line {i}: stream {stream:?}");
        }
        if tag != "F" && tag != "P" {
            bail!("log line {i}: tag {tag:?}");
        }
        out.push(LogRecord {
            time: time.into(),
            stream: stream.into(),
            tag: tag.into(),
            content: content.into(),
        });
    }
    Ok(out)
}

/// Logical lines of a parsed log (P records joined with the record that follows).
pub fn log_lines(records: &[LogRecord]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur: HashMap<String, String> = HashMap::new();
    for r in records {
        let e = cur.entry(r.stream.clone()).or_default();
        e.push_str(&r.content);
        if r.tag == "F" {
            out.push((r.stream.clone(), std::mem::take(e)));
        }
    }
    out
}

/// Pod config with a unique name/uid, a log directory under `logs`, and defaults a kubelet
/// would send (no oom_score_adj: this machine cannot lower it).
pub fn pod_config(prefix: &str, logs: &Path) -> PodSandboxConfig {
    let name = unique(prefix);
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.clone(),
            uid: format!("uid-{name}"),
            namespace: "e2e".into(),
            attempt: 0,
        }),
        hostname: "e2e-host".into(),
        log_directory: logs.join(&name).display().to_string(),
        labels: HashMap::from([("e2e".to_string(), "true".to_string())]),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(ns_options(
                    NamespaceMode::Pod,
                    NamespaceMode::Container,
                    NamespaceMode::Pod,
                )),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Namespace options the way a kubelet sends them (it always sets all three; note that
/// the proto default, all zero, means POD for each).
pub fn ns_options(
    network: NamespaceMode,
    pid: NamespaceMode,
    ipc: NamespaceMode,
) -> NamespaceOption {
    NamespaceOption {
        network: network as i32,
        pid: pid as i32,
        ipc: ipc as i32,
        ..Default::default()
    }
}

/// Pod DNS settings used by the DNS test.
pub fn dns_config() -> DnsConfig {
    DnsConfig {
        servers: vec!["10.96.0.10".into(), "10.96.0.11".into()],
        searches: vec!["e2e.svc.cluster.local".into(), "cluster.local".into()],
        options: vec!["ndots:5".into()],
    }
}

/// Container config with a unique name running `cmd` from `image`, logging to `<name>.log`.
pub fn ctr_config(prefix: &str, image: &str, cmd: &[&str]) -> ContainerConfig {
    let name = unique(prefix);
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.clone(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        labels: HashMap::from([("ctr".to_string(), name)]),
        linux: Some(LinuxContainerConfig {
            resources: None,
            security_context: Some(LinuxContainerSecurityContext::default()),
        }),
        ..Default::default()
    }
}

/// Mutable access to a container config's security context.
pub fn sc(cfg: &mut ContainerConfig) -> &mut LinuxContainerSecurityContext {
    cfg.linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
}

/// Mutable access to a pod config's security context.
pub fn pod_sc(cfg: &mut PodSandboxConfig) -> &mut LinuxSandboxSecurityContext {
    cfg.linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
}

/// A daemon with the tools image pulled, remembering every pod config it ran.
/// Field order: `env` (daemon, registry, temp dir) drops after [`World`]'s own `Drop`,
/// which stops and removes all pods through the daemon first.
pub struct World {
    pub image: String,
    pub image_id: String,
    pub logs: PathBuf,
    pub pods: Mutex<HashMap<String, PodSandboxConfig>>,
    /// Every container id this world created (for the leftover scan).
    pub ctr_ids: Mutex<Vec<String>>,
    pub env: Env,
}

impl World {
    /// Start registry + daemon, push and pull the tools image.
    pub async fn new() -> Result<Self> {
        let bin_dir = Path::new(super::daemon::crust_bin())
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for helper in ["crust-monitor", "crust-pause"] {
            if !bin_dir.join(helper).exists() {
                bail!(
                    "{helper} is missing next to crust in {}: run `cargo build --workspace --bins` first",
                    bin_dir.display()
                );
            }
        }
        let env = Env::new().await?;
        Self::with_image(env, "e2e/tools", &tools_image("tools")?).await
    }

    /// A world on `env` whose image is `img`, pushed as `<repo>:1` and pulled.
    pub async fn with_image(env: Env, repo: &str, img: &Image) -> Result<Self> {
        push_image(&env.registry, repo, "1", img)?;
        let image = env.r(&format!("{repo}:1"));
        let image_id = env.daemon.pull(&image).await?;
        let logs = env.base().join("logs");
        std::fs::create_dir_all(&logs)?;
        Ok(Self {
            image,
            image_id,
            logs,
            pods: Mutex::new(HashMap::new()),
            ctr_ids: Mutex::new(Vec::new()),
            env,
        })
    }

    /// A fresh runtime client (cheap; clients need `&mut`).
    pub async fn rt(&self) -> Result<RuntimeServiceClient<Channel>> {
        self.env.daemon.runtime().await
    }

    pub fn pod_config(&self, prefix: &str) -> PodSandboxConfig {
        pod_config(prefix, &self.logs)
    }

    pub fn ctr_config(&self, prefix: &str, cmd: &[&str]) -> ContainerConfig {
        ctr_config(prefix, &self.image, cmd)
    }

    /// RunPodSandbox with `handler` ("" = default); remembers the config.
    pub async fn run_pod_with(&self, cfg: &PodSandboxConfig, handler: &str) -> Result<String> {
        let id = self
            .rt()
            .await?
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(cfg.clone()),
                runtime_handler: handler.into(),
            })
            .await
            .context("RunPodSandbox")?
            .into_inner()
            .pod_sandbox_id;
        if let Ok(mut p) = self.pods.lock() {
            p.insert(id.clone(), cfg.clone());
        }
        Ok(id)
    }

    pub async fn run_pod(&self, cfg: &PodSandboxConfig) -> Result<String> {
        self.run_pod_with(cfg, "").await
    }

    /// CreateContainer in `pod`: like a kubelet, sends the pod's config as sandbox_config
    /// and copies the pod's namespace options into the container's security context.
    pub async fn create(&self, pod: &str, cfg: &ContainerConfig) -> Result<String, tonic::Status> {
        let sandbox_config = self.pods.lock().ok().and_then(|p| p.get(pod).cloned());
        let mut cfg = cfg.clone();
        if let Some(ns) = sandbox_config
            .as_ref()
            .and_then(|p| p.linux.as_ref())
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
        {
            sc(&mut cfg).namespace_options = Some(ns);
        }
        let mut rt = self
            .rt()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let id = rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(cfg),
                sandbox_config,
            })
            .await?
            .into_inner()
            .container_id;
        if let Ok(mut v) = self.ctr_ids.lock() {
            v.push(id.clone());
        }
        Ok(id)
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        self.rt()
            .await?
            .start_container(StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .with_context(|| format!("StartContainer {id}"))?;
        Ok(())
    }

    /// Create and start.
    pub async fn run(&self, pod: &str, cfg: &ContainerConfig) -> Result<String> {
        let id = self.create(pod, cfg).await.context("CreateContainer")?;
        self.start(&id).await?;
        Ok(id)
    }

    pub async fn stop(&self, id: &str, timeout: i64) -> Result<()> {
        self.rt()
            .await?
            .stop_container(StopContainerRequest {
                container_id: id.into(),
                timeout,
            })
            .await
            .with_context(|| format!("StopContainer {id}"))?;
        Ok(())
    }

    pub async fn remove(&self, id: &str) -> Result<()> {
        self.rt()
            .await?
            .remove_container(RemoveContainerRequest {
                container_id: id.into(),
            })
            .await
            .with_context(|| format!("RemoveContainer {id}"))?;
        Ok(())
    }

    pub async fn status(&self, id: &str) -> Result<ContainerStatus> {
        self.rt()
            .await?
            .container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .with_context(|| format!("ContainerStatus {id}"))?
            .into_inner()
            .status
            .with_context(|| format!("ContainerStatus {id}: no status"))
    }

    /// Poll ContainerStatus until `state` (or fail after `timeout`).
    pub async fn wait_state(
        &self,
        id: &str,
        state: ContainerState,
        timeout: Duration,
    ) -> Result<ContainerStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status(id).await?;
            if st.state == state as i32 {
                return Ok(st);
            }
            if Instant::now() > deadline {
                bail!(
                    "container {id} not {} after {timeout:?}: {st:?}",
                    state.as_str_name()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_exit(&self, id: &str) -> Result<ContainerStatus> {
        self.wait_state(id, ContainerState::ContainerExited, Duration::from_secs(30))
            .await
    }

    /// Host path of a container's log file.
    pub fn log_file(&self, pod: &PodSandboxConfig, ctr: &ContainerConfig) -> PathBuf {
        Path::new(&pod.log_directory).join(&ctr.log_path)
    }

    /// Strictly parsed log records of a container.
    pub fn log_records(
        &self,
        pod: &PodSandboxConfig,
        ctr: &ContainerConfig,
    ) -> Result<Vec<LogRecord>> {
        let p = self.log_file(pod, ctr);
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("read log {}", p.display()))?;
        parse_log(&text)
    }

    /// All logical lines of a container's log (stdout and stderr interleaved), joined by \n.
    pub fn output(&self, pod: &PodSandboxConfig, ctr: &ContainerConfig) -> Result<String> {
        let lines = log_lines(&self.log_records(pod, ctr)?);
        Ok(lines
            .into_iter()
            .map(|(_, l)| l)
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// Run `cfg` in `pod` until it exits; returns its final status and output.
    pub async fn run_to_exit(
        &self,
        pod: &str,
        cfg: &ContainerConfig,
    ) -> Result<(ContainerStatus, String)> {
        let pod_cfg = self
            .pods
            .lock()
            .ok()
            .and_then(|p| p.get(pod).cloned())
            .context("unknown pod config")?;
        let id = self.run(pod, cfg).await?;
        let st = self.wait_exit(&id).await?;
        let out = self.output(&pod_cfg, cfg)?;
        Ok((st, out))
    }

    /// Stop and remove every pod through the daemon, then return what is left behind.
    pub async fn cleanup(&self) -> Result<Vec<String>> {
        super::leftovers::remove_all_pods(&self.env.daemon).await?;
        Ok(self.leftovers())
    }

    /// Mounts, processes, cgroups, files and pinned namespaces left by this world.
    pub fn leftovers(&self) -> Vec<String> {
        let ids = self.ctr_ids.lock().map(|v| v.clone()).unwrap_or_default();
        super::leftovers::scan(&self.env.daemon, &ids)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let ids = self.ctr_ids.lock().map(|v| v.clone()).unwrap_or_default();
        super::leftovers::teardown(&self.env.daemon, &ids);
    }
}
