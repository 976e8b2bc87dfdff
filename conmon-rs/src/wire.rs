//! Hand-encoded protobuf for `proto/monitor/monitor.proto` plus the attach frames.
//!
//! The messages are a handful of varint and string fields, so a few dozen lines of
//! encoding replace the `prost` runtime in the monitor (smaller binary and RSS).
//! The bytes are exactly protobuf: tests decode them with the prost-generated types
//! from `crust_proto::monitor`.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("protobuf message truncated")]
    Truncated,
    #[error("protobuf varint too long")]
    Varint,
    #[error("protobuf field {field}: unsupported wire type {wire_type}")]
    WireType { field: u64, wire_type: u64 },
    #[error("request message has no known request field")]
    EmptyRequest,
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Returns (value, bytes used).
pub fn get_varint(b: &[u8]) -> Result<(u64, usize), WireError> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate() {
        if i >= 10 {
            return Err(WireError::Varint);
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(WireError::Truncated)
}

fn put_int(out: &mut Vec<u8>, field: u64, v: i64) {
    if v != 0 {
        put_varint(out, field << 3);
        put_varint(out, v as u64);
    }
}

fn put_bytes(out: &mut Vec<u8>, field: u64, v: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// Prefixes `msg` with its varint length (prost `encode_length_delimited`).
pub fn length_delimited(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 5);
    put_varint(&mut out, msg.len() as u64);
    out.extend_from_slice(msg);
    out
}

/// If `buf` holds a whole length-delimited message, returns (message, total used).
pub fn split_delimited(buf: &[u8]) -> Result<Option<(&[u8], usize)>, WireError> {
    match get_varint(buf) {
        Err(WireError::Truncated) => Ok(None),
        Err(e) => Err(e),
        Ok((len, n)) => {
            let end = n.saturating_add(usize::try_from(len).map_err(|_| WireError::Varint)?);
            Ok((buf.len() >= end).then(|| (&buf[n..end], end)))
        }
    }
}

/// `SyncResult` (length-delimited), written on the sync fd.
pub enum SyncResult<'a> {
    Pid(i32),
    Error(&'a str),
}

pub fn encode_sync(r: &SyncResult<'_>, monitor_pid: i32) -> Vec<u8> {
    let mut m = Vec::new();
    match r {
        // oneof fields are always encoded, even when zero.
        SyncResult::Pid(pid) => {
            put_varint(&mut m, 1 << 3);
            put_varint(&mut m, i64::from(*pid) as u64);
        }
        SyncResult::Error(e) => put_bytes(&mut m, 2, e.as_bytes()),
    }
    put_int(&mut m, 3, i64::from(monitor_pid));
    length_delimited(&m)
}

/// `Response` (length-delimited).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Response {
    pub error: String,
    pub pid: i32,
    pub running: bool,
    pub exit_code: i32,
}

pub fn encode_response(r: &Response) -> Vec<u8> {
    let mut m = Vec::new();
    if !r.error.is_empty() {
        put_bytes(&mut m, 1, r.error.as_bytes());
    }
    put_int(&mut m, 2, i64::from(r.pid));
    put_int(&mut m, 3, i64::from(r.running));
    put_int(&mut m, 4, i64::from(r.exit_code));
    length_delimited(&m)
}

/// A decoded `Request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    ReopenLog,
    Resize { rows: u16, cols: u16 },
    Attach { stdin: bool },
    Status,
}

/// Iterates (field, wire type, varint value or bytes) over a message.
/// Visitor over one protobuf field: (field number, wire type, value bytes).
type FieldFn<'a> = dyn FnMut(u64, u64, &[u8]) -> Result<(), WireError> + 'a;

fn fields(mut b: &[u8], f: &mut FieldFn<'_>) -> Result<(), WireError> {
    while !b.is_empty() {
        let (key, n) = get_varint(b)?;
        b = &b[n..];
        let (field, wt) = (key >> 3, key & 7);
        match wt {
            0 => {
                let (v, n) = get_varint(b)?;
                f(field, wt, &v.to_le_bytes())?;
                b = &b[n..];
            }
            2 => {
                let (len, n) = get_varint(b)?;
                let end = n.checked_add(usize::try_from(len).map_err(|_| WireError::Varint)?);
                let end = end.filter(|&e| e <= b.len()).ok_or(WireError::Truncated)?;
                f(field, wt, &b[n..end])?;
                b = &b[end..];
            }
            1 => b = b.get(8..).ok_or(WireError::Truncated)?,
            5 => b = b.get(4..).ok_or(WireError::Truncated)?,
            _ => {
                return Err(WireError::WireType {
                    field,
                    wire_type: wt,
                });
            }
        }
    }
    Ok(())
}

fn varint_of(v: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&v[..8.min(v.len())]);
    u64::from_le_bytes(a)
}

/// Decodes a `Request` message body (without the length prefix).
pub fn decode_request(b: &[u8]) -> Result<Request, WireError> {
    let mut req = None;
    fields(b, &mut |field, wt, v| {
        if wt != 2 {
            return Ok(());
        }
        req = match field {
            1 => Some(Request::ReopenLog),
            4 => Some(Request::Status),
            2 => {
                let (mut rows, mut cols) = (0u16, 0u16);
                fields(v, &mut |f, wt, v| {
                    if wt == 0 {
                        let n = u16::try_from(varint_of(v)).unwrap_or(u16::MAX);
                        match f {
                            1 => rows = n,
                            2 => cols = n,
                            _ => {}
                        }
                    }
                    Ok(())
                })?;
                Some(Request::Resize { rows, cols })
            }
            3 => {
                let mut stdin = false;
                fields(v, &mut |f, wt, v| {
                    if f == 1 && wt == 0 {
                        stdin = varint_of(v) != 0;
                    }
                    Ok(())
                })?;
                Some(Request::Attach { stdin })
            }
            _ => req.take(),
        };
        Ok(())
    })?;
    req.ok_or(WireError::EmptyRequest)
}

/// Attach stream ids (documented in monitor.proto).
pub const STREAM_STDIN: u8 = 0;
pub const STREAM_STDOUT: u8 = 1;
pub const STREAM_STDERR: u8 = 2;
pub const STREAM_CLOSE_STDIN: u8 = 3;
pub const STREAM_EXIT: u8 = 4;
/// Largest frame payload accepted.
pub const MAX_FRAME: usize = 65536;

pub fn encode_frame(id: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + data.len());
    v.push(id);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// If `buf` starts with a whole frame, returns (id, data, total used).
pub fn decode_frame(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    let hdr: [u8; 4] = buf.get(1..5)?.try_into().ok()?;
    let len = u32::from_be_bytes(hdr) as usize;
    let data = buf.get(5..5 + len)?;
    Some((buf[0], data, 5 + len))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crust_proto::monitor as pb;
    use prost::Message;

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(get_varint(&b).unwrap(), (v, b.len()));
        }
        assert_eq!(get_varint(&[0x80]), Err(WireError::Truncated));
    }

    #[test]
    fn sync_result_is_protobuf() {
        let b = encode_sync(&SyncResult::Pid(4242), 99);
        let m = pb::SyncResult::decode_length_delimited(&b[..]).unwrap();
        assert_eq!(m.result, Some(pb::sync_result::Result::Pid(4242)));
        assert_eq!(m.monitor_pid, 99);
        let b = encode_sync(&SyncResult::Error("runc: boom"), 0);
        let m = pb::SyncResult::decode_length_delimited(&b[..]).unwrap();
        assert_eq!(
            m.result,
            Some(pb::sync_result::Result::Error("runc: boom".into()))
        );
    }

    #[test]
    fn response_is_protobuf() {
        let r = Response {
            error: "x".into(),
            pid: 7,
            running: true,
            exit_code: 137,
        };
        let m = pb::Response::decode_length_delimited(&encode_response(&r)[..]).unwrap();
        assert_eq!(
            (m.error.as_str(), m.pid, m.running, m.exit_code),
            ("x", 7, true, 137)
        );
    }

    #[test]
    fn requests_from_prost() {
        use pb::request::Request as R;
        let cases = [
            (R::ReopenLog(pb::ReopenLog {}), Request::ReopenLog),
            (R::Status(pb::Status {}), Request::Status),
            (
                R::Resize(pb::Resize { rows: 24, cols: 80 }),
                Request::Resize { rows: 24, cols: 80 },
            ),
            (
                R::Attach(pb::Attach { stdin: true }),
                Request::Attach { stdin: true },
            ),
            (
                R::Attach(pb::Attach { stdin: false }),
                Request::Attach { stdin: false },
            ),
        ];
        for (p, want) in cases {
            let b = pb::Request { request: Some(p) }.encode_length_delimited_to_vec();
            let (body, used) = split_delimited(&b).unwrap().unwrap();
            assert_eq!(used, b.len());
            assert_eq!(decode_request(body).unwrap(), want);
            assert_eq!(split_delimited(&b[..b.len() - 1]).unwrap(), None);
        }
        assert_eq!(decode_request(&[]), Err(WireError::EmptyRequest));
        assert_eq!(decode_request(&[0x1a, 5]), Err(WireError::Truncated));
    }

    #[test]
    fn frames() {
        let f = encode_frame(STREAM_STDOUT, b"tick\n");
        assert_eq!(f, [1, 0, 0, 0, 5, b't', b'i', b'c', b'k', b'\n']);
        assert_eq!(decode_frame(&f), Some((1, &b"tick\n"[..], 10)));
        assert_eq!(decode_frame(&f[..9]), None);
        assert_eq!(
            decode_frame(&[3, 0, 0, 0, 0]),
            Some((STREAM_CLOSE_STDIN, &b""[..], 5))
        );
    }
}
