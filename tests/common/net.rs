//! Network helpers for the CNI tests and the network benchmark: a [`TestNet`] is one
//! throw-away CNI network (unique name `crt-<hex>`, bridge `crt<hex>`, a random free
//! `10.x.y.0/24`, its own config directory) whose `Drop` removes everything such a network
//! can leave on the machine even when a test fails: the bridge, veths on it, iptables
//! rules and chains mentioning the subnet or network name, and host-local's lease
//! directory `/var/lib/cni/networks/<name>`. [`net_world`] starts a [`World`] whose daemon
//! uses that network.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crust_proto::cri::{PodSandboxStatusRequest, StatusRequest};

use super::cri::World;
use super::daemon::Daemon;

/// Where Debian's containernetworking-plugins live.
pub const PLUGIN_DIR: &str = "/usr/lib/cni";
/// host-local's default lease store.
pub const HOST_LOCAL_DIR: &str = "/var/lib/cni/networks";

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    if rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).is_err() {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(7);
        return n ^ std::process::id();
    }
    u32::from_le_bytes(b)
}

/// `cmd args...` output (stdout) or an empty string when it fails.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The first global IPv4 address of the node (for host-port checks from the host).
pub fn node_ipv4() -> Option<String> {
    let out = sh("ip", &["-4", "-o", "route", "get", "1.1.1.1"]);
    let mut it = out.split_whitespace();
    while let Some(w) = it.next() {
        if w == "src" {
            return it.next().map(str::to_string);
        }
    }
    None
}

/// One test network.
pub struct TestNet {
    /// Network name (`crt-<hex>`), also in every iptables comment the plugins write.
    pub name: String,
    /// Bridge device (`crt<hex>`, 11 characters).
    pub bridge: String,
    /// `10.x.y.0/24`.
    pub subnet: String,
    /// `10.x.y.` (for matching addresses).
    pub prefix: String,
    /// Gateway `10.x.y.1`.
    pub gateway: String,
    /// `fd43:x:y::/64`, for dual-stack configs.
    pub subnet6: String,
    /// `fd43:x:y:` (for matching addresses).
    pub prefix6: String,
    /// The config directory the daemon is pointed at.
    pub conf_dir: PathBuf,
    tmp: tempfile::TempDir,
}

impl TestNet {
    /// A network with a subnet no interface on this machine uses; no config file yet.
    pub fn new() -> Result<Self> {
        let addrs = sh("ip", &["-4", "-o", "addr"]) + &sh("ip", &["-4", "route"]);
        let (hex, b, c) = loop {
            let r = random_u32();
            let b = 100 + (r >> 8) % 100;
            let c = r % 256;
            if !addrs.contains(&format!("10.{b}.{c}.")) {
                break (format!("{:08x}", random_u32()), b, c);
            }
        };
        let tmp = tempfile::Builder::new().prefix("crust-net-").tempdir()?;
        let conf_dir = tmp.path().join("net.d");
        std::fs::create_dir_all(&conf_dir)?;
        Ok(Self {
            name: format!("crt-{hex}"),
            bridge: format!("crt{hex}"),
            subnet: format!("10.{b}.{c}.0/24"),
            prefix: format!("10.{b}.{c}."),
            gateway: format!("10.{b}.{c}.1"),
            subnet6: format!("fd43:{b}:{c}::/64"),
            prefix6: format!("fd43:{b}:{c}:"),
            conf_dir,
            tmp,
        })
    }

    /// A temp directory that lives as long as the network (for extra plugin dirs).
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// The bridge plugin config (host-local IPAM on the test subnet).
    pub fn bridge_plugin(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "routes": [{"dst": "0.0.0.0/0"}],
                "ranges": [[{"subnet": self.subnet, "gateway": self.gateway}]]
            }
        })
    }

    /// The bridge plugin with an IPv4 and an IPv6 range (dual stack).
    pub fn dual_stack_bridge_plugin(&self) -> serde_json::Value {
        let mut b = self.bridge_plugin();
        b["ipam"]["ranges"] = serde_json::json!([
            [{"subnet": self.subnet, "gateway": self.gateway}],
            [{"subnet": self.subnet6}]
        ]);
        b["ipam"]["routes"] = serde_json::json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]);
        b
    }

    /// A list of `plugins` (full plugin objects) named after this network.
    pub fn list_of(&self, plugins: &[serde_json::Value]) -> String {
        serde_json::json!({"cniVersion": "1.0.0", "name": self.name, "plugins": plugins})
            .to_string()
    }

    /// The default chain crust ships (bridge + host-local + portmap + loopback) on the
    /// test's bridge and subnet, plus `extra` plugins.
    pub fn conflist(&self, extra: &[serde_json::Value]) -> String {
        let mut plugins = vec![
            self.bridge_plugin(),
            serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}}),
            serde_json::json!({"type": "loopback"}),
        ];
        plugins.extend(extra.iter().cloned());
        serde_json::json!({"cniVersion": "1.0.0", "name": self.name, "plugins": plugins})
            .to_string()
    }

    /// Write `content` as `<conf_dir>/<file>` (atomically: a watcher never sees half).
    pub fn install(&self, file: &str, content: &str) -> Result<()> {
        let tmp = self.conf_dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, content)?;
        std::fs::rename(&tmp, self.conf_dir.join(file))?;
        Ok(())
    }

    /// The `[crust.network]` drop-in pointing a daemon at this network's config dir.
    pub fn dropin(&self, plugin_dirs: &[&Path]) -> String {
        let mut dirs: Vec<String> = plugin_dirs
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        dirs.push(format!("{PLUGIN_DIR:?}"));
        format!(
            "[crust.network]\nnetwork_dir = {:?}\nplugin_dirs = [{}]\nplugin_timeout = \"30s\"\n",
            self.conf_dir.display().to_string(),
            dirs.join(", ")
        )
    }

    /// Host veths enslaved to the bridge.
    pub fn veths(&self) -> Vec<String> {
        sh("ip", &["-o", "link", "show", "master", &self.bridge])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    fn hit(&self, l: &str) -> bool {
        l.contains(&self.prefix) || l.contains(&self.prefix6) || l.contains(&self.name)
    }

    /// iptables and ip6tables lines (every table) mentioning the subnets or network.
    pub fn iptables_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for save in ["iptables-save", "ip6tables-save"] {
            out.extend(
                sh(save, &[])
                    .lines()
                    .filter(|l| self.hit(l))
                    .map(|l| format!("{save}: {l}")),
            );
        }
        out
    }

    /// host-local leases still held on this network.
    pub fn leases(&self) -> Vec<String> {
        std::fs::read_dir(Path::new(HOST_LOCAL_DIR).join(&self.name))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What pods of this network left behind (the bridge itself is not a leak: the
    /// bridge plugin never deletes it, like every runtime).
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.veths() {
            out.push(format!("veth on {}: {v}", self.bridge));
        }
        for l in self.iptables_lines() {
            out.push(format!("iptables: {l}"));
        }
        for l in self.leases() {
            out.push(format!("host-local lease: {l}"));
        }
        out
    }

    /// Remove everything this network may have left (idempotent).
    pub fn cleanup(&self) {
        for v in self.veths() {
            let _ = sh("ip", &["link", "del", &v]);
        }
        let _ = sh("ip", &["link", "del", &self.bridge]);
        for (save, restore) in [
            ("iptables-save", "iptables-restore"),
            ("ip6tables-save", "ip6tables-restore"),
        ] {
            remove_iptables(save, restore, |l| self.hit(l));
        }
        let _ = std::fs::remove_dir_all(Path::new(HOST_LOCAL_DIR).join(&self.name));
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Chains that portmap shares between all networks: never deleted by a test.
fn shared_chain(c: &str) -> bool {
    c.starts_with("CNI-HOSTPORT-") || !c.starts_with("CNI-")
}

/// Delete the iptables rules matching `hit` in every table, and the per-container CNI
/// chains they jump to (through `iptables-restore --noflush`, which parses the quoting
/// of `iptables-save` output).
pub fn remove_iptables(save_cmd: &str, restore_cmd: &str, hit: impl Fn(&str) -> bool) {
    let save = sh(save_cmd, &[]);
    let mut script = String::new();
    let mut table = String::new();
    let mut rules: Vec<(String, String)> = Vec::new();
    let mut chains: Vec<(String, String)> = Vec::new();
    for l in save.lines() {
        if let Some(t) = l.strip_prefix('*') {
            table = t.to_string();
            continue;
        }
        let Some(rest) = l.strip_prefix("-A ") else {
            continue;
        };
        if !hit(l) {
            continue;
        }
        let chain = rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if let Some(j) = rest.split(" -j ").nth(1)
            && let Some(target) = j.split_whitespace().next()
            && !shared_chain(target)
        {
            chains.push((table.clone(), target.to_string()));
        }
        if !shared_chain(&chain) {
            chains.push((table.clone(), chain.clone()));
        }
        rules.push((table.clone(), rest.to_string()));
    }
    chains.sort();
    chains.dedup();
    let tables: std::collections::BTreeSet<String> = rules
        .iter()
        .map(|(t, _)| t.clone())
        .chain(chains.iter().map(|(t, _)| t.clone()))
        .collect();
    for t in tables {
        script.push_str(&format!("*{t}\n"));
        for (_, r) in rules.iter().filter(|(rt, r)| {
            rt == &t
                && !chains
                    .iter()
                    .any(|(ct, c)| ct == &t && r.starts_with(&format!("{c} ")))
        }) {
            script.push_str(&format!("-D {r}\n"));
        }
        for (_, c) in chains.iter().filter(|(ct, _)| ct == &t) {
            script.push_str(&format!("-F {c}\n"));
        }
        for (_, c) in chains.iter().filter(|(ct, _)| ct == &t) {
            script.push_str(&format!("-X {c}\n"));
        }
        script.push_str("COMMIT\n");
    }
    if script.is_empty() {
        return;
    }
    let child = Command::new(restore_cmd)
        .arg("--noflush")
        .arg("-w")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut c) = child {
        if let Some(mut stdin) = c.stdin.take() {
            use std::io::Write as _;
            let _ = stdin.write_all(script.as_bytes());
        }
        let _ = c.wait();
    }
}

/// Point `d` at `net` (drop-in) and restart it so the config applies.
pub async fn use_network(d: &mut Daemon, net: &TestNet, plugin_dirs: &[&Path]) -> Result<()> {
    d.stop();
    std::fs::write(
        d.base.join("crust.conf.d").join("50-network.toml"),
        net.dropin(plugin_dirs),
    )?;
    d.spawn().await
}

/// A [`World`] (daemon + tools image) whose daemon uses `net`.
pub async fn net_world(net: &TestNet, plugin_dirs: &[&Path]) -> Result<World> {
    let mut w = World::new().await?;
    use_network(&mut w.env.daemon, net, plugin_dirs).await?;
    Ok(w)
}

/// `NetworkReady` (status, message) as `Status` reports it.
pub async fn network_ready(d: &Daemon) -> Result<(bool, String)> {
    let st = d
        .runtime()
        .await?
        .status(StatusRequest { verbose: false })
        .await?
        .into_inner();
    let c = st
        .status
        .context("no status")?
        .conditions
        .into_iter()
        .find(|c| c.r#type == "NetworkReady")
        .context("no NetworkReady condition")?;
    Ok((c.status, format!("{}: {}", c.reason, c.message)))
}

/// Wait until `NetworkReady` is `want` (the daemon re-reads the config dir on change).
pub async fn wait_network_ready(d: &Daemon, want: bool, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let (ready, msg) = network_ready(d).await?;
        if ready == want {
            return Ok(msg);
        }
        if Instant::now() > deadline {
            bail!("NetworkReady stayed {ready} ({msg}) for {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pod's IPs from `PodSandboxStatus.network` (primary first).
pub async fn pod_ips(d: &Daemon, pod: &str) -> Result<Vec<String>> {
    let st = d
        .runtime()
        .await?
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.into(),
            verbose: false,
        })
        .await?
        .into_inner()
        .status
        .context("no status")?;
    let net = st.network.unwrap_or_default();
    let mut ips = Vec::new();
    if !net.ip.is_empty() {
        ips.push(net.ip);
    }
    ips.extend(net.additional_ips.into_iter().map(|p| p.ip));
    Ok(ips)
}

/// HTTP GET `http://<addr>/` with a short timeout; the response body.
pub fn http_get(addr: &str) -> Result<String> {
    use std::io::{Read as _, Write as _};
    let sa: std::net::SocketAddr = addr.parse().with_context(|| format!("address {addr}"))?;
    let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(3))
        .with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// Retry `f` for up to `timeout` (servers in containers need a moment to listen).
pub fn retry<T>(timeout: Duration, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A UDP echo server bound to `0.0.0.0:port` inside the network namespace pinned at
/// `netns` (a thread of this process joins it), answering `n` datagrams.
pub fn udp_echo_in_netns(netns: &Path, port: u16, n: usize) -> Result<std::thread::JoinHandle<()>> {
    let f = std::fs::File::open(netns).with_context(|| format!("open {}", netns.display()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let bound = rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&f),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| anyhow::anyhow!("setns: {e}"))
        .and_then(|()| Ok(std::net::UdpSocket::bind(("0.0.0.0", port))?));
        let sock = match bound {
            Ok(s) => {
                let _ = tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let _ = sock.set_read_timeout(Some(Duration::from_secs(20)));
        let mut buf = [0u8; 512];
        for _ in 0..n {
            let Ok((len, from)) = sock.recv_from(&mut buf) else {
                return;
            };
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..len]);
            let _ = sock.send_to(&reply, from);
        }
    });
    rx.recv().context("udp echo thread")??;
    Ok(h)
}

/// Send `msg` over UDP to `addr` and return the reply.
pub fn udp_roundtrip(addr: &str, msg: &str) -> Result<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    s.send_to(msg.as_bytes(), addr)?;
    let mut buf = [0u8; 512];
    let (len, _) = s
        .recv_from(&mut buf)
        .with_context(|| format!("no reply from {addr}"))?;
    Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
}
