//! crust's image storage: a synchronous leaf crate (no tokio, tonic or CRI types).
//!
//! On-disk layout below the storage root (see `store.rs` for the full description):
//! content-addressed blobs (manifests, configs), overlay-ready layer directories keyed by
//! diff id and shared between images, image records, and per-container writable layers
//! mounted as overlays over an image's layers.
//!
//! The daemon calls this crate only through its one `spawn_blocking` helper.

mod atomic;
mod blobs;
pub mod check;
pub mod compression;
mod containers;
pub mod digest;
mod du;
pub mod error;
mod gc;
mod images;
mod layers;
mod mount;
mod recovery;
pub mod store;
pub mod unpack;

#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod test_support;

pub use compression::Compression;
pub use digest::{Digest, DigestError, DigestingBufReader, DigestingReader, chain_ids};
pub use error::StoreError;
pub use store::{
    ApplyLayer, ContainerLayer, GcStats, ImageRecord, LayerInfo, Store, Untagged, Usage,
};
