//! `ExecSync`: run a command in a running container and return its output and exit code
//! (`crate::container::exec::sync`). `timeout` is in seconds, 0 = none (CRI `api.proto`);
//! a timed-out command answers exit code -1 and stderr `command timed out`, as CRI-O does.

use std::time::Duration;

use crust_proto::cri;
use tonic::Status;

use super::Context;
use super::error::missing_field;

/// Handle `ExecSync`.
pub async fn handle(
    ctx: &Context,
    req: cri::ExecSyncRequest,
) -> Result<cri::ExecSyncResponse, Status> {
    if req.container_id.is_empty() {
        return Err(missing_field("ExecSync", "container_id"));
    }
    let timeout = timeout(req.timeout)?;
    let out = ctx
        .lifecycle
        .exec_sync(&req.container_id, req.cmd, timeout)
        .await?;
    Ok(cri::ExecSyncResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: out.exit_code,
    })
}

/// The request's timeout; negative values are rejected.
fn timeout(secs: i64) -> Result<Duration, Status> {
    u64::try_from(secs).map(Duration::from_secs).map_err(|_| {
        Status::invalid_argument(format!(
            "ExecSync: timeout {secs}: must be 0 (none) or a number of seconds"
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(timeout(0).unwrap(), Duration::ZERO);
        assert_eq!(timeout(5).unwrap(), Duration::from_secs(5));
        let e = timeout(-1).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("timeout -1"));
    }
}
