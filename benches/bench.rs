//! crust benchmarks. SKELETON: filled by the tests helper.

fn main() {}
