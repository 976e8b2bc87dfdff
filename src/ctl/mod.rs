//! `crust ctl`: crust's own CRI client, a small crictl.
//!
//! It speaks plain CRI v1 over a unix socket, so it works against containerd and CRI-O as
//! well; tests reuse [`connect`]. The endpoint comes from `-r/--endpoint`, else
//! `CONTAINER_RUNTIME_ENDPOINT` (crictl's variable), else crust's default socket.

mod config_json;
mod containers;
mod images;
mod logs;
mod output;
mod pods;
mod stats;
pub mod stream;

pub use config_json::{ConfigJsonError, Parsed, container_config, pod_config};
pub use output::{render_table, resolve_prefix};

use std::path::PathBuf;
use std::time::Duration;

use crust_proto::cri;
use crust_proto::cri::image_service_client::ImageServiceClient;
use crust_proto::cri::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::duration;

/// crust's default CRI endpoint.
pub const DEFAULT_ENDPOINT: &str = "unix:///run/crust/crust.sock";
/// Largest message the client accepts (image lists can be large).
pub const MAX_MSG_SIZE: usize = 64 * 1024 * 1024;

/// Errors of `crust ctl`.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The endpoint is not a unix socket address.
    #[error("unsupported endpoint {endpoint:?}: use unix:///path/to.sock or an absolute path")]
    Endpoint {
        /// What was given.
        endpoint: String,
    },
    /// Connecting failed.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// An RPC returned an error status.
    #[error("{rpc} failed: {code:?}: {message}")]
    Rpc {
        /// The RPC.
        rpc: &'static str,
        /// gRPC code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// An RPC or the connection took longer than `--timeout`.
    #[error("{what} timed out after {}", duration::format(*after))]
    Timeout {
        /// What timed out.
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The image is not known to the runtime.
    #[error("no such image: {image}")]
    NoSuchImage {
        /// What was asked for.
        image: String,
    },
    /// Bad `--creds`.
    #[error("invalid --creds: expected USER:PASSWORD")]
    Creds,
    /// JSON output failed.
    #[error("cannot encode JSON output")]
    Json(#[source] serde_json::Error),
    /// A config file is unreadable or maps to no CRI message.
    #[error(transparent)]
    Config(#[from] ConfigJsonError),
    /// No pod sandbox or container has this id or id prefix.
    #[error("no {what} with id or id prefix {id:?}")]
    NotFound {
        /// "container" or "pod sandbox".
        what: &'static str,
        /// What was asked for.
        id: String,
    },
    /// The id prefix matches more than one object.
    #[error("{what} id prefix {prefix:?} is ambiguous: matches {}", matches.join(", "))]
    Ambiguous {
        /// "container" or "pod sandbox".
        what: &'static str,
        /// What was asked for.
        prefix: String,
        /// Short ids of the matches.
        matches: Vec<String>,
    },
    /// A flag value is malformed.
    #[error("invalid {flag} {value:?}: {reason}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// Reading or writing a file (the container log) failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Several operations failed; each was reported on stderr.
    #[error("{failed} of {total} {what} failed")]
    Partial {
        /// How many failed.
        failed: usize,
        /// How many were attempted.
        total: usize,
        /// What the operation was ("removals").
        what: &'static str,
    },
    /// A blocking task did not complete.
    #[error(transparent)]
    Blocking(#[from] crate::blocking::JoinError),
    /// An exec/attach/port-forward session failed.
    #[error("{}", .0.full_message())]
    Stream(crate::streaming::StreamError),
}

/// `-o/--output` for list commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// crictl-style table
    Table,
    /// JSON (protobuf JSON field names)
    Json,
}

/// `-o/--output` for inspect commands (JSON only; the flag exists for crictl compatibility).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InspectOutput {
    /// JSON
    Json,
}

/// Arguments of `crust ctl`.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// CRI endpoint (unix:///path or /path)
    #[arg(short = 'r', long, env = "CONTAINER_RUNTIME_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// Timeout for connecting and for each request (e.g. 30s, 2m)
    #[arg(long, default_value = "2m", value_parser = duration::parse)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `crust ctl` subcommands (crictl names).
#[derive(Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// Runtime name and versions (Version)
    Version,
    /// Runtime conditions and config as JSON (Status, verbose)
    Info,
    /// Pull an image (PullImage)
    Pull {
        /// Registry credentials USER:PASSWORD
        #[arg(long, conflicts_with = "auth")]
        creds: Option<String>,
        /// Registry credentials as base64 of USER:PASSWORD
        #[arg(long)]
        auth: Option<String>,
        /// Image reference
        image: String,
    },
    /// List images (ListImages)
    Images {
        /// Only show image ids
        #[arg(short, long)]
        quiet: bool,
        /// Show digests
        #[arg(long)]
        digests: bool,
        /// Only this image
        image: Option<String>,
    },
    /// Image status as JSON (ImageStatus, verbose)
    Inspecti {
        /// Image references or ids
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images (RemoveImage)
    Rmi {
        /// Image references or ids
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Image file system usage as JSON (ImageFsInfo)
    Imagefsinfo,
    /// Run a pod sandbox from a JSON config (RunPodSandbox)
    Runp {
        /// Runtime handler (RuntimeClass) to run the pod with
        #[arg(long)]
        runtime: Option<String>,
        /// Pod sandbox config (crictl JSON)
        config: PathBuf,
    },
    /// Stop pod sandboxes (StopPodSandbox)
    Stopp {
        /// Pod ids or unique id prefixes
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove pod sandboxes (RemovePodSandbox)
    Rmp {
        /// Stop the pod first if it is ready
        #[arg(short, long)]
        force: bool,
        /// Remove every pod sandbox
        #[arg(short, long, conflicts_with = "pods")]
        all: bool,
        /// Pod ids or unique id prefixes
        #[arg(required_unless_present = "all")]
        pods: Vec<String>,
    },
    /// List pod sandboxes (ListPodSandbox)
    Pods(pods::ListArgs),
    /// Pod sandbox status and info as JSON (PodSandboxStatus, verbose)
    Inspectp {
        /// Output format
        #[arg(short, long, value_enum, default_value = "json")]
        output: InspectOutput,
        /// Pod ids or unique id prefixes
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Create a container in a pod (CreateContainer)
    Create(containers::CreateArgs),
    /// Start created containers (StartContainer)
    Start {
        /// Container ids or unique id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop running containers (StopContainer)
    Stop {
        /// Seconds to wait after the stop signal before killing
        #[arg(short = 't', long = "timeout", default_value_t = 10)]
        grace: i64,
        /// Container ids or unique id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers (RemoveContainer)
    Rm {
        /// Stop running containers first
        #[arg(short, long)]
        force: bool,
        /// Remove every container
        #[arg(short, long, conflicts_with = "containers")]
        all: bool,
        /// Container ids or unique id prefixes
        #[arg(required_unless_present = "all")]
        containers: Vec<String>,
    },
    /// List containers (ListContainers)
    Ps(containers::ListArgs),
    /// Container status and info as JSON (ContainerStatus, verbose)
    Inspect {
        /// Output format
        #[arg(short, long, value_enum, default_value = "json")]
        output: InspectOutput,
        /// Container ids or unique id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Print a container's log (reads the CRI log file named by ContainerStatus)
    Logs(logs::LogsArgs),
    /// Container resource usage (ListContainerStats)
    Stats(stats::StatsArgs),
    /// Run a command in a running container (Exec + streaming)
    Exec(stream::ExecArgs),
    /// Attach to a running container's stdio (Attach + streaming)
    Attach(stream::AttachArgs),
    /// Forward local ports to a pod (PortForward + streaming)
    PortForward(stream::PortForwardArgs),
}

/// The socket path of a unix endpoint.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, CtlError> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(CtlError::Endpoint {
            endpoint: endpoint.to_owned(),
        })
    }
}

/// A gRPC channel over the unix socket of `endpoint`.
pub async fn channel(endpoint: &str, timeout: Duration) -> Result<Channel, CtlError> {
    let path = socket_path(endpoint)?;
    // The URI is required by tonic but unused: the connector ignores it.
    let ep = Endpoint::from_static("http://localhost").connect_timeout(timeout);
    let connect = ep.connect_with_connector(tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move {
            tokio::net::UnixStream::connect(path)
                .await
                .map(TokioIo::new)
        }
    }));
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(ch)) => Ok(ch),
        Ok(Err(source)) => Err(CtlError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        }),
        Err(_) => Err(CtlError::Timeout {
            what: "connect",
            after: timeout,
        }),
    }
}

/// Connect both CRI clients to `endpoint` (unix socket), with a 30 s connect timeout.
pub async fn connect(
    endpoint: &str,
) -> Result<(RuntimeServiceClient<Channel>, ImageServiceClient<Channel>), CtlError> {
    let ch = channel(endpoint, Duration::from_secs(30)).await?;
    Ok(clients(ch))
}

fn clients(ch: Channel) -> (RuntimeServiceClient<Channel>, ImageServiceClient<Channel>) {
    (
        RuntimeServiceClient::new(ch.clone()).max_decoding_message_size(MAX_MSG_SIZE),
        ImageServiceClient::new(ch).max_decoding_message_size(MAX_MSG_SIZE),
    )
}

/// Run an RPC future with the timeout, mapping errors.
pub(crate) async fn call<T>(
    rpc: &'static str,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CtlError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(CtlError::Rpc {
            rpc,
            code: s.code(),
            message: s.message().to_owned(),
        }),
        Err(_) => Err(CtlError::Timeout {
            what: rpc,
            after: timeout,
        }),
    }
}

pub(crate) fn print_json(v: &serde_json::Value) -> Result<(), CtlError> {
    let s = serde_json::to_string_pretty(v).map_err(CtlError::Json)?;
    println!("{s}");
    Ok(())
}

/// Verbose `info` maps hold JSON strings: embed them as JSON when they parse.
pub(crate) fn info_json(
    info: &std::collections::HashMap<String, String>,
    into: &mut serde_json::Map<String, serde_json::Value>,
) {
    let mut keys: Vec<_> = info.keys().collect();
    keys.sort();
    for k in keys {
        let v = &info[k];
        let value =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone()));
        into.insert(k.clone(), value);
    }
}

/// Run `crust ctl`.
pub async fn run(args: CtlArgs) -> Result<(), CtlError> {
    let ch = channel(&args.endpoint, args.timeout).await?;
    let (mut rt, mut img) = clients(ch);
    let t = args.timeout;
    match args.command {
        CtlCommand::Version => {
            let v = call("Version", t, rt.version(cri::VersionRequest::default())).await?;
            println!("Version:  {}", v.version);
            println!("RuntimeName:  {}", v.runtime_name);
            println!("RuntimeVersion:  {}", v.runtime_version);
            println!("RuntimeApiVersion:  {}", v.runtime_api_version);
            Ok(())
        }
        CtlCommand::Info => {
            let req = cri::StatusRequest { verbose: true };
            let s = call("Status", t, rt.status(req)).await?;
            let mut out = serde_json::Map::new();
            out.insert(
                "status".to_owned(),
                serde_json::to_value(&s.status).map_err(CtlError::Json)?,
            );
            info_json(&s.info, &mut out);
            print_json(&serde_json::Value::Object(out))
        }
        CtlCommand::Pull { creds, auth, image } => {
            images::pull(&mut img, t, creds, auth, image).await
        }
        CtlCommand::Images {
            quiet,
            digests,
            image,
        } => images::list(&mut img, t, quiet, digests, image).await,
        CtlCommand::Inspecti { images } => images::inspect(&mut img, t, images).await,
        CtlCommand::Rmi { images } => images::remove(&mut img, t, images).await,
        CtlCommand::Imagefsinfo => {
            let r = call(
                "ImageFsInfo",
                t,
                img.image_fs_info(cri::ImageFsInfoRequest {}),
            )
            .await?;
            print_json(&serde_json::to_value(&r).map_err(CtlError::Json)?)
        }
        CtlCommand::Runp { runtime, config } => pods::run(&mut rt, t, &config, runtime).await,
        CtlCommand::Stopp { pods } => pods::stop(&mut rt, t, &pods).await,
        CtlCommand::Rmp { force, all, pods } => pods::remove(&mut rt, t, &pods, force, all).await,
        CtlCommand::Pods(a) => pods::list(&mut rt, t, &a).await,
        CtlCommand::Inspectp { output: _, pods } => pods::inspect(&mut rt, t, &pods).await,
        CtlCommand::Create(a) => containers::create(&mut rt, &mut img, t, &a).await,
        CtlCommand::Start { containers } => containers::start(&mut rt, t, &containers).await,
        CtlCommand::Stop { grace, containers } => {
            containers::stop(&mut rt, t, grace, &containers).await
        }
        CtlCommand::Rm {
            force,
            all,
            containers,
        } => containers::remove(&mut rt, t, &containers, force, all).await,
        CtlCommand::Ps(a) => containers::list(&mut rt, t, &a).await,
        CtlCommand::Inspect {
            output: _,
            containers,
        } => containers::inspect(&mut rt, t, &containers).await,
        CtlCommand::Logs(a) => logs::logs(&mut rt, t, &a).await,
        CtlCommand::Stats(a) => stats::stats(&mut rt, t, &a).await,
        CtlCommand::Exec(a) => stream::exec(&mut rt, t, &a).await,
        CtlCommand::Attach(a) => stream::attach(&mut rt, t, &a).await,
        CtlCommand::PortForward(a) => stream::port_forward(&mut rt, t, &a).await,
    }
}

/// Parse repeated `--label key=value` flags into a CRI label selector.
pub(crate) fn label_selector(
    labels: &[String],
) -> Result<std::collections::HashMap<String, String>, CtlError> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(CtlError::Flag {
                flag: "--label",
                value: l.clone(),
                reason: "expected key=value",
            }),
        })
        .collect()
}

/// Outcome of a command over several ids. Like crictl it carries on after a failure; each
/// failure is printed on stderr and the command fails at the end. With a single id its error
/// is returned as it is.
pub(crate) struct Batch {
    total: usize,
    failed: usize,
    what: &'static str,
    only: Option<CtlError>,
}

impl Batch {
    pub(crate) fn new(total: usize, what: &'static str) -> Self {
        Batch {
            total,
            failed: 0,
            what,
            only: None,
        }
    }

    pub(crate) fn fail(&mut self, id: &str, e: CtlError) {
        self.failed += 1;
        if self.total == 1 {
            self.only = Some(e);
            return;
        }
        let mut msg = format!("crust ctl: {id}: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        eprintln!("{msg}");
    }

    pub(crate) fn finish(self) -> Result<(), CtlError> {
        match (self.only, self.failed) {
            (Some(e), _) => Err(e),
            (None, 0) => Ok(()),
            (None, failed) => Err(CtlError::Partial {
                failed,
                total: self.total,
                what: self.what,
            }),
        }
    }
}

/// Print config warnings (unknown keys) on stderr.
pub(crate) fn warn_unknown(file: &std::path::Path, warnings: &[String]) {
    for w in warnings {
        eprintln!(
            "crust ctl: warning: {}: unknown key `{w}` ignored",
            file.display()
        );
    }
}

/// Read and map a config file off the async threads.
pub(crate) async fn load_config<T: Send + 'static>(
    path: &std::path::Path,
    map: fn(&serde_json::Value) -> Result<Parsed<T>, ConfigJsonError>,
) -> Result<T, CtlError> {
    let p = path.to_owned();
    let parsed = crate::blocking::run("read config", move || {
        config_json::read_json(&p).and_then(|v| map(&v))
    })
    .await??;
    warn_unknown(path, &parsed.warnings);
    Ok(parsed.config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            socket_path("unix:///run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert_eq!(
            socket_path("/run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert!(socket_path("tcp://1.2.3.4:1").is_err());
        assert!(socket_path("x.sock").is_err());
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        ctl: CtlArgs,
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::{CommandFactory, Parser};
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["x", "stop", "-t", "3", "abc"]).unwrap();
        assert!(matches!(c.ctl.command, CtlCommand::Stop { grace: 3, .. }));
        assert_eq!(c.ctl.timeout, Duration::from_secs(120));
        let c = Cli::try_parse_from(["x", "--timeout", "5s", "rm", "-f", "a", "b"]).unwrap();
        assert!(
            matches!(c.ctl.command, CtlCommand::Rm { force: true, all: false, ref containers } if containers.len() == 2)
        );
        assert!(Cli::try_parse_from(["x", "rm"]).is_err());
        assert!(Cli::try_parse_from(["x", "rmp", "-a"]).is_ok());
        assert!(Cli::try_parse_from(["x", "rmp", "-a", "p"]).is_err());
        let c =
            Cli::try_parse_from(["x", "create", "--no-pull", "pod", "c.json", "p.json"]).unwrap();
        assert!(matches!(c.ctl.command, CtlCommand::Create(ref a) if a.no_pull && a.pod == "pod"));
        let c = Cli::try_parse_from(["x", "logs", "-f", "--tail", "5", "ctr"]).unwrap();
        assert!(matches!(c.ctl.command, CtlCommand::Logs(ref a) if a.follow && a.tail == Some(5)));
        assert!(Cli::try_parse_from(["x", "inspect", "-o", "json", "c"]).is_ok());
        assert!(Cli::try_parse_from(["x", "inspectp", "-o", "yaml", "c"]).is_err());
        assert!(Cli::try_parse_from(["x", "stats", "-a", "--pod", "p"]).is_ok());
    }

    #[test]
    fn label_flags() {
        let m = label_selector(&["a=b".to_owned(), "c=".to_owned()]).unwrap();
        assert_eq!((m["a"].as_str(), m["c"].as_str()), ("b", ""));
        assert!(label_selector(&["=x".to_owned()]).is_err());
        assert!(Batch::new(3, "x").finish().is_ok());
        let mut b = Batch::new(3, "container removals");
        b.fail("a", CtlError::Creds);
        assert_eq!(
            b.finish().unwrap_err().to_string(),
            "1 of 3 container removals failed"
        );
        let mut b = Batch::new(1, "container removals");
        b.fail("a", CtlError::Creds);
        assert!(matches!(b.finish(), Err(CtlError::Creds)));
    }
}
