//! End-to-end tests of Exec, Attach and PortForward through the real daemon, real runc
//! and the streaming server, driven by crust's own clients (`crust::ctl::stream`,
//! written independently from the server) over SPDY and WebSocket, by the `crust ctl`
//! binary, and by Python's `websockets` (tests/interop/ws_exec.py).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use common::stream::*;
use common::*;
use crust::ctl::stream::forward::{SpdyForwarder, forward_ws};
use crust::ctl::stream::remote::{self, LocalIo, Transport};
use crust::streaming::protocol::TermSize;
use crust_proto::cri::{AttachRequest, ExecRequest, NamespaceMode, PortForwardRequest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TRANSPORTS: [Transport; 2] = [Transport::Spdy, Transport::Websocket];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_spdy_and_websocket() -> Result<()> {
    let w = world("1m").await?;
    let pod = w.run_pod(&w.pod_config("exec")).await?;
    let ctr = running(&w, &pod, &["sleep", "3600"], |_| {}).await?;
    for t in TRANSPORTS {
        let r = exec(&w, &ctr, &["echo", "hello"], t, None, None).await?;
        assert_eq!((r.code, r.stdout.as_str()), (0, "hello\n"), "{t:?}");
        let r = exec(
            &w,
            &ctr,
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            t,
            None,
            None,
        )
        .await?;
        assert_eq!(
            (r.code, r.stdout.as_str(), r.stderr.as_str()),
            (3, "out\n", "err\n"),
            "{t:?}"
        );
        let r = exec(&w, &ctr, &["sh", "-c", "kill -9 $$"], t, None, None).await?;
        assert_eq!(r.code, 137, "{t:?}");
        let r = exec(&w, &ctr, &["cat"], t, Some("ping\npong\n"), None).await?;
        assert_eq!((r.code, r.stdout.as_str()), (0, "ping\npong\n"), "{t:?}");
        let size = TermSize {
            width: 100,
            height: 30,
        };
        let r = exec(
            &w,
            &ctr,
            &["sh", "-c", "sleep 1; stty size; [ -t 1 ]"],
            t,
            None,
            Some(size),
        )
        .await?;
        assert_eq!(r.code, 0, "{t:?}: {}", r.stdout);
        assert!(r.stdout.contains("30 100"), "{t:?}: {:?}", r.stdout);
    }
    // Older SPDY protocols (text errors, no exit code in the status) and base64 WebSocket.
    let url_for = |cmd: &[&str]| {
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        let ctr = ctr.clone();
        let w = &w;
        async move {
            Ok::<_, anyhow::Error>(
                w.rt()
                    .await?
                    .exec(ExecRequest {
                        container_id: ctr,
                        cmd,
                        stdout: true,
                        ..Default::default()
                    })
                    .await?
                    .into_inner()
                    .url,
            )
        }
    };
    let out_only = || {
        let (sink, w) = Sink::new();
        let io = LocalIo {
            stdin: None,
            stdout: Some(w),
            stderr: None,
            tty: false,
            resize: None,
        };
        (sink, io)
    };
    for proto in ["v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"] {
        let (sink, io) = out_only();
        let url = url_for(&["echo", "old"]).await?;
        assert_eq!(
            remote::run_spdy_with(&url, &[proto], io).await?,
            0,
            "{proto}"
        );
        assert_eq!(sink.text().await, "old\n", "{proto}");
        let (_sink, io) = out_only();
        let url = url_for(&["sh", "-c", "exit 3"]).await?;
        let e = remote::run_spdy_with(&url, &[proto], io).await.unwrap_err();
        assert!(e.to_string().contains("exit code 3"), "{proto}: {e}");
    }
    let (sink, io) = out_only();
    let url = url_for(&["echo", "b64"]).await?;
    assert_eq!(
        remote::run_ws_with(&url, &["v4.base64.channel.k8s.io"], io).await?,
        0
    );
    assert_eq!(sink.text().await, "b64\n");
    // Interop: Python's websockets library, v5 (close signal) and v4.
    let interop = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ws_exec.py");
    for proto in ["v5.channel.k8s.io", "v4.channel.k8s.io"] {
        let url = w
            .rt()
            .await?
            .exec(ExecRequest {
                container_id: ctr.clone(),
                cmd: vec!["sh".into(), "-c".into(), "cat; echo bye >&2; exit 7".into()],
                stdin: proto.starts_with("v5"),
                stdout: true,
                stderr: true,
                tty: false,
            })
            .await?
            .into_inner()
            .url;
        let out = tokio::process::Command::new("/usr/bin/python3")
            .arg(&interop)
            .arg(&url)
            .arg(proto)
            .arg("from-python\n")
            .output()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(text.trim())?;
        assert_eq!(v["protocol"], proto);
        if proto.starts_with("v5") {
            assert_eq!(v["stdout"], "from-python\n");
        }
        assert_eq!(v["stderr"], "bye\n");
        assert_eq!(v["status"]["status"], "Failure", "{v}");
        assert_eq!(v["status"]["reason"], "NonZeroExitCode");
        assert_eq!(v["status"]["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["status"]["details"]["causes"][0]["message"], "7");
    }
    // The `crust ctl` binary, both transports, exit code propagation.
    for tr in ["spdy", "websocket"] {
        let (ok, out, err) =
            w.env
                .daemon
                .ctl(&["exec", "--transport", tr, &ctr, "--", "echo", "via-ctl"])?;
        assert!(ok, "{err}");
        assert_eq!(out, "via-ctl\n");
        let st = std::process::Command::new(common::daemon::crust_bin())
            .args([
                "ctl",
                "--endpoint",
                &format!("unix://{}", w.env.daemon.sock.display()),
            ])
            .args(["exec", "--transport", tr, &ctr, "--", "sh", "-c", "exit 3"])
            .stdin(std::process::Stdio::null())
            .status()?;
        assert_eq!(st.code(), Some(3));
    }
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_validation_and_tokens() -> Result<()> {
    let w = world("2s").await?;
    let pod = w.run_pod(&w.pod_config("val")).await?;
    let ctr = running(&w, &pod, &["sleep", "3600"], |_| {}).await?;
    let mut rt = w.rt().await?;
    let req = |id: &str, stdin, stdout, stderr, tty| ExecRequest {
        container_id: id.into(),
        cmd: vec!["true".into()],
        stdin,
        stdout,
        stderr,
        tty,
    };
    let code = |r: Result<tonic::Response<_>, tonic::Status>| {
        r.map(|_: tonic::Response<crust_proto::cri::ExecResponse>| ())
            .unwrap_err()
            .code()
    };
    assert_eq!(
        code(rt.exec(req(&ctr, false, false, false, false)).await),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        code(rt.exec(req(&ctr, false, true, true, true)).await),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        code(rt.exec(req("nope", false, true, false, false)).await),
        tonic::Code::NotFound
    );
    let done = running(&w, &pod, &["true"], |_| {}).await?;
    w.wait_exit(&done).await?;
    assert_eq!(
        code(rt.exec(req(&done, false, true, false, false)).await),
        tonic::Code::FailedPrecondition
    );
    let e = rt
        .attach(AttachRequest {
            container_id: done.clone(),
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    // Token reuse, unknown and expired tokens: 404 with a clear body.
    let url = rt
        .exec(req(&ctr, false, true, false, false))
        .await?
        .into_inner()
        .url;
    let io = || LocalIo {
        stdin: None,
        stdout: Some(Box::new(tokio::io::sink())),
        stderr: None,
        tty: false,
        resize: None,
    };
    assert_eq!(remote::run(&url, Transport::Spdy, io()).await?, 0);
    let e = remote::run(&url, Transport::Spdy, io())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("404") && e.contains("already used"), "{e}");
    let e = remote::run(&url, Transport::Websocket, io())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("404"), "{e}");
    let bogus = format!("{}/exec/bogus", url.rsplit_once("/exec/").unwrap().0);
    let e = remote::run(&bogus, Transport::Spdy, io())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("404") && e.contains("unknown"), "{e}");
    let url = rt
        .exec(req(&ctr, false, true, false, false))
        .await?
        .into_inner()
        .url;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let e = remote::run(&url, Transport::Spdy, io())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("404") && e.contains("expired"), "{e}");
    // Port-forward to a pod that is not ready.
    let stopped = w.run_pod(&w.pod_config("stopped")).await?;
    rt.stop_pod_sandbox(crust_proto::cri::StopPodSandboxRequest {
        pod_sandbox_id: stopped.clone(),
    })
    .await?;
    let e = rt
        .port_forward(PortForwardRequest {
            pod_sandbox_id: stopped,
            port: vec![80],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_two_attachers_and_stdin() -> Result<()> {
    let w = world("1m").await?;
    let pod = w.run_pod(&w.pod_config("attach")).await?;
    let ticker = running(
        &w,
        &pod,
        &[
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ],
        |_| {},
    )
    .await?;
    // Two attachers at once, one per transport; each sees live output.
    let mut sessions = Vec::new();
    let mut sinks = Vec::new();
    for t in TRANSPORTS {
        let url = attach_url(&w, &ticker, false).await?;
        let (a, b) = tokio::io::duplex(1 << 20);
        sinks.push(a);
        let io = LocalIo {
            stdin: None,
            stdout: Some(Box::new(b)),
            stderr: Some(Box::new(tokio::io::sink())),
            tty: false,
            resize: None,
        };
        sessions.push(tokio::spawn(async move { remote::run(&url, t, io).await }));
    }
    for s in &mut sinks {
        let mut buf = vec![0u8; 64];
        let mut got = String::new();
        while !got.contains("tick") {
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await??;
            assert!(n > 0, "attach output ended early");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    // Stopping the container ends both sessions with Success.
    w.stop(&ticker, 0).await?;
    for s in sessions {
        let code = tokio::time::timeout(Duration::from_secs(20), s).await???;
        assert_eq!(code, 0);
    }
    // Attach with stdin to a `sh` reading commands; closing stdin ends it (stdin_once).
    for t in TRANSPORTS {
        let sh = running(&w, &pod, &["sh"], |c| {
            c.stdin = true;
            c.stdin_once = true;
        })
        .await?;
        let url = attach_url(&w, &sh, true).await?;
        let (mut input, stdin) = tokio::io::duplex(1024);
        let (mut out, out_w) = tokio::io::duplex(1 << 16);
        let io = LocalIo {
            stdin: Some(Box::new(stdin)),
            stdout: Some(Box::new(out_w)),
            stderr: Some(Box::new(tokio::io::sink())),
            tty: false,
            resize: None,
        };
        let session = tokio::spawn(async move { remote::run(&url, t, io).await });
        input.write_all(b"echo attached-$((40+2))\n").await?;
        let mut got = String::new();
        let mut buf = vec![0u8; 256];
        while !got.contains("attached-42") {
            let n = tokio::time::timeout(Duration::from_secs(10), out.read(&mut buf)).await??;
            if n == 0 {
                bail!("{t:?}: output ended: {got:?}");
            }
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        drop(input);
        let code = tokio::time::timeout(Duration::from_secs(20), session).await???;
        assert_eq!(code, 0, "{t:?}");
        let st = w.wait_exit(&sh).await?;
        assert_eq!(st.exit_code, 0, "{t:?}: sh ends on stdin EOF");
    }
    // A tty container: attach -i -t, resize, and the shell sees the new size.
    let tty_sh = running(&w, &pod, &["sh"], |c| {
        c.stdin = true;
        c.tty = true;
    })
    .await?;
    let url = w
        .rt()
        .await?
        .attach(AttachRequest {
            container_id: tty_sh.clone(),
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        })
        .await?
        .into_inner()
        .url;
    let (mut input, stdin) = tokio::io::duplex(1024);
    let (mut out, out_w) = tokio::io::duplex(1 << 16);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(TermSize {
        width: 70,
        height: 20,
    })
    .await?;
    let io = LocalIo {
        stdin: Some(Box::new(stdin)),
        stdout: Some(Box::new(out_w)),
        stderr: None,
        tty: true,
        resize: Some(rx),
    };
    let session = tokio::spawn(async move { remote::run(&url, Transport::Spdy, io).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    input.write_all(b"stty size\n").await?;
    let mut got = String::new();
    let mut buf = vec![0u8; 256];
    while !got.contains("20 70") {
        let n = tokio::time::timeout(Duration::from_secs(10), out.read(&mut buf)).await??;
        if n == 0 {
            bail!("tty attach output ended: {got:?}");
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    input.write_all(b"exit\n").await?;
    let code = tokio::time::timeout(Duration::from_secs(20), session).await???;
    assert_eq!(code, 0);
    drop(tx);
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_to_httpd() -> Result<()> {
    let w = world("1m").await?;
    let pod = w.run_pod(&w.pod_config("pf")).await?;
    running(
        &w,
        &pod,
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
        |_| {},
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SPDY: one session, a page, a closed port that fails alone, 20 connections at once.
    let f = SpdyForwarder::connect(&pf_url(&w, &pod, 8080).await?).await?;
    let body = http_get(&f, 8080).await?;
    assert!(body.contains("hello from httpd"), "{body}");
    let (_keep, remote_end) = tokio::io::duplex(1024);
    let e = f.forward(9999, remote_end).await.unwrap_err().to_string();
    assert!(e.contains("error forwarding port 9999"), "{e}");
    let many: Vec<_> = (0..20)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move { http_get(&f, 8080).await })
        })
        .collect();
    for h in many {
        assert!(h.await??.contains("hello from httpd"));
    }
    f.close().await;
    // WebSocket: a page, and a closed port reported on the error channel.
    let body = http_get_ws(&pf_url(&w, &pod, 8080).await?, 8080).await?;
    assert!(body.contains("hello from httpd"), "{body}");
    let (_keep, remote_end) = tokio::io::duplex(1024);
    let e = forward_ws(&pf_url(&w, &pod, 9999).await?, 9999, remote_end)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("error forwarding port 9999"), "{e}");
    // 20 WebSocket sessions at once.
    let mut many = Vec::new();
    for _ in 0..20 {
        let url = pf_url(&w, &pod, 8080).await?;
        many.push(tokio::spawn(async move { http_get_ws(&url, 8080).await }));
    }
    for h in many {
        assert!(h.await??.contains("hello from httpd"));
    }
    // The `crust ctl port-forward` binary, both transports (WebSocket: one URL per
    // connection), two connections each.
    for tr in ["spdy", "websocket"] {
        let mut child = tokio::process::Command::new(common::daemon::crust_bin())
            .args([
                "ctl",
                "--endpoint",
                &format!("unix://{}", w.env.daemon.sock.display()),
            ])
            .args(["port-forward", "--transport", tr, &pod, "0:8080"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?);
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line),
        )
        .await??;
        let addr = line
            .split_whitespace()
            .nth(2)
            .with_context(|| format!("no address in {line:?}"))?
            .to_owned();
        for _ in 0..2 {
            let mut c = tokio::net::TcpStream::connect(&addr).await?;
            c.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
            let mut body = String::new();
            tokio::time::timeout(Duration::from_secs(20), c.read_to_string(&mut body)).await??;
            assert!(body.contains("hello from httpd"), "{tr}: {body}");
        }
        child.kill().await?;
    }
    // Host-network pod: the dial happens in the host namespace.
    let mut host_cfg = w.pod_config("pfhost");
    pod_sc(&mut host_cfg).namespace_options = Some(ns_options(
        NamespaceMode::Node,
        NamespaceMode::Container,
        NamespaceMode::Pod,
    ));
    let host_pod = w.run_pod(&host_cfg).await?;
    let port = free_port()?;
    let p = port.to_string();
    running(
        &w,
        &host_pod,
        &["httpd", "-f", "-p", &p, "-h", "/www"],
        |_| {},
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let f = SpdyForwarder::connect(&pf_url(&w, &host_pod, port).await?).await?;
    let body = http_get(&f, port).await?;
    assert!(body.contains("hello from httpd"), "{body}");
    f.close().await;
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_tls() -> Result<()> {
    let certs = tempfile::tempdir()?;
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()?;
    assert!(st.success(), "openssl req failed");
    let w = world_with(&format!(
        "tls_cert = {:?}\ntls_key = {:?}\nstream_idle_timeout = \"2s\"\n",
        cert.display().to_string(),
        key.display().to_string()
    ))
    .await?;
    let pod = w.run_pod(&w.pod_config("tls")).await?;
    let ctr = running(&w, &pod, &["sleep", "3600"], |_| {}).await?;
    for t in TRANSPORTS {
        let r = exec(&w, &ctr, &["echo", "secure"], t, None, None).await?;
        assert_eq!((r.code, r.stdout.as_str()), (0, "secure\n"), "{t:?}");
    }
    let url = w
        .rt()
        .await?
        .exec(ExecRequest {
            container_id: ctr.clone(),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .url;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    // stream_idle_timeout: a silent session is closed, a chatty one is not.
    let started = std::time::Instant::now();
    let r = exec(&w, &ctr, &["sleep", "30"], Transport::Spdy, None, None).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "idle session not closed"
    );
    assert!(
        r.is_err() || r.is_ok_and(|r| r.code != 0),
        "idle session must not succeed"
    );
    let r = exec(
        &w,
        &ctr,
        &["sh", "-c", "for i in 1 2 3 4; do echo $i; sleep 1; done"],
        Transport::Websocket,
        None,
        None,
    )
    .await?;
    assert_eq!((r.code, r.stdout.as_str()), (0, "1\n2\n3\n4\n"));
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}
