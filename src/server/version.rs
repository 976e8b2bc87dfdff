//! `Version` (CRI RuntimeService).
//!
//! CRI api.proto: `version` is the version of the kubelet runtime API ("0.1.0" for every
//! runtime today, as containerd and CRI-O answer), `runtime_api_version` the CRI API
//! version served ("v1").

use crust_proto::cri;
use tonic::Status;

use super::Context;

/// The kubelet runtime API version CRI defines.
pub const KUBELET_API_VERSION: &str = "0.1.0";
/// Our name as a runtime.
pub const RUNTIME_NAME: &str = "crust";
/// The CRI API version served.
pub const RUNTIME_API_VERSION: &str = "v1";

/// Handle `Version`.
pub async fn handle(
    _ctx: &Context,
    _req: cri::VersionRequest,
) -> Result<cri::VersionResponse, Status> {
    Ok(response())
}

/// The answer, independent of any state.
pub fn response() -> cri::VersionResponse {
    cri::VersionResponse {
        version: KUBELET_API_VERSION.to_owned(),
        runtime_name: RUNTIME_NAME.to_owned(),
        runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        runtime_api_version: RUNTIME_API_VERSION.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_crust_v1() {
        let r = response();
        assert_eq!(r.version, "0.1.0");
        assert_eq!(r.runtime_name, "crust");
        assert_eq!(r.runtime_api_version, "v1");
        assert_eq!(r.runtime_version, env!("CARGO_PKG_VERSION"));
    }
}
