//! `RuntimeConfig`: tells the kubelet which cgroup driver crust uses (KEP-4033), so the
//! two can never disagree.

use crust_proto::cri;
use tonic::Status;

use super::Context;
use crate::cgroups::Driver;

/// Handle `RuntimeConfig`.
pub async fn handle(
    ctx: &Context,
    _req: cri::RuntimeConfigRequest,
) -> Result<cri::RuntimeConfigResponse, Status> {
    let cgroup_driver = match ctx.lifecycle.opts.cgroup_driver {
        Driver::Systemd => cri::CgroupDriver::Systemd,
        Driver::Cgroupfs => cri::CgroupDriver::Cgroupfs,
    };
    Ok(cri::RuntimeConfigResponse {
        linux: Some(cri::LinuxRuntimeConfiguration {
            cgroup_driver: cgroup_driver as i32,
        }),
    })
}
