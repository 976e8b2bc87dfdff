//! The OCI runtime driver: any runc-compatible binary driven through its command line,
//! chosen per pod by its RuntimeClass handler.
//!
//! - [`handlers`]: `[crust.runtime.runtimes.<name>]` resolved on this host (binaries,
//!   state roots, availability).
//! - [`cli`]: [`OciRuntime`], the runtime CLI (`start`, `state`, `kill`, `delete`,
//!   `update`, `pause`, `resume`). `create` is run by the monitor (`crate::monitor`).
//! - [`exec`]: `<runtime> exec` (ExecSync, Exec): process JSON, tree kill, tty.
//! - [`binaries`]: where runtimes and crust's helper binaries are found.

pub mod binaries;
pub mod cli;
pub mod error;
pub mod exec;
pub mod handlers;

pub use binaries::find_binary;
pub use cli::{OciRuntime, RuntimeState};
pub use error::{ErrorKind, RuntimeError};
pub use handlers::{Handler, Handlers};
