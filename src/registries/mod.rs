//! containers-registries.conf(5) v2 and registry credentials.
//!
//! SKELETON: filled by the registries helper.
