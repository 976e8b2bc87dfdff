//! `crust ctl exec`, `attach` and `port-forward`: CRI `Exec`/`Attach`/`PortForward`,
//! then a client of the streaming protocols at the returned URL (SPDY by default like
//! crictl, `--transport websocket` optional). The clients ([`remote`], [`forward`])
//! are written from the Kubernetes protocol descriptions independently of the server,
//! so end-to-end tests exercise two implementations against each other.

pub mod connect;
pub mod forward;
pub mod remote;
pub mod term;

use std::time::Duration;

use crust_proto::cri;
use crust_proto::cri::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

pub use remote::{LocalIo, Transport};

use super::{CtlError, call};

/// `crust ctl exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Pass stdin to the process
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Streaming transport
    #[arg(long, value_enum, default_value = "spdy")]
    pub transport: Transport,
    /// Container id or unique id prefix
    pub container: String,
    /// Command and arguments (after `--`)
    #[arg(required = true, last = true)]
    pub cmd: Vec<String>,
}

/// `crust ctl attach`.
#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Pass stdin to the container
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// The container has a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Streaming transport
    #[arg(long, value_enum, default_value = "spdy")]
    pub transport: Transport,
    /// Container id or unique id prefix
    pub container: String,
}

/// `crust ctl port-forward`.
#[derive(Debug, clap::Args)]
pub struct PortForwardArgs {
    /// Streaming transport
    #[arg(long, value_enum, default_value = "spdy")]
    pub transport: Transport,
    /// Local address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
    /// Pod id or unique id prefix
    pub pod: String,
    /// Ports as [LOCAL:]REMOTE (LOCAL 0 or omitted: same as REMOTE; "0:REMOTE": any)
    #[arg(required = true)]
    pub ports: Vec<String>,
}

/// Local stdio for a session with these flags.
fn local_io(interactive: bool, tty: bool) -> LocalIo {
    LocalIo {
        stdin: interactive.then(|| Box::new(tokio::io::stdin()) as _),
        stdout: Some(Box::new(tokio::io::stdout())),
        stderr: (!tty).then(|| Box::new(tokio::io::stderr()) as _),
        tty,
        resize: tty.then(term::resizes),
    }
}

/// Run the session; exits the process with the remote exit code when it is not 0.
async fn session(
    url: &str,
    transport: Transport,
    interactive: bool,
    tty: bool,
) -> Result<(), CtlError> {
    let raw = if tty && interactive {
        term::RawMode::enable()
    } else {
        None
    };
    let r = remote::run(url, transport, local_io(interactive, tty)).await;
    drop(raw);
    match r {
        Ok(0) => Ok(()),
        Ok(code) => std::process::exit(code),
        Err(e) => Err(CtlError::Stream(e)),
    }
}

/// `crust ctl exec`.
pub async fn exec(
    rt: &mut RuntimeServiceClient<Channel>,
    t: Duration,
    a: &ExecArgs,
) -> Result<(), CtlError> {
    let req = cri::ExecRequest {
        container_id: a.container.clone(),
        cmd: a.cmd.clone(),
        tty: a.tty,
        stdin: a.interactive,
        stdout: true,
        stderr: !a.tty,
    };
    let url = call("Exec", t, rt.exec(req)).await?.url;
    session(&url, a.transport, a.interactive, a.tty).await
}

/// `crust ctl attach`.
pub async fn attach(
    rt: &mut RuntimeServiceClient<Channel>,
    t: Duration,
    a: &AttachArgs,
) -> Result<(), CtlError> {
    let req = cri::AttachRequest {
        container_id: a.container.clone(),
        stdin: a.interactive,
        tty: a.tty,
        stdout: true,
        stderr: !a.tty,
    };
    let url = call("Attach", t, rt.attach(req)).await?.url;
    session(&url, a.transport, a.interactive, a.tty).await
}

/// Parse `[LOCAL:]REMOTE`.
pub fn parse_port(spec: &str) -> Result<(u16, u16), CtlError> {
    let bad = |reason| CtlError::Flag {
        flag: "port",
        value: spec.to_owned(),
        reason,
    };
    let (local, remote) = match spec.split_once(':') {
        Some((l, r)) => (l, r),
        None => (spec, spec),
    };
    let remote: u16 = remote
        .parse()
        .map_err(|_| bad("REMOTE must be a port number"))?;
    if remote == 0 {
        return Err(bad("REMOTE must be between 1 and 65535"));
    }
    let local: u16 = if local.is_empty() {
        0
    } else {
        local
            .parse()
            .map_err(|_| bad("LOCAL must be a port number"))?
    };
    Ok((local, remote))
}

/// `crust ctl port-forward`: listen locally, forward every connection until Ctrl-C.
pub async fn port_forward(
    rt: &mut RuntimeServiceClient<Channel>,
    t: Duration,
    a: &PortForwardArgs,
) -> Result<(), CtlError> {
    let specs = a
        .ports
        .iter()
        .map(|p| parse_port(p))
        .collect::<Result<Vec<_>, _>>()?;
    let remotes: Vec<i32> = specs.iter().map(|(_, r)| i32::from(*r)).collect();
    let req = cri::PortForwardRequest {
        pod_sandbox_id: a.pod.clone(),
        port: remotes.clone(),
    };
    let url = call("PortForward", t, rt.port_forward(req.clone()))
        .await?
        .url;
    let spdy = match a.transport {
        Transport::Spdy => Some(
            forward::SpdyForwarder::connect(&url)
                .await
                .map_err(CtlError::Stream)?,
        ),
        Transport::Websocket => None,
    };
    let mut listeners = Vec::new();
    for (local, remote) in specs {
        let l = tokio::net::TcpListener::bind((a.address.as_str(), local))
            .await
            .map_err(|source| CtlError::Io {
                op: "listen on",
                path: format!("{}:{local}", a.address).into(),
                source,
            })?;
        let addr = l.local_addr().map_err(|source| CtlError::Io {
            op: "listen on",
            path: format!("{}:{local}", a.address).into(),
            source,
        })?;
        println!("Forwarding from {addr} -> {remote}");
        listeners.push((l, remote));
    }
    let (urls_tx, mut urls_rx) =
        tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<Option<String>>>(16);
    let mut accepts = Vec::new();
    for (l, remote) in listeners {
        let spdy = spdy.clone();
        let urls_tx = urls_tx.clone();
        accepts.push(tokio::spawn(async move {
            while let Ok((conn, peer)) = l.accept().await {
                eprintln!("Handling connection for {remote}");
                let spdy = spdy.clone();
                let urls_tx = urls_tx.clone();
                tokio::spawn(async move {
                    let r = match spdy {
                        Some(f) => f.forward(remote, conn).await,
                        None => {
                            let (tx, rx) = tokio::sync::oneshot::channel();
                            if urls_tx.send(tx).await.is_err() {
                                return;
                            }
                            match rx.await.ok().flatten() {
                                Some(url) => forward::forward_ws(&url, remote, conn).await,
                                None => return,
                            }
                        }
                    };
                    if let Err(e) = r {
                        eprintln!(
                            "error forwarding {peer} to port {remote}: {}",
                            e.full_message()
                        );
                    }
                });
            }
        }));
    }
    drop(urls_tx);
    // WebSocket sessions need a fresh URL (token) per connection.
    let mut first = Some(url);
    loop {
        tokio::select! {
            want = urls_rx.recv() => {
                let Some(reply) = want else { break };
                let url = match first.take() {
                    Some(u) => Some(u),
                    None => call("PortForward", t, rt.port_forward(req.clone())).await.ok().map(|r| r.url),
                };
                let _ = reply.send(url);
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    for a in accepts {
        a.abort();
    }
    if let Some(f) = spdy {
        f.close().await;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        assert_eq!(parse_port("8080").unwrap(), (8080, 8080));
        assert_eq!(parse_port("9000:80").unwrap(), (9000, 80));
        assert_eq!(parse_port(":80").unwrap(), (0, 80));
        assert!(parse_port("0").is_err());
        assert!(parse_port("x:80").is_err());
    }
}
