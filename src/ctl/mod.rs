//! `crust ctl`: crust's own CRI client, a small crictl.
//!
//! It speaks plain CRI v1 over a unix socket, so it works against containerd and CRI-O as
//! well; tests reuse [`connect`]. The endpoint comes from `-r/--endpoint`, else
//! `CONTAINER_RUNTIME_ENDPOINT` (crictl's variable), else crust's default socket.

mod images;

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
    }
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
}
