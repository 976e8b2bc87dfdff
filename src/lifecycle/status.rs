//! Records -> CRI status and list types, and container events.
//!
//! Kept next to the records (not in `server/`) because the event stream needs the same
//! snapshots as `ContainerStatus`/`PodSandboxStatus` (kubelet's evented PLEG compares them).

use std::collections::HashMap;

use crust_proto::cri;
use prost::Message as _;

use super::Manager;
use crate::state::{Container, ContainerState, Pod, PodState};

/// CRI container state.
pub fn container_state(s: ContainerState) -> cri::ContainerState {
    match s {
        ContainerState::Created => cri::ContainerState::ContainerCreated,
        ContainerState::Running => cri::ContainerState::ContainerRunning,
        ContainerState::Exited => cri::ContainerState::ContainerExited,
        ContainerState::Unknown => cri::ContainerState::ContainerUnknown,
    }
}

/// CRI pod state.
pub fn pod_state(s: PodState) -> cri::PodSandboxState {
    match s {
        PodState::Ready => cri::PodSandboxState::SandboxReady,
        PodState::NotReady => cri::PodSandboxState::SandboxNotready,
    }
}

/// `ContainerStatus.status`.
pub fn container_status(c: &Container) -> cri::ContainerStatus {
    let r = c.record();
    let cfg = &c.config;
    let resources = if r.updated_resources.is_empty() {
        cfg.linux.as_ref().and_then(|l| l.resources.clone())
    } else {
        cri::LinuxContainerResources::decode(r.updated_resources.as_slice()).ok()
    };
    let image_ref = if r.image_digest_ref.is_empty() {
        r.image_id.clone()
    } else {
        r.image_digest_ref.clone()
    };
    cri::ContainerStatus {
        id: c.id.clone(),
        metadata: cfg.metadata.clone(),
        state: container_state(r.state) as i32,
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        exit_code: r.exit_code,
        image: Some(cri::ImageSpec {
            image: r.image_name.clone(),
            annotations: cfg
                .image
                .as_ref()
                .map(|i| i.annotations.clone())
                .unwrap_or_default(),
            ..Default::default()
        }),
        image_ref,
        reason: r.reason.clone(),
        message: r.message.clone(),
        labels: cfg.labels.clone(),
        annotations: cfg.annotations.clone(),
        mounts: cfg.mounts.clone(),
        log_path: r.log_path.to_string_lossy().into_owned(),
        resources: resources.map(|l| cri::ContainerResources {
            linux: Some(l),
            windows: None,
        }),
        image_id: r.image_id.clone(),
        user: None,
    }
}

/// `ListContainers` entry.
pub fn container_entry(c: &Container) -> cri::Container {
    let r = c.record();
    cri::Container {
        id: c.id.clone(),
        pod_sandbox_id: c.pod_id.clone(),
        metadata: c.config.metadata.clone(),
        image: Some(cri::ImageSpec {
            image: r.image_name.clone(),
            ..Default::default()
        }),
        image_ref: r.image_id.clone(),
        state: container_state(r.state) as i32,
        created_at: r.created_at,
        labels: c.config.labels.clone(),
        annotations: c.config.annotations.clone(),
        image_id: r.image_id.clone(),
    }
}

/// `PodSandboxStatus.status`.
pub fn pod_status(p: &Pod) -> cri::PodSandboxStatus {
    let r = p.record();
    let ns = p
        .config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone());
    cri::PodSandboxStatus {
        id: p.id.clone(),
        metadata: p.config.metadata.clone(),
        state: pod_state(r.state) as i32,
        created_at: r.created_at,
        network: Some(network_status(r.network.as_ref())),
        linux: Some(cri::LinuxPodSandboxStatus {
            namespaces: Some(cri::Namespace {
                options: Some(ns.unwrap_or_default()),
            }),
        }),
        labels: p.config.labels.clone(),
        annotations: p.config.annotations.clone(),
        runtime_handler: r.runtime_handler.clone(),
    }
}

/// `PodSandboxNetworkStatus` from the pod's CNI addresses (empty without CNI): the first
/// IPv4 (else IPv6) as `ip`, the others as `additional_ips` (the kubelet reads dual-stack
/// pod IPs this way). Also used by pod events, so evented PLEG sees the pod IP.
pub fn network_status(
    net: Option<&crate::state::records::PodNetworkRecord>,
) -> cri::PodSandboxNetworkStatus {
    let ips = net.map(|n| n.ips.as_slice()).unwrap_or_default();
    cri::PodSandboxNetworkStatus {
        ip: ips.first().cloned().unwrap_or_default(),
        additional_ips: ips
            .iter()
            .skip(1)
            .map(|ip| cri::PodIp { ip: ip.clone() })
            .collect(),
    }
}

/// `ListPodSandbox` entry.
pub fn pod_entry(p: &Pod) -> cri::PodSandbox {
    let r = p.record();
    cri::PodSandbox {
        id: p.id.clone(),
        metadata: p.config.metadata.clone(),
        state: pod_state(r.state) as i32,
        created_at: r.created_at,
        labels: p.config.labels.clone(),
        annotations: p.config.annotations.clone(),
        runtime_handler: r.runtime_handler.clone(),
    }
}

/// Whether `labels` has every key/value of `selector`.
pub fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Manager {
    /// Publish an event for `c` with fresh pod and container statuses.
    pub fn emit_container_event(&self, c: &Container, kind: cri::ContainerEventType) {
        self.emit(&c.id, kind, || {
            let pod = match self.state.pod(&c.pod_id) {
                crate::state::Lookup::Found(p) => Some(pod_status(&p)),
                _ => None,
            };
            let statuses = self
                .state
                .pod_containers(&c.pod_id)
                .iter()
                .map(|c| container_status(c))
                .collect();
            (pod, statuses)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector() {
        let mut l = HashMap::new();
        l.insert("a".to_string(), "1".to_string());
        l.insert("b".to_string(), "2".to_string());
        let mut s = HashMap::new();
        assert!(labels_match(&l, &s));
        s.insert("a".to_string(), "1".to_string());
        assert!(labels_match(&l, &s));
        s.insert("b".to_string(), "3".to_string());
        assert!(!labels_match(&l, &s));
    }

    #[test]
    fn network_status_primary_and_additional() {
        assert_eq!(
            network_status(None),
            cri::PodSandboxNetworkStatus::default()
        );
        let n = crate::state::records::PodNetworkRecord {
            network: "crust".into(),
            interface: "eth0".into(),
            ips: vec!["10.87.0.5".into(), "fd87::5".into()],
        };
        let s = network_status(Some(&n));
        assert_eq!(s.ip, "10.87.0.5");
        assert_eq!(
            s.additional_ips,
            vec![cri::PodIp {
                ip: "fd87::5".into()
            }]
        );
    }
}
