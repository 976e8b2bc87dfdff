//! Container lifecycle operations on [`crate::lifecycle::Manager`]: create, start, stop,
//! remove, resource updates, log reopening and usage.

pub mod create;
pub mod exec;
pub mod start;
pub mod stop;
pub mod update;
