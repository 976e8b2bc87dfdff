//! Pod sandbox: ns.
