//! Daemon configuration.
//!
//! SKELETON: filled by the daemon helper.

use std::sync::{Arc, RwLock};

/// The effective configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {}

/// The configuration shared with RPC handlers; replaced as a whole on SIGHUP.
pub type SharedConfig = Arc<RwLock<Arc<Config>>>;
