//! Command lines of `crust check`, `crust wipe` and `crust status` (registered in
//! `main.rs`); they take the same global config flags as the daemon (`--root`,
//! `--runroot`, `--listen`, `--config`...) so they act on the daemon's directories.

use crate::config::{self, ConfigFlags};

use super::{OpsError, check, ensure_offline, marker, status, wipe};

/// `crust check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Fix what is found (remove orphans and leftovers, drop broken image records)
    #[arg(long)]
    pub repair: bool,
}

/// `crust wipe`.
#[derive(Debug, Clone, clap::Args)]
pub struct WipeArgs {
    /// Also remove the whole image store
    #[arg(long)]
    pub images: bool,
    /// Remove leftovers by brute force when a pod or container cannot be removed cleanly
    #[arg(long)]
    pub force: bool,
}

/// `crust status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// CRI endpoint (unix:///path or /path) [default: crust.api.listen of the config]
    #[arg(short = 'r', long, env = "CONTAINER_RUNTIME_ENDPOINT")]
    pub endpoint: Option<String>,
    #[command(subcommand)]
    pub what: Option<status::StatusCommand>,
}

/// Errors specific to the command lines.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration did not load.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// An operation failed.
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// `crust check` found problems (exit status 1).
    #[error("{found} problem(s) found{}", if *.repaired { format!(", {} repair(s) failed", .failed) } else { "; run `crust check --repair` to fix them".into() })]
    Problems {
        /// Problems found.
        found: usize,
        /// Whether --repair ran.
        repaired: bool,
        /// Repairs that failed.
        failed: usize,
    },
}

/// Consume the clean-shutdown marker before changing the store, so a tool that dies
/// half-way leaves no marker and the next daemon start runs the full check.
fn take_marker(config: &config::Config) -> bool {
    marker::take(&config.crust.root).unwrap_or(false)
}

/// Put the marker back after a successful change (only if it was there before).
fn restore_marker(config: &config::Config, put_back: bool) {
    if put_back && let Err(e) = marker::write(&config.crust.root) {
        eprintln!("warning: {e}");
    }
}

fn while_changing<T, E>(config: &config::Config, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let had_marker = take_marker(config);
    let res = f();
    restore_marker(config, had_marker && res.is_ok());
    res
}

fn current_thread() -> Result<tokio::runtime::Runtime, OpsError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(OpsError::Runtime)
}

/// `crust check [--repair]`: prints one line per problem; fails when problems were found
/// and not all repaired.
pub fn check(flags: &ConfigFlags, args: &CheckArgs) -> Result<(), CliError> {
    let config = config::load(flags)?;
    let rt = current_thread()?;
    let _guard = rt.block_on(ensure_offline(&config, "check"))?;
    let report = if args.repair {
        while_changing(&config, || check::run(&config, true))
    } else {
        check::run(&config, false)
    }
    .map_err(OpsError::from)?;
    for f in &report.findings {
        let fix = match (report.repaired, f.repairable) {
            (true, true) => " [repaired]",
            (_, false) => " [not repairable: remove the container]",
            (false, true) => "",
        };
        println!("{}: {}: {}{fix}", f.kind, f.path.display(), f.detail);
    }
    for e in &report.repair_errors {
        eprintln!("repair failed: {e}");
    }
    let unrepaired = report.findings.iter().filter(|f| !f.repairable).count();
    if report.is_clean() {
        println!("storage and state are consistent");
        return Ok(());
    }
    if report.repaired && report.repair_errors.is_empty() && unrepaired == 0 {
        println!("{} problem(s) repaired", report.findings.len());
        return Ok(());
    }
    Err(CliError::Problems {
        found: report.findings.len(),
        repaired: report.repaired,
        failed: report.repair_errors.len() + unrepaired,
    })
}

/// `crust wipe [--images] [--force]`.
pub fn wipe(flags: &ConfigFlags, args: &WipeArgs) -> Result<(), CliError> {
    let config = config::load(flags)?;
    let rt = current_thread()?;
    let report = rt.block_on(async {
        let _guard = ensure_offline(&config, "wipe").await?;
        let had_marker = take_marker(&config);
        let res = wipe::run(&config, args.images, args.force).await;
        restore_marker(&config, had_marker && res.is_ok());
        res.map_err(OpsError::from)
    })?;
    for f in &report.forced {
        eprintln!("forced past: {f}");
    }
    println!(
        "removed {} pod(s) and {} container(s){}",
        report.pods,
        report.containers,
        if report.images {
            " and the image store"
        } else {
            ""
        }
    );
    Ok(())
}

/// `crust status [info|config|container ID]`.
pub fn status(flags: &ConfigFlags, args: &StatusArgs) -> Result<(), CliError> {
    let endpoint = match &args.endpoint {
        Some(e) => e.clone(),
        None => config::load(flags)?.crust.api.listen.display().to_string(),
    };
    let what = args.what.clone().unwrap_or(status::StatusCommand::Info);
    let rt = current_thread()?;
    let text = rt
        .block_on(status::run(&endpoint, &what))
        .map_err(OpsError::from)?;
    print!("{text}");
    Ok(())
}
