//! crust's image storage: a synchronous leaf crate (no tokio, tonic or CRI types).
//!
//! On-disk layout below the storage root (see `store.rs` for the full description):
//! content-addressed blobs (manifests, configs), overlay-ready layer directories keyed by
//! diff id and shared between images, image records, and per-container writable layers
//! mounted as overlays over an image's layers.
//!
//! The daemon calls this crate only through its one `spawn_blocking` helper.
//!
//! SKELETON: `unpack/` is owned by the unpacker helper; every other module by the store
//! helper.

pub mod unpack;
