//! The answer for CRI RPCs crust does not implement yet.
//!
//! A kubelet treats `Unimplemented` as "feature not supported" for optional RPCs
//! (checkpointing, metrics, events) and as a hard error for required ones, so the message
//! names both the RPC and the missing feature rather than failing vaguely.

use tonic::Status;

/// `Unimplemented` status for `rpc`, saying which feature is missing.
pub fn rpc(rpc: &str, feature: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented by crust {}: {feature} are not supported yet",
        env!("CARGO_PKG_VERSION")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_rpc_and_feature() {
        let s = rpc("ExecSync", "exec and streaming");
        assert_eq!(s.code(), tonic::Code::Unimplemented);
        assert!(s.message().contains("ExecSync"));
        assert!(s.message().contains("exec and streaming"));
    }
}
