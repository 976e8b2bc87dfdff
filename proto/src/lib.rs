//! Protocols crust owns or speaks.
//!
//! - [`cri`]: the Kubernetes Container Runtime Interface v1, re-exported from the
//!   `k8s-cri` crate (generated from kubernetes/cri-api) so that every crate in the
//!   workspace uses one copy of the types. Only built with the `cri` feature: the
//!   monitor (`conmon-rs/`) links no CRI code.
//! - [`monitor`]: crust's own daemon <-> monitor protocol (`monitor/monitor.proto`,
//!   wire format documented there). Only built with the `monitor` feature. The monitor
//!   binary itself hand-encodes the same messages to stay small.

/// Kubernetes CRI v1 messages, clients and servers.
#[cfg(feature = "cri")]
pub mod cri {
    pub use k8s_cri::v1::*;
}

/// crust daemon <-> crust-monitor messages (see `monitor/monitor.proto`).
#[cfg(feature = "monitor")]
pub mod monitor {
    include!(concat!(env!("OUT_DIR"), "/crust.monitor.v1.rs"));
}

#[cfg(feature = "spdy")]
pub mod spdy;
