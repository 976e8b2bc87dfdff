//! The `crust` binary. SKELETON: filled by the daemon helper.

fn main() {}
