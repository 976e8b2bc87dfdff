//! A throw-away `docker-registry` (distribution 2.8) per test, plus a tiny blocking HTTP/1.1
//! client speaking the Docker Registry HTTP API V2 (blob upload, manifest push).
//!
//! A hand-rolled client keeps the harness free of TLS/crypto-provider set-up and lets tests
//! push deliberately inconsistent images (e.g. configs whose diff ids lie).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running registry; killed and reaped on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub host: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// CPU time (user + system, from `/proc/<pid>/stat`) of process `pid` in milliseconds; 0
/// when it cannot be read. Clock ticks are taken as 100 Hz (`USER_HZ` on Linux).
pub fn process_cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `comm` (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    (ticks(11) + ticks(12)) * 10.0
}

/// A free TCP port on 127.0.0.1 (racy by nature; callers retry on bind failure).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Registry {
    /// Start a registry on a free port and wait until `GET /v2/` answers 200.
    pub fn start() -> Result<Self> {
        if !Path::new(REGISTRY_BIN).exists() {
            bail!("{REGISTRY_BIN} is missing: run `make test-deps` (scripts/install-test-deps.sh)");
        }
        let mut last_err = None;
        for _ in 0..5 {
            match Self::try_start() {
                Ok(r) => return Ok(r),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("registry did not start")))
    }

    fn try_start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("crust-registry-")
            .tempdir()?;
        let port = free_port()?;
        let host = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
                dir.path().join("data").display()
            ),
        )?;
        let log = dir.path().join("registry.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("spawn {REGISTRY_BIN}"))?;
        let mut reg = Registry {
            child,
            host,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = reg.request("GET", "/v2/", &[], &[])
                && r.status == 200
            {
                return Ok(reg);
            }
            if let Some(st) = reg.child.try_wait()? {
                bail!("registry exited with {st}: {}", reg.log_text());
            }
            if Instant::now() > deadline {
                bail!(
                    "registry did not answer GET /v2/ within 10s: {}",
                    reg.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// CPU time (user + system) the registry process has used so far, in milliseconds.
    pub fn cpu_ms(&self) -> f64 {
        process_cpu_ms(self.child.id())
    }

    /// The registry's combined access/error log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many `GET` requests fetched the blob `digest` (from the access log).
    pub fn blob_gets(&self, digest: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains(&format!("/blobs/{digest}")))
            .count()
    }

    /// One HTTP/1.1 request with `Connection: close`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse> {
        let mut s =
            TcpStream::connect(&self.host).with_context(|| format!("connect {}", self.host))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        HttpResponse::parse(&raw)
    }

    /// Upload a blob (skipped when the repository already has it). Returns its digest.
    pub fn push_blob(&self, repo: &str, data: &[u8]) -> Result<String> {
        let digest = super::image::sha256_digest(data);
        if self
            .request("HEAD", &format!("/v2/{repo}/blobs/{digest}"), &[], &[])?
            .status
            == 200
        {
            return Ok(digest);
        }
        let r = self.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[])?;
        if r.status != 202 {
            bail!(
                "start upload to {repo}: http {}: {}",
                r.status,
                r.body_text()
            );
        }
        let loc = r.header("location").context("upload has no Location")?;
        let loc = match loc.find("/v2/") {
            Some(i) => loc[i..].to_string(),
            None => loc.to_string(),
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self.request(
            "PUT",
            &format!("{loc}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            data,
        )?;
        if r.status != 201 {
            bail!(
                "upload blob {digest} to {repo}: http {}: {}",
                r.status,
                r.body_text()
            );
        }
        Ok(digest)
    }

    /// Put a manifest (or index) under `reference` (a tag or a digest). Returns its digest.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String> {
        let r = self.request(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            body,
        )?;
        if r.status != 201 {
            bail!(
                "push manifest {repo}:{reference}: http {}: {}",
                r.status,
                r.body_text()
            );
        }
        Ok(super::image::sha256_digest(body))
    }

    /// Delete a manifest by digest (used to simulate images vanishing from the registry).
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> Result<()> {
        let r = self.request(
            "DELETE",
            &format!("/v2/{repo}/manifests/{digest}"),
            &[],
            &[],
        )?;
        if r.status != 202 {
            bail!("delete manifest {repo}@{digest}: http {}", r.status);
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn parse(raw: &[u8]) -> Result<Self> {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("http response without header end")?;
        let head = String::from_utf8_lossy(&raw[..end]);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(Self {
            status,
            headers,
            body: raw[end + 4..].to_vec(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
