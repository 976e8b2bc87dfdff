//! `UpdateContainerResources`, `ReopenContainerLog` and the stats RPCs' data.

use std::sync::Arc;

use crust_proto::cri;
use prost::Message as _;

use super::start::state_word;
use crate::lifecycle::{LifecycleError, Manager};
use crate::state::{Container, ContainerState, now_nanos};

/// Statistics of one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerUsage {
    /// When they were read (ns since epoch).
    pub timestamp: i64,
    /// cgroup numbers; `None` when the cgroup is gone (container not running).
    pub cgroup: Option<crate::cgroups::CgroupStats>,
    /// Writable layer bytes and inodes.
    pub writable: Option<crust_storage::Usage>,
}

impl Manager {
    /// `UpdateContainerResources`: apply through `<runtime> update --resources -`.
    pub async fn update_container_resources(
        self: &Arc<Self>,
        id: &str,
        res: cri::LinuxContainerResources,
    ) -> Result<(), LifecycleError> {
        let c = self.container(id)?;
        tracing::Span::current().record("container", c.id.as_str());
        let _op = c.op.lock().await;
        let rec = c.record();
        if !matches!(rec.state, ContainerState::Created | ContainerState::Running) {
            return Err(LifecycleError::precondition(
                format!("container {}", c.id),
                format!(
                    "is {}: resources can only be updated while it exists in the runtime",
                    state_word(rec.state)
                ),
            ));
        }
        let opts = self.spec_options(rec.cgroups_path.clone(), false);
        let oci = crate::spec::linux_resources(&res, &opts);
        self.handler(&rec.runtime_handler)?
            .runtime
            .update(&c.id, &oci)
            .await
            .map_err(|source| LifecycleError::Runtime {
                op: "update resources of",
                kind: "container",
                id: c.id.clone(),
                source: Box::new(source),
            })?;
        let bytes = res.encode_to_vec();
        let rec = c.update(|r| r.updated_resources = bytes);
        self.save_container(rec).await
    }

    /// `ReopenContainerLog`: CRI requires the container to be running.
    pub async fn reopen_container_log(self: &Arc<Self>, id: &str) -> Result<(), LifecycleError> {
        let c = self.running_container(id, "only a running container's log can be reopened")?;
        tracing::Span::current().record("container", c.id.as_str());
        crate::monitor::reopen_log(&self.socket_path(&c.id))
            .await
            .map_err(|source| LifecycleError::Monitor {
                op: "reopen the log of",
                id: c.id.clone(),
                source: Box::new(source),
            })
    }

    /// Usage numbers of one container.
    pub async fn container_usage(self: &Arc<Self>, c: &Arc<Container>) -> ContainerUsage {
        let rec = c.record();
        let me = Arc::clone(self);
        let id = c.id.clone();
        let running = rec.state == ContainerState::Running;
        let res = crate::blocking::run("container stats", move || {
            let cgroup = if running {
                match crate::cgroups::stats(me.opts.cgroup_driver, &rec.cgroups_path) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::debug!(container = %id, error = %e, "no cgroup stats");
                        None
                    }
                }
            } else {
                None
            };
            let writable = me.images.store().container_usage(&id).ok();
            (cgroup, writable)
        })
        .await;
        let (cgroup, writable) = res.unwrap_or((None, None));
        ContainerUsage {
            timestamp: now_nanos(),
            cgroup,
            writable,
        }
    }
}
