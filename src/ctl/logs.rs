//! `crust ctl logs`: print a container's log from the file its `ContainerStatus.log_path`
//! names, like `crictl logs` does (it reads the file directly too, so it only works on the
//! node running the container).
//!
//! The file is in the CRI log format (kubelet `pkg/kubelet/kuberuntime/logs`):
//! `<RFC3339Nano> <stdout|stderr> <tags> <content>\n`, where the first `:`-separated tag is
//! `F` (the line is complete) or `P` (partial: the content continues in the next record of
//! the same stream). Content goes to our stdout or stderr according to the stream; partial
//! records are joined before printing so `--tail` counts real lines.

use std::io::{SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crust_proto::cri;
use crust_proto::cri::runtime_service_client::RuntimeServiceClient;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tonic::transport::Channel;

use super::CtlError;

type Client = RuntimeServiceClient<Channel>;

/// How often `-f` looks for new data, and how often it asks whether the container still runs.
const POLL: Duration = Duration::from_millis(200);
const STATUS_EVERY: u32 = 5;

/// `logs` flags (crictl's).
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow the log until the container exits
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines
    #[arg(long)]
    pub tail: Option<usize>,
    /// Container id or unique id prefix
    pub container: String,
}

/// Which output a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout
    Stdout,
    /// stderr
    Stderr,
}

/// Incremental CRI log parser: feed bytes, get complete lines (content plus `\n`).
#[derive(Debug, Default)]
pub struct LogParser {
    /// Bytes of a record not yet ended by `\n`.
    pending: Vec<u8>,
    /// Joined `P` content per stream (0 = stdout, 1 = stderr).
    partial: [Vec<u8>; 2],
}

fn idx(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl LogParser {
    /// Parse what `data` completes; returns finished lines in order.
    pub fn feed(&mut self, data: &[u8]) -> Vec<(Stream, Vec<u8>)> {
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            let record = self.pending[start..end].to_vec();
            self.record(&record, &mut out);
            start = end + 1;
        }
        self.pending.drain(..start);
        out
    }

    fn record(&mut self, rec: &[u8], out: &mut Vec<(Stream, Vec<u8>)>) {
        let mut parts = rec.splitn(4, |&b| b == b' ');
        let _time = parts.next();
        let stream = match parts.next() {
            Some(b"stdout") => Some(Stream::Stdout),
            Some(b"stderr") => Some(Stream::Stderr),
            _ => None,
        };
        let tag = parts.next().and_then(|t| t.split(|&b| b == b':').next());
        let content = parts.next().unwrap_or_default();
        match (stream, tag) {
            (Some(s), Some(b"P")) => self.partial[idx(s)].extend_from_slice(content),
            (Some(s), Some(b"F")) => {
                let mut line = std::mem::take(&mut self.partial[idx(s)]);
                line.extend_from_slice(content);
                line.push(b'\n');
                out.push((s, line));
            }
            // Not a CRI record: show it as it is rather than lose it.
            _ => {
                let mut line = rec.to_vec();
                line.push(b'\n');
                out.push((Stream::Stdout, line));
            }
        }
    }

    /// At the end of the log: what is left unterminated (partial content, printed as is).
    pub fn finish(&mut self) -> Vec<(Stream, Vec<u8>)> {
        let mut out = Vec::new();
        if !self.pending.is_empty() {
            let rec = std::mem::take(&mut self.pending);
            self.record(&rec, &mut out);
        }
        for s in [Stream::Stdout, Stream::Stderr] {
            let p = std::mem::take(&mut self.partial[idx(s)]);
            if !p.is_empty() {
                out.push((s, p));
            }
        }
        out
    }
}

/// Keep the last `n` lines (`None` = all).
pub fn tail(mut lines: Vec<(Stream, Vec<u8>)>, n: Option<usize>) -> Vec<(Stream, Vec<u8>)> {
    if let Some(n) = n {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    lines
}

fn emit(lines: &[(Stream, Vec<u8>)]) -> Result<(), CtlError> {
    let io = |source| CtlError::Io {
        op: "write",
        path: PathBuf::from("<stdout>"),
        source,
    };
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for (s, l) in lines {
        match s {
            Stream::Stdout => out.write_all(l).map_err(io)?,
            Stream::Stderr => {
                out.flush().map_err(io)?;
                err.write_all(l).map_err(io)?;
            }
        }
    }
    out.flush().map_err(io)?;
    err.flush().map_err(io)
}

async fn open(path: &Path) -> Result<(tokio::fs::File, u64), CtlError> {
    let f = tokio::fs::File::open(path)
        .await
        .map_err(|source| CtlError::Io {
            op: "open log file",
            path: path.to_owned(),
            source,
        })?;
    let ino = f
        .metadata()
        .await
        .map_err(|source| CtlError::Io {
            op: "stat log file",
            path: path.to_owned(),
            source,
        })?
        .ino();
    Ok((f, ino))
}

async fn read_more(f: &mut tokio::fs::File, path: &Path) -> Result<Vec<u8>, CtlError> {
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .await
        .map_err(|source| CtlError::Io {
            op: "read log file",
            path: path.to_owned(),
            source,
        })?;
    Ok(buf)
}

async fn running(c: &mut Client, t: Duration, id: &str) -> Result<bool, CtlError> {
    let r = super::containers::status(c, t, id, false).await?;
    Ok(r.status
        .is_some_and(|s| s.state == cri::ContainerState::ContainerRunning as i32))
}

/// `logs [-f] [--tail N] ID`.
pub async fn logs(c: &mut Client, t: Duration, a: &LogsArgs) -> Result<(), CtlError> {
    let id = super::containers::resolve(c, t, &a.container).await?;
    let st = super::containers::status(c, t, &id, false).await?;
    let path = PathBuf::from(st.status.map(|s| s.log_path).unwrap_or_default());
    if path.as_os_str().is_empty() {
        return Err(CtlError::Flag {
            flag: "logs",
            value: id,
            reason: "the container has no log path",
        });
    }
    let (mut f, mut ino) = open(&path).await?;
    let mut parser = LogParser::default();
    let first = read_more(&mut f, &path).await?;
    let mut pos = first.len() as u64;
    emit(&tail(parser.feed(&first), a.tail))?;
    if !a.follow {
        return emit(&parser.finish());
    }
    // Ask at the first empty poll: an exited container's log ends right away.
    let mut polls = STATUS_EVERY - 1;
    loop {
        tokio::time::sleep(POLL).await;
        let more = read_more(&mut f, &path).await?;
        if !more.is_empty() {
            pos += more.len() as u64;
            emit(&parser.feed(&more))?;
            continue;
        }
        // Rotated (renamed away and recreated by ReopenContainerLog) or truncated: restart
        // from the beginning of the new file.
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.ino() != ino || m.len() < pos => {
                let (nf, ni) = open(&path).await?;
                f = nf;
                ino = ni;
                pos = 0;
                f.seek(SeekFrom::Start(0))
                    .await
                    .map_err(|source| CtlError::Io {
                        op: "seek log file",
                        path: path.clone(),
                        source,
                    })?;
                continue;
            }
            _ => {}
        }
        polls += 1;
        if polls.is_multiple_of(STATUS_EVERY) && !running(c, t, &id).await? {
            // One last read: the monitor may have written the final lines meanwhile.
            let more = read_more(&mut f, &path).await?;
            emit(&parser.feed(&more))?;
            return emit(&parser.finish());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn text(lines: &[(Stream, Vec<u8>)]) -> Vec<(Stream, String)> {
        lines
            .iter()
            .map(|(s, l)| (*s, String::from_utf8(l.clone()).unwrap()))
            .collect()
    }

    #[test]
    fn parses_full_and_partial_records_per_stream() {
        let mut p = LogParser::default();
        let log = "2024-01-01T00:00:00.1Z stdout P hel\n\
                   2024-01-01T00:00:00.2Z stderr F oops\n\
                   2024-01-01T00:00:00.3Z stdout F lo world\n\
                   2024-01-01T00:00:00.4Z stdout F \n\
                   2024-01-01T00:00:00.5Z stdout F:x a b  c\n";
        let got = text(&p.feed(log.as_bytes()));
        assert_eq!(
            got,
            vec![
                (Stream::Stderr, "oops\n".to_owned()),
                (Stream::Stdout, "hello world\n".to_owned()),
                (Stream::Stdout, "\n".to_owned()),
                (Stream::Stdout, "a b  c\n".to_owned()),
            ]
        );
        assert!(p.finish().is_empty());
    }

    #[test]
    fn records_split_across_reads_and_unterminated_tail() {
        let mut p = LogParser::default();
        assert!(p.feed(b"2024-01-01T00:00:00Z std").is_empty());
        let got = text(&p.feed(b"out F one\n2024-01-01T00:00:00Z stdout P tw"));
        assert_eq!(got, vec![(Stream::Stdout, "one\n".to_owned())]);
        let got = text(&p.finish());
        assert_eq!(got, vec![(Stream::Stdout, "tw".to_owned())]);
    }

    #[test]
    fn garbage_is_passed_through() {
        let mut p = LogParser::default();
        let got = text(&p.feed(b"not a cri line\n"));
        assert_eq!(got, vec![(Stream::Stdout, "not a cri line\n".to_owned())]);
    }

    #[test]
    fn tail_keeps_last_lines() {
        let lines: Vec<_> = (0..5)
            .map(|i| (Stream::Stdout, format!("{i}\n").into_bytes()))
            .collect();
        assert_eq!(tail(lines.clone(), None).len(), 5);
        let t = text(&tail(lines.clone(), Some(2)));
        assert_eq!(t[0].1, "3\n");
        assert_eq!(tail(lines.clone(), Some(0)).len(), 0);
        assert_eq!(tail(lines, Some(9)).len(), 5);
    }
}
