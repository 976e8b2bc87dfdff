//! crust-monitor. SKELETON: filled by the monitor helper.

fn main() {}
