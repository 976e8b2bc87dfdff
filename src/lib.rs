//! crust: a Kubernetes CRI v1 container runtime.
//!
//! Layering (top to bottom):
//! - [`server`]: one thin file per CRI RPC, converting CRI <-> domain types; gRPC status
//!   codes are chosen in one place, [`server::error`].
//! - domain modules: [`config`], [`registries`], [`image`] (and, in later issues, the OCI
//!   runtime driver, network and streaming).
//! - leaf crates: `crust-storage` (synchronous, no tokio/tonic/CRI), called only through
//!   [`blocking::run`].
//! - [`daemon`] wires it all to a unix socket; [`ctl`] is crust's own CRI client.

pub mod atomic_file;
pub mod blocking;
pub mod cgroups;
pub mod config;
pub mod container;
pub mod ctl;
pub mod daemon;
pub mod errfmt;
pub mod generate;
pub mod image;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod network;
pub mod ops;
pub mod registries;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod spec;
pub mod state;
pub mod streaming;
#[cfg(test)]
pub mod testutil;
