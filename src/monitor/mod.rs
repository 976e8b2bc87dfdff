//! Daemon side of the per-container monitor (`crust-monitor`, conmon-rs/): spawn, control socket, exit files.
