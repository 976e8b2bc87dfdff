//! Generates `crust_proto::monitor` from `monitor/monitor.proto` (only with the
//! `monitor` feature, so CRI-only builds need no protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=monitor/monitor.proto");
    #[cfg(feature = "monitor")]
    prost_build::compile_protos(&["monitor/monitor.proto"], &["monitor"])?;
    Ok(())
}
