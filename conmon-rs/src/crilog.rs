//! CRI container log writer.
//!
//! Format (kubelet `pkg/kubelet/kuberuntime/logs`, CRI-O/conmon behaviour): one record
//! per line, `<RFC3339Nano> <stdout|stderr> <F|P> <content>\n`. `F` ends a logical
//! line; `P` marks a chunk of a line that continues in the next record (a line
//! longer than [`MAX_LINE`], or the line in progress when the buffer fills). Text
//! left without a newline at end of stream is written as a final `F` record.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Longest content of one record; longer lines are split into `P` records.
/// 8 KiB per stream keeps the monitor's memory small (conmon uses a similar buffer).
pub const MAX_LINE: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("container log {path}: {op}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Which container stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Formats one CRI log record.
pub fn format_record(ts: &str, stream: Stream, partial: bool, content: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(ts.len() + content.len() + 12);
    v.extend_from_slice(ts.as_bytes());
    v.push(b' ');
    v.extend_from_slice(stream.name().as_bytes());
    v.extend_from_slice(if partial { b" P " } else { b" F " });
    v.extend_from_slice(content);
    v.push(b'\n');
    v
}

/// Splits a byte stream into CRI records, holding at most [`MAX_LINE`] bytes of an
/// unfinished line.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `data`; calls `emit(partial, content)` for each record.
    pub fn push(&mut self, mut data: &[u8], emit: &mut dyn FnMut(bool, &[u8])) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) if self.pending.len() + i <= MAX_LINE => {
                    if self.pending.is_empty() {
                        emit(false, &data[..i]);
                    } else {
                        self.pending.extend_from_slice(&data[..i]);
                        emit(false, &self.pending);
                        self.pending.clear();
                    }
                    data = &data[i + 1..];
                }
                _ => {
                    let room = MAX_LINE - self.pending.len();
                    let take = room.min(data.len());
                    self.pending.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.pending.len() == MAX_LINE {
                        emit(true, &self.pending);
                        self.pending.clear();
                    }
                }
            }
        }
        if self.pending.capacity() > MAX_LINE && self.pending.is_empty() {
            self.pending = Vec::new();
        }
    }

    /// End of stream: the unfinished line, if any, becomes an `F` record.
    pub fn finish(&mut self, emit: &mut dyn FnMut(bool, &[u8])) {
        if !self.pending.is_empty() {
            emit(false, &self.pending);
            self.pending = Vec::new();
        }
    }
}

/// The log file plus one splitter per stream.
#[derive(Debug)]
pub struct CriLog {
    path: PathBuf,
    file: File,
    out: LineSplitter,
    err: LineSplitter,
}

fn open(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::Io {
            path: path.to_owned(),
            op: "open",
            source,
        })
}

impl CriLog {
    pub fn open(path: &Path) -> Result<Self, LogError> {
        Ok(CriLog {
            path: path.to_owned(),
            file: open(path)?,
            out: LineSplitter::default(),
            err: LineSplitter::default(),
        })
    }

    /// ReopenContainerLog: the kubelet renamed the file; start a new one at the path.
    pub fn reopen(&mut self) -> Result<(), LogError> {
        self.file = open(&self.path)?;
        Ok(())
    }

    /// Writes `data` read from `stream`; all records of one call share a timestamp.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<(), LogError> {
        self.records(stream, |splitter, emit| splitter.push(data, emit))
    }

    /// End of `stream`: flush its unfinished line.
    pub fn finish(&mut self, stream: Stream) -> Result<(), LogError> {
        self.records(stream, |splitter, emit| splitter.finish(emit))
    }

    /// Runs `split` on `stream`'s splitter and appends every record it emits to the file,
    /// stopping at the first write error.
    fn records(
        &mut self,
        stream: Stream,
        split: impl FnOnce(&mut LineSplitter, &mut dyn FnMut(bool, &[u8])),
    ) -> Result<(), LogError> {
        let ts = crate::timefmt::now();
        let (splitter, file) = match stream {
            Stream::Stdout => (&mut self.out, &mut self.file),
            Stream::Stderr => (&mut self.err, &mut self.file),
        };
        let mut res = Ok(());
        split(splitter, &mut |p, c| {
            if res.is_ok() {
                res = file.write_all(&format_record(&ts, stream, p, c));
            }
        });
        res.map_err(|source| LogError::Io {
            path: self.path.clone(),
            op: "write",
            source,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(bool, Vec<u8>)> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut |p, d| out.push((p, d.to_vec())));
        }
        s.finish(&mut |p, d| out.push((p, d.to_vec())));
        out
    }

    #[test]
    fn record_format() {
        let r = format_record(
            "2026-11-23T08:17:00.123456789Z",
            Stream::Stdout,
            false,
            b"hi",
        );
        assert_eq!(r, b"2026-11-23T08:17:00.123456789Z stdout F hi\n");
        let r = format_record("T", Stream::Stderr, true, b"");
        assert_eq!(r, b"T stderr P \n");
    }

    #[test]
    fn full_lines_and_empty_lines() {
        assert_eq!(
            split(&[b"a\n\nb\n"]),
            vec![
                (false, b"a".to_vec()),
                (false, vec![]),
                (false, b"b".to_vec())
            ]
        );
    }

    #[test]
    fn line_across_reads_is_joined() {
        assert_eq!(
            split(&[b"hel", b"lo\nx"]),
            vec![(false, b"hello".to_vec()), (false, b"x".to_vec())]
        );
    }

    #[test]
    fn long_line_is_partial_then_full() {
        let long = vec![b'x'; MAX_LINE * 2 + 3];
        let mut data = long.clone();
        data.push(b'\n');
        let out = split(&[&data]);
        assert_eq!(out.len(), 3);
        assert!(out[0].0 && out[1].0 && !out[2].0);
        assert_eq!(out[0].1.len(), MAX_LINE);
        assert_eq!(out[2].1, b"xxx");
    }

    #[test]
    fn no_trailing_newline_at_eof_is_full() {
        assert_eq!(split(&[b"end"]), vec![(false, b"end".to_vec())]);
    }

    #[test]
    fn log_file_and_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.log");
        let mut l = CriLog::open(&p).unwrap();
        l.write(Stream::Stdout, b"one\ntw").unwrap();
        l.write(Stream::Stderr, b"err\n").unwrap();
        l.finish(Stream::Stdout).unwrap();
        std::fs::rename(&p, d.path().join("c.log.1")).unwrap();
        l.reopen().unwrap();
        l.write(Stream::Stdout, b"new\n").unwrap();
        let old = std::fs::read_to_string(d.path().join("c.log.1")).unwrap();
        let lines: Vec<&str> = old.lines().map(|l| &l[31..]).collect();
        assert_eq!(lines, ["stdout F one", "stderr F err", "stdout F tw"]);
        assert!(
            std::fs::read_to_string(&p)
                .unwrap()
                .ends_with(" stdout F new\n")
        );
    }
}
