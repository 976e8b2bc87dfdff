//! End-to-end tests of pod networking through CNI with Debian's containernetworking-plugins
//! (`/usr/lib/cni`): pod IPs in PodSandboxStatus, pod-to-pod and host-to-pod traffic, a
//! busybox httpd reached on its pod IP and on host ports (all addresses and a specific
//! host IP, TCP and UDP), DNS settings, hostname and /etc/hosts in containers; broken and
//! failing configs (clear errors, nothing left behind); NetworkReady following the config
//! directory without a restart; host-network pods without any CNI config; and `kill -9` of
//! the daemon (after ADD, and in the middle of one) followed by a restart and StopPodSandbox
//! releasing veths, IP leases, iptables rules and namespaces.
//!
//! Every test uses its own [`TestNet`] (bridge `crt<hex>`, random `10.x.y.0/24`, network
//! `crt-<hex>`), removed by its `Drop` even when the test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use common::net::*;
use common::*;
use crust_proto::cri::{
    NamespaceMode, PortMapping, Protocol, RemovePodSandboxRequest, RunPodSandboxRequest,
    StopPodSandboxRequest,
};
use tonic::Code;

const HTTPD: &str = "mkdir -p /tmp/www && echo hello-crust > /tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www";

fn netns_of(w: &World, pod: &str) -> PathBuf {
    w.env.daemon.runroot().join("pods").join(pod).join("ns/net")
}

fn cache_files(w: &World) -> Vec<String> {
    std::fs::read_dir(w.env.daemon.root.join("cni"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn pod_dirs(w: &World) -> Vec<String> {
    std::fs::read_dir(w.env.daemon.runroot().join("pods"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn stop_pod(w: &World, id: &str) -> Result<()> {
    w.rt()
        .await?
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .with_context(|| format!("StopPodSandbox {id}"))?;
    Ok(())
}

async fn remove_pod(w: &World, id: &str) -> Result<()> {
    w.rt()
        .await?
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .with_context(|| format!("RemovePodSandbox {id}"))?;
    Ok(())
}

fn port(protocol: Protocol, container_port: i32, host_port: u16, host_ip: &str) -> PortMapping {
    PortMapping {
        protocol: protocol as i32,
        container_port,
        host_port: i32::from(host_port),
        host_ip: host_ip.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_ips_reach_each_other_and_serve_on_host_ports() -> Result<()> {
    let net = TestNet::new()?;
    net.install("10-test.conflist", &net.conflist(&[]))?;
    let w = net_world(&net, &[]).await?;
    let msg = wait_network_ready(&w.env.daemon, true, Duration::from_secs(5)).await?;
    assert!(msg.starts_with(':'), "{msg}");
    let node_ip = node_ipv4().context("node IPv4 address")?;
    let (hp_all, hp_ip, hp_udp) = (
        registry::free_port()?,
        registry::free_port()?,
        registry::free_port()?,
    );

    let mut a_cfg = w.pod_config("web");
    a_cfg.dns_config = Some(dns_config());
    a_cfg.port_mappings = vec![
        port(Protocol::Tcp, 8080, hp_all, ""),
        port(Protocol::Tcp, 8080, hp_ip, &node_ip),
        port(Protocol::Udp, 9999, hp_udp, "0.0.0.0"),
        // No host port: informational only, no rule.
        port(Protocol::Tcp, 7000, 0, ""),
    ];
    let a = w.run_pod(&a_cfg).await?;
    let a_ips = pod_ips(&w.env.daemon, &a).await?;
    assert_eq!(a_ips.len(), 1, "{a_ips:?}");
    let a_ip = a_ips[0].clone();
    assert!(
        a_ip.starts_with(&net.prefix),
        "{a_ip} not in {}",
        net.subnet
    );
    assert_eq!(net.veths().len(), 1, "one veth on {}", net.bridge);

    // What the container sees: its address, DNS settings, hostname, /etc/hosts.
    let (st, out) = w
        .run_to_exit(
            &a,
            &w.ctr_config(
                "look",
                &[
                    "sh",
                    "-c",
                    "busybox ip -4 -o addr show eth0; echo ---; cat /etc/resolv.conf; echo ---; hostname; echo ---; cat /etc/hosts",
                ],
            ),
        )
        .await?;
    assert_eq!(st.exit_code, 0, "{out}");
    let parts: Vec<&str> = out.split("---").collect();
    assert!(parts[0].contains(&format!("inet {a_ip}/24")), "{out}");
    assert!(parts[1].contains("nameserver 10.96.0.10"), "{out}");
    assert!(parts[1].contains("nameserver 10.96.0.11"), "{out}");
    assert!(
        parts[1].contains("search e2e.svc.cluster.local cluster.local"),
        "{out}"
    );
    assert!(parts[1].contains("options ndots:5"), "{out}");
    assert_eq!(parts[2].trim(), "e2e-host", "{out}");
    assert!(parts[3].contains(&format!("{a_ip}\te2e-host")), "{out}");
    assert!(parts[3].contains("127.0.0.1\tlocalhost"), "{out}");

    let httpd = w.ctr_config("httpd", &["sh", "-c", HTTPD]);
    w.run(&a, &httpd).await?;
    // From the host: the pod IP and the host ports.
    let body = retry(Duration::from_secs(10), || {
        http_get(&format!("{a_ip}:8080"))
    })?;
    assert_eq!(body.trim(), "hello-crust");
    let body = retry(Duration::from_secs(5), || {
        http_get(&format!("{node_ip}:{hp_all}"))
    })?;
    assert_eq!(body.trim(), "hello-crust", "host port on 0.0.0.0");
    let body = retry(Duration::from_secs(5), || {
        http_get(&format!("{node_ip}:{hp_ip}"))
    })?;
    assert_eq!(body.trim(), "hello-crust", "host port on {node_ip}");
    assert!(
        http_get(&format!("127.0.0.1:{hp_ip}")).is_err(),
        "a host port bound to {node_ip} must not answer on 127.0.0.1"
    );
    // UDP host port, served inside the pod's network namespace.
    let echo = udp_echo_in_netns(&netns_of(&w, &a), 9999, 1)?;
    let reply = retry(Duration::from_secs(5), || {
        udp_roundtrip(&format!("{node_ip}:{hp_udp}"), "ping")
    })?;
    assert_eq!(reply, "echo:ping");
    let _ = echo.join();

    // A second pod reaches the first by IP.
    let b_cfg = w.pod_config("client");
    let b = w.run_pod(&b_cfg).await?;
    let b_ip = pod_ips(&w.env.daemon, &b).await?[0].clone();
    assert_ne!(a_ip, b_ip);
    assert!(b_ip.starts_with(&net.prefix), "{b_ip}");
    let (st, out) = w
        .run_to_exit(
            &b,
            &w.ctr_config(
                "fetch",
                &[
                    "sh",
                    "-c",
                    // busybox-static's wget crashes in glibc's static NSS lookup of the
                    // "http" service; nc speaks plain HTTP/1.0 just as well.
                    &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 {a_ip} 8080"),
                ],
            ),
        )
        .await?;
    assert_eq!(st.exit_code, 0, "{out}");
    assert!(
        out.contains("200 OK") && out.contains("hello-crust"),
        "{out}"
    );
    assert_eq!(net.leases().len(), 2, "{:?}", net.leases());
    assert!(!net.iptables_lines().is_empty());

    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    let left = net.leftovers();
    assert!(left.is_empty(), "network leftovers: {left:#?}");
    assert!(cache_files(&w).is_empty(), "{:?}", cache_files(&w));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_failing_configs_give_clear_errors_and_leave_nothing() -> Result<()> {
    let net = TestNet::new()?;
    let w = net_world(&net, &[]).await?;
    let (ready, msg) = network_ready(&w.env.daemon).await?;
    assert!(!ready);
    assert!(
        msg.starts_with("NetworkPluginNotReady") && msg.contains("no CNI configuration file"),
        "{msg}"
    );

    // Not JSON: NetworkReady says why; RunPodSandbox fails before touching anything.
    net.install("10-broken.conflist", "{ this is not json")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let msg = loop {
        let (ready, msg) = network_ready(&w.env.daemon).await?;
        assert!(!ready);
        if msg.contains("10-broken.conflist") || std::time::Instant::now() > deadline {
            break msg;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(msg.contains("10-broken.conflist: invalid JSON"), "{msg}");
    let e = w
        .rt()
        .await?
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(w.pod_config("broken")),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("10-broken.conflist"),
        "{}",
        e.message()
    );
    assert!(pod_dirs(&w).is_empty(), "{:?}", pod_dirs(&w));

    // Valid JSON whose chain fails in ADD after bridge and host-local did their work.
    std::fs::remove_file(net.conf_dir.join("10-broken.conflist"))?;
    let failing = net.conflist(&[serde_json::json!({
        "type": "tuning",
        "sysctl": {"net.ipv4.conf.eth0.crust_no_such_sysctl": "1"}
    })]);
    net.install("20-net.conflist", &failing)?;
    wait_network_ready(&w.env.daemon, true, Duration::from_secs(5)).await?;
    let e = w
        .rt()
        .await?
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(w.pod_config("failing")),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        e.message().contains(&format!(
            "network {}: plugin tuning failed on ADD",
            net.name
        )) && e.message().contains("crust_no_such_sysctl"),
        "{}",
        e.message()
    );
    assert!(pod_dirs(&w).is_empty(), "{:?}", pod_dirs(&w));
    assert!(cache_files(&w).is_empty(), "{:?}", cache_files(&w));
    let left = net.leftovers();
    assert!(left.is_empty(), "a failed ADD left: {left:#?}");
    assert!(leftovers::mounts_below(&w.env.daemon.base).is_empty());

    // Fixing the file is picked up without a restart.
    net.install("20-net.conflist", &net.conflist(&[]))?;
    let mut ip = Vec::new();
    for _ in 0..30 {
        if let Ok(id) = w.run_pod(&w.pod_config("fixed")).await {
            ip = pod_ips(&w.env.daemon, &id).await?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ip.first().is_some_and(|i| i.starts_with(&net.prefix)),
        "{ip:?}"
    );
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    assert!(net.leftovers().is_empty(), "{:#?}", net.leftovers());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_restart_then_stop_releases_veths_leases_rules_and_netns() -> Result<()> {
    let net = TestNet::new()?;
    net.install("10-test.conflist", &net.conflist(&[]))?;
    let mut w = net_world(&net, &[]).await?;
    let mut a_cfg = w.pod_config("kill-a");
    a_cfg.port_mappings = vec![port(Protocol::Tcp, 8080, registry::free_port()?, "")];
    let a = w.run_pod(&a_cfg).await?;
    let b = w.run_pod(&w.pod_config("kill-b")).await?;
    w.run(&a, &w.ctr_config("httpd", &["sh", "-c", HTTPD]))
        .await?;
    let a_ips = pod_ips(&w.env.daemon, &a).await?;
    let b_ips = pod_ips(&w.env.daemon, &b).await?;
    assert_eq!(net.veths().len(), 2);
    assert_eq!(net.leases().len(), 2);

    w.env.daemon.kill9();
    w.env.daemon.spawn().await.context("restart")?;
    wait_network_ready(&w.env.daemon, true, Duration::from_secs(5)).await?;
    assert_eq!(pod_ips(&w.env.daemon, &a).await?, a_ips);
    assert_eq!(pod_ips(&w.env.daemon, &b).await?, b_ips);
    // The pods kept their network across the restart.
    let body = retry(Duration::from_secs(10), || {
        http_get(&format!("{}:8080", a_ips[0]))
    })?;
    assert_eq!(body.trim(), "hello-crust");
    assert_eq!(cache_files(&w).len(), 2, "{:?}", cache_files(&w));

    for id in [&a, &b] {
        stop_pod(&w, id).await?;
        // Idempotent.
        stop_pod(&w, id).await?;
    }
    let left = net.leftovers();
    assert!(left.is_empty(), "after StopPodSandbox: {left:#?}");
    assert!(cache_files(&w).is_empty(), "{:?}", cache_files(&w));
    for id in [&a, &b] {
        assert!(!netns_of(&w, id).exists(), "netns pin of {id} left");
        remove_pod(&w, id).await?;
    }
    assert!(leftovers::mounts_below(&w.env.daemon.base).is_empty());
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_add_is_collected_at_restart() -> Result<()> {
    let net = TestNet::new()?;
    let bin = net.tmp().join("bin");
    std::fs::create_dir_all(&bin)?;
    let marker = net.tmp().join("slow.pid");
    // Records its pid (kept by exec), then hangs in ADD; DEL succeeds silently.
    let script = format!(
        "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then echo $$ > {m}.tmp; mv {m}.tmp {m}; exec sleep 60; fi\n",
        m = marker.display()
    );
    std::fs::write(bin.join("crust-test-slow"), script)?;
    std::fs::set_permissions(
        bin.join("crust-test-slow"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    net.install(
        "10-test.conflist",
        &net.conflist(&[serde_json::json!({"type": "crust-test-slow"})]),
    )?;
    let mut w = net_world(&net, &[&bin]).await?;
    wait_network_ready(&w.env.daemon, true, Duration::from_secs(5)).await?;
    let mut rt = w.rt().await?;
    let cfg = w.pod_config("crash");
    let call = tokio::spawn(async move {
        rt.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(cfg),
            runtime_handler: String::new(),
        })
        .await
    });
    let pid: i32 = retry(Duration::from_secs(20), || {
        Ok(std::fs::read_to_string(&marker)?.trim().parse()?)
    })?;
    assert_eq!(net.veths().len(), 1, "bridge ran before the hang");
    assert_eq!(net.leases().len(), 1);
    assert_eq!(cache_files(&w).len(), 1, "an `adding` record exists");
    w.env.daemon.kill9();
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
    let _ = call.await;
    w.env.daemon.spawn().await.context("restart")?;
    let left = net.leftovers();
    assert!(left.is_empty(), "after restart GC: {left:#?}");
    assert!(cache_files(&w).is_empty(), "{:?}", cache_files(&w));
    assert!(pod_dirs(&w).is_empty(), "{:?}", pod_dirs(&w));
    assert!(leftovers::mounts_below(&w.env.daemon.base).is_empty());
    let log = w.env.daemon.log_text();
    assert!(
        log.contains("releasing the network attachment of an unknown pod"),
        "{log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_pods_run_without_cni_and_ready_follows_the_directory() -> Result<()> {
    let net = TestNet::new()?;
    let w = net_world(&net, &[]).await?;
    let (ready, _) = network_ready(&w.env.daemon).await?;
    assert!(!ready);

    // Host network: the node's network, hostname and /etc/hosts; no CNI involved.
    let mut h_cfg = w.pod_config("hostnet");
    pod_sc(&mut h_cfg).namespace_options = Some(ns_options(
        NamespaceMode::Node,
        NamespaceMode::Container,
        NamespaceMode::Pod,
    ));
    let h = w.run_pod(&h_cfg).await?;
    assert!(pod_ips(&w.env.daemon, &h).await?.is_empty());
    let (st, out) = w
        .run_to_exit(
            &h,
            &w.ctr_config(
                "host",
                &[
                    "sh",
                    "-c",
                    "hostname; echo ---; cat /etc/hosts; echo ---; busybox ip -o link",
                ],
            ),
        )
        .await?;
    assert_eq!(st.exit_code, 0, "{out}");
    let parts: Vec<&str> = out.split("---").collect();
    let node = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    assert_eq!(parts[0].trim(), node);
    let host_hosts = std::fs::read_to_string("/etc/hosts")?;
    assert_eq!(parts[1].trim(), host_hosts.trim());
    let host_link = sh("ip", &["-o", "link"]);
    let first_host_if = host_link
        .lines()
        .nth(1)
        .and_then(|l| l.split(": ").nth(1))
        .unwrap_or("eth0")
        .to_string();
    assert!(parts[2].contains(&first_host_if), "{out}");

    // A pod with its own namespace still runs (loopback only) while nothing is configured.
    let lo = w.run_pod(&w.pod_config("lo-only")).await?;
    assert!(pod_ips(&w.env.daemon, &lo).await?.is_empty());

    // A CNI DaemonSet drops its config in: ready without a restart, pods get IPs.
    net.install("10-test.conflist", &net.conflist(&[]))?;
    wait_network_ready(&w.env.daemon, true, Duration::from_secs(5)).await?;
    let p = w.run_pod(&w.pod_config("after")).await?;
    let ips = pod_ips(&w.env.daemon, &p).await?;
    assert!(ips[0].starts_with(&net.prefix), "{ips:?}");
    // And the config going away makes the node not ready again.
    std::fs::remove_file(net.conf_dir.join("10-test.conflist"))?;
    wait_network_ready(&w.env.daemon, false, Duration::from_secs(5)).await?;
    // The attached pod still stops cleanly from its cached config.
    stop_pod(&w, &p).await?;
    assert!(net.leftovers().is_empty(), "{:#?}", net.leftovers());
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_ips_and_bandwidth_annotations_reach_the_plugins() -> Result<()> {
    let net = TestNet::new()?;
    net.install(
        "10-test.conflist",
        &net.list_of(&[
            net.dual_stack_bridge_plugin(),
            serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}}),
            serde_json::json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}),
            serde_json::json!({"type": "loopback"}),
        ]),
    )?;
    let w = net_world(&net, &[]).await?;
    let ifbs_before = sh("ip", &["-o", "link", "show", "type", "ifb"]);

    // A malformed annotation is InvalidArgument before anything is set up.
    let mut bad = w.pod_config("bw-bad");
    bad.annotations
        .insert("kubernetes.io/ingress-bandwidth".into(), "lots".into());
    let e = w
        .rt()
        .await?
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(bad),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("kubernetes.io/ingress-bandwidth"),
        "{}",
        e.message()
    );
    assert!(pod_dirs(&w).is_empty());

    let mut cfg = w.pod_config("dual");
    cfg.annotations
        .insert("kubernetes.io/ingress-bandwidth".into(), "10M".into());
    cfg.annotations
        .insert("kubernetes.io/egress-bandwidth".into(), "20M".into());
    let pod = w.run_pod(&cfg).await?;
    let ips = pod_ips(&w.env.daemon, &pod).await?;
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert!(ips[0].starts_with(&net.prefix), "IPv4 first: {ips:?}");
    assert!(ips[1].starts_with(&net.prefix6), "then IPv6: {ips:?}");
    let (st, out) = w
        .run_to_exit(
            &pod,
            &w.ctr_config("addrs", &["busybox", "ip", "-o", "addr", "show", "eth0"]),
        )
        .await?;
    assert_eq!(st.exit_code, 0, "{out}");
    assert!(out.contains(&ips[0]) && out.contains(&ips[1]), "{out}");
    // The bandwidth plugin shaped both directions with the annotations' rates.
    let qdiscs = sh("tc", &["qdisc", "show"]);
    assert!(qdiscs.contains("rate 10Mbit"), "{qdiscs}");
    assert!(qdiscs.contains("rate 20Mbit"), "{qdiscs}");

    stop_pod(&w, &pod).await?;
    assert!(net.leftovers().is_empty(), "{:#?}", net.leftovers());
    assert_eq!(
        sh("ip", &["-o", "link", "show", "type", "ifb"])
            .lines()
            .count(),
        ifbs_before.lines().count(),
        "the bandwidth plugin's ifb device must go with the pod"
    );
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

/// Run one plugin directly (ADD/DEL) the way a runtime would.
fn run_plugin(
    cmd: &str,
    conf: &serde_json::Value,
    id: &str,
    netns: &str,
) -> Result<serde_json::Value> {
    use std::io::Write as _;
    let t = conf["type"].as_str().context("type")?;
    let mut child = std::process::Command::new(std::path::Path::new(PLUGIN_DIR).join(t))
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", PLUGIN_DIR)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(&serde_json::to_vec(conf)?)?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "{t} {cmd}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(serde_json::from_slice(&out.stdout).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_network_guard_removes_what_plugins_leave() -> Result<()> {
    let net = TestNet::new()?;
    let ns = format!("crtguard-{}", std::process::id());
    let st = std::process::Command::new("ip")
        .args(["netns", "add", &ns])
        .status()?;
    anyhow::ensure!(st.success(), "ip netns add");
    let netns = format!("/var/run/netns/{ns}");
    let id = format!("{:064x}", std::process::id());
    let res = (|| -> Result<()> {
        let mut bridge = net.bridge_plugin();
        bridge["name"] = serde_json::json!(net.name);
        bridge["cniVersion"] = serde_json::json!("1.0.0");
        let prev = run_plugin("ADD", &bridge, &id, &netns)?;
        let portmap = serde_json::json!({
            "type": "portmap", "name": net.name, "cniVersion": "1.0.0",
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 80, "protocol": "tcp"}]},
            "prevResult": prev,
        });
        run_plugin("ADD", &portmap, &id, &netns)?;
        anyhow::ensure!(!net.iptables_lines().is_empty(), "plugins wrote no rules");
        anyhow::ensure!(net.leases().len() == 1, "no lease");
        // A test that dies here, without DEL: the guard must clean up.
        net.cleanup();
        Ok(())
    })();
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &ns])
        .status();
    res?;
    assert!(net.leftovers().is_empty(), "{:#?}", net.leftovers());
    assert!(net.iptables_lines().is_empty());
    assert!(
        sh("ip", &["link", "show", &net.bridge]).is_empty(),
        "bridge left"
    );
    Ok(())
}
