//! The `crust` binary: the CRI daemon (no subcommand), `crust config`, `crust version`
//! and `crust ctl` (a small CRI client).
//!
//! Errors print as `crust: <message>: <cause>...` on stderr and exit 1.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use crust::config::{self, ConfigFlags};
use crust::ctl::CtlArgs;

/// Kubernetes CRI container runtime.
#[derive(Debug, Parser)]
#[command(name = "crust", version, about)]
struct Cli {
    #[command(flatten)]
    config: ConfigFlags,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the effective configuration as commented TOML (a valid config file)
    Config,
    /// Print version information
    Version,
    /// Talk CRI to a runtime (crictl-like client)
    Ctl(CtlArgs),
    /// Report (and with --repair fix) storage and state inconsistencies; daemon stopped
    Check(crust::ops::cli::CheckArgs),
    /// Remove all pods and containers (--images: and all images); daemon stopped
    Wipe(crust::ops::cli::WipeArgs),
    /// Ask the running daemon: info, config, container <id>
    Status(crust::ops::cli::StatusArgs),
    /// Generate man pages or shell completions (used by packaging)
    #[command(hide = true)]
    Generate(crust::generate::GenerateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crust: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Restore the default SIGPIPE action for the CLI subcommands so `crust ctl images | head`
/// ends quietly like other Unix tools instead of panicking in `println!` (Rust ignores
/// SIGPIPE by default). The daemon keeps ignoring it: a client hanging up must not kill it.
fn default_sigpipe() {
    // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition and
    // installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.command.is_some() {
        default_sigpipe();
    }
    match cli.command {
        Some(Command::Version) => {
            println!("crust version {}", env!("CARGO_PKG_VERSION"));
            println!(
                "git commit: {}",
                option_env!("CRUST_GIT_COMMIT").unwrap_or("unknown")
            );
            println!("CRI API: {}", crust::server::version::RUNTIME_API_VERSION);
            if let Some(rustc) = option_env!("CRUST_RUSTC_VERSION") {
                println!("rustc: {rustc}");
            }
            Ok(())
        }
        Some(Command::Config) => {
            let config = config::load(&cli.config)?;
            print!("{}", config::print::to_commented_toml(&config)?);
            Ok(())
        }
        Some(Command::Generate(args)) => {
            use clap::CommandFactory as _;
            for path in crust::generate::run(&args, Cli::command())? {
                println!("{}", path.display());
            }
            Ok(())
        }
        Some(Command::Check(args)) => Ok(crust::ops::cli::check(&cli.config, &args)?),
        Some(Command::Wipe(args)) => Ok(crust::ops::cli::wipe(&cli.config, &args)?),
        Some(Command::Status(args)) => Ok(crust::ops::cli::status(&cli.config, &args)?),
        Some(Command::Ctl(args)) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(crust::ctl::run(args))?;
            Ok(())
        }
        None => {
            // Before any thread exists: it removes NOTIFY_SOCKET from the environment.
            crust::daemon::notify::take_from_env();
            let config = config::load(&cli.config)?;
            let log = crust::logging::init(config.crust.log_level, config.crust.log_format)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("crust")
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(crust::daemon::run(cli.config, config, log))?;
            Ok(())
        }
    }
}
