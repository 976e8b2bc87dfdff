//! Protocols crust owns or speaks.
//!
//! - [`cri`]: the Kubernetes Container Runtime Interface v1, re-exported from the
//!   `k8s-cri` crate (generated from kubernetes/cri-api) so that every crate in the
//!   workspace uses one copy of the types. Only built with the `cri` feature: the
//!   monitor (`conmon-rs/`) links no CRI code.
//! - crust's own daemon <-> monitor protocol lands here with the monitor.

/// Kubernetes CRI v1 messages, clients and servers.
#[cfg(feature = "cri")]
pub mod cri {
    pub use k8s_cri::v1::*;
}
