//! Helpers of the streaming end-to-end tests (tests/streaming.rs): a world whose image
//! has httpd and stty, exec/attach/port-forward sessions through `crust::ctl::stream`.

use std::time::Duration;

use anyhow::{Context as _, Result};
use crust::ctl::stream::forward::{SpdyForwarder, forward_ws};
use crust::ctl::stream::remote::{self, LocalIo, Transport};
use crust::streaming::protocol::TermSize;
use crust_proto::cri::{
    AttachRequest, ExecRequest, ImageSpec, PortForwardRequest, PullImageRequest,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

use super::Env;
use super::cri::{APPLETS, World};
use super::daemon::{Daemon, registries_conf};
use super::image::{Comp, ImageOpts, LayerBuilder, build_image, busybox_layer};
use super::registry::Registry;

/// A world whose image also has httpd, stty and a web page; streaming tokens live
/// `ttl` (set through a drop-in written before the daemon starts).
pub async fn world(ttl: &str) -> Result<World> {
    world_with(&format!("token_ttl = \"{ttl}\"\n")).await
}

/// [`world`] with `stream` as the body of the `[crust.stream]` drop-in.
pub async fn world_with(stream: &str) -> Result<World> {
    let registry = Registry::start()?;
    let tmp = tempfile::Builder::new().prefix("crust-e2e-").tempdir()?;
    let base = tmp.path().join("d");
    std::fs::create_dir_all(base.join("crust.conf.d"))?;
    std::fs::write(
        base.join("crust.conf.d/stream.toml"),
        format!("[crust.stream]\n{stream}"),
    )?;
    let daemon = Daemon::start(&base, &registries_conf(&registry.host, "")).await?;
    let env = Env {
        daemon,
        registry,
        tmp,
    };
    let mut l = LayerBuilder::new()
        .dir("bin")?
        .dir("proc")?
        .dir("sys")?
        .dir("dev")?
        .dir("www")?
        .file("www/index.html", b"hello from httpd\n", 0o644)?;
    for a in APPLETS.iter().chain(&["httpd", "stty", "wget"]) {
        l = l.symlink(&format!("bin/{a}"), "busybox")?;
    }
    let img = build_image(
        vec![busybox_layer()?, l.finish(Comp::Gzip)?],
        &ImageOpts::default(),
    )?;
    World::with_image(env, "e2e/stream", &img).await
}

/// Collects what a session writes.
pub struct Sink(DuplexStream);

impl Sink {
    pub fn new() -> (Sink, Box<dyn tokio::io::AsyncWrite + Send + Unpin>) {
        let (a, b) = tokio::io::duplex(1 << 20);
        (Sink(a), Box::new(b))
    }

    pub async fn text(mut self) -> String {
        let mut s = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.0.read_to_string(&mut s)).await;
        s
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Exec `cmd` through CRI and a client session.
pub async fn exec(
    w: &World,
    ctr: &str,
    cmd: &[&str],
    t: Transport,
    stdin: Option<&str>,
    tty: Option<TermSize>,
) -> Result<Run> {
    let url = w
        .rt()
        .await?
        .exec(ExecRequest {
            container_id: ctr.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty: tty.is_some(),
            stdin: stdin.is_some(),
            stdout: true,
            stderr: tty.is_none(),
        })
        .await?
        .into_inner()
        .url;
    let (out, out_w) = Sink::new();
    let (err, err_w) = Sink::new();
    let stdin_r = stdin.map(|text| {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let text = text.to_owned();
        tokio::spawn(async move {
            a.write_all(text.as_bytes()).await.unwrap();
            // Dropping `a` closes stdin.
        });
        Box::new(b) as Box<dyn tokio::io::AsyncRead + Send + Unpin>
    });
    let resize = tty.map(|size| {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.try_send(size).unwrap();
        std::mem::forget(tx);
        rx
    });
    let io = LocalIo {
        stdin: stdin_r,
        stdout: Some(out_w),
        stderr: tty.is_none().then_some(err_w),
        tty: tty.is_some(),
        resize,
    };
    let code = tokio::time::timeout(Duration::from_secs(60), remote::run(&url, t, io))
        .await
        .context("exec session timed out")??;
    Ok(Run {
        code,
        stdout: out.text().await,
        stderr: err.text().await,
    })
}

pub async fn running(
    w: &World,
    pod: &str,
    cmd: &[&str],
    f: impl FnOnce(&mut crust_proto::cri::ContainerConfig),
) -> Result<String> {
    let mut cfg = w.ctr_config("s", cmd);
    f(&mut cfg);
    w.run(pod, &cfg).await
}

pub async fn attach_url(w: &World, ctr: &str, stdin: bool) -> Result<String> {
    Ok(w.rt()
        .await?
        .attach(AttachRequest {
            container_id: ctr.into(),
            stdin,
            stdout: true,
            stderr: true,
            tty: false,
        })
        .await?
        .into_inner()
        .url)
}

pub async fn http_get(f: &SpdyForwarder, port: u16) -> Result<String> {
    let (mut local, remote_end) = tokio::io::duplex(1 << 16);
    let f = f.clone();
    let fwd = tokio::spawn(async move { f.forward(port, remote_end).await });
    local.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(20), local.read_to_string(&mut body)).await??;
    drop(local);
    tokio::time::timeout(Duration::from_secs(20), fwd).await???;
    Ok(body)
}

pub async fn http_get_ws(url: &str, port: u16) -> Result<String> {
    let (mut local, remote_end) = tokio::io::duplex(1 << 16);
    let url = url.to_owned();
    let fwd = tokio::spawn(async move { forward_ws(&url, port, remote_end).await });
    local.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(20), local.read_to_string(&mut body)).await??;
    drop(local);
    tokio::time::timeout(Duration::from_secs(20), fwd).await???;
    Ok(body)
}

pub async fn pf_url(w: &World, pod: &str, port: u16) -> Result<String> {
    Ok(w.rt()
        .await?
        .port_forward(PortForwardRequest {
            pod_sandbox_id: pod.into(),
            port: vec![i32::from(port)],
        })
        .await?
        .into_inner()
        .url)
}

/// A port free on the host right now (for the host-network httpd).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
