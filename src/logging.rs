//! SKELETON: filled by the daemon helper.
