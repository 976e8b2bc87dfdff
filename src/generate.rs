//! `crust generate` (hidden): man pages and shell completions generated from the clap
//! definitions, so packages ship documentation that matches the binary (like `crio`'s
//! `man`/`completion` subcommands). `scripts/package.sh` runs it on the release binary.
//!
//! - `crust generate man <dir>`: `crust.8`, one `crust-<subcommand>.8` per visible
//!   subcommand (clap_mangen) and `crust.toml.5` ([`crate::config::man`]).
//! - `crust generate completions <dir>`: `crust.bash`, `_crust` (zsh), `crust.fish`
//!   (clap_complete).

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

use crate::config::{Config, man};

/// `crust generate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// What to generate.
    #[command(subcommand)]
    pub what: Generate,
}

/// `crust generate` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Generate {
    /// Man pages: crust.8, crust-<subcommand>.8 and crust.toml.5
    Man {
        /// Output directory (created if missing)
        dir: PathBuf,
    },
    /// Shell completions: crust.bash, _crust (zsh) and crust.fish
    Completions {
        /// Output directory (created if missing)
        dir: PathBuf,
    },
}

/// Errors writing generated files.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A file or the directory could not be written.
    #[error("cannot write {path:?}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The default config could not be serialized (a bug).
    #[error("cannot render the default configuration")]
    Config(#[source] toml::ser::Error),
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> GenerateError + '_ {
    move |source| GenerateError::Write {
        path: path.to_owned(),
        source,
    }
}

/// Run `crust generate`; `cmd` is the top-level `crust` command (`Cli::command()`).
/// Returns the files written.
pub fn run(args: &GenerateArgs, cmd: clap::Command) -> Result<Vec<PathBuf>, GenerateError> {
    match &args.what {
        Generate::Man { dir } => man_pages(cmd, dir),
        Generate::Completions { dir } => completions(cmd, dir),
    }
}

/// Sections clap does not know about, appended to `crust.8`.
const DAEMON_SECTIONS: &str = r".SH SIGNALS
.TP
\fBSIGHUP\fR
Re\-read the configuration files; the log level, registries.conf and the auth file apply at once.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop accepting CRI calls, let in\-flight calls finish, remove the socket and exit 0. Containers keep running.
.SH FILES
.TP
\fI/etc/crust/crust.toml\fR, \fI/etc/crust/crust.conf.d/*.toml\fR
Configuration, see \fBcrust.toml\fR(5).
.TP
\fI/run/crust/crust.sock\fR
The CRI socket (kubelet \fB\-\-container\-runtime\-endpoint=unix:///run/crust/crust.sock\fR).
.TP
\fI/var/lib/crust\fR
Images and pod/container state.
.SH SEE ALSO
\fBcrust.toml\fR(5), \fBcontainers\-registries.conf\fR(5), \fBkubelet\fR(8), \fBrunc\fR(8)
";

/// Render one command's page in section 8 (system administration: crust is a daemon),
/// followed by `extra` roff.
fn render_page(cmd: clap::Command, path: &Path, extra: &str) -> Result<(), GenerateError> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .section("8")
        .manual("System Administration")
        .render(&mut buf)
        .map_err(write_err(path))?;
    buf.extend_from_slice(extra.as_bytes());
    std::fs::write(path, buf).map_err(write_err(path))
}

/// Write `crust.8`, `crust-<sub>.8` for each visible subcommand, and `crust.toml.5`.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let mut cmd = cmd;
    cmd.build();
    let mut written = Vec::new();
    let top = cmd.get_name().to_owned();
    // `build` adds clap's own `help` subcommand: crust.8 covers it.
    let documented = |s: &&clap::Command| !s.is_hide_set() && s.get_name() != "help";
    for sub in cmd.get_subcommands().filter(documented) {
        let name = format!("{top}-{}", sub.get_name());
        let path = dir.join(format!("{name}.8"));
        // clap's `name` takes `&'static str` without its "string" feature; this runs once
        // per subcommand in a short-lived CLI, so leaking the few bytes is fine.
        let static_name: &'static str = Box::leak(name.into_boxed_str());
        render_page(sub.clone().name(static_name), &path, "")?;
        written.push(path);
    }
    let path = dir.join(format!("{top}.8"));
    render_page(cmd, &path, DAEMON_SECTIONS)?;
    written.insert(0, path);
    let page = man::man_page(&Config::default(), env!("CARGO_PKG_VERSION"))
        .map_err(GenerateError::Config)?;
    let path = dir.join("crust.toml.5");
    std::fs::write(&path, page).map_err(write_err(&path))?;
    written.push(path);
    Ok(written)
}

/// Write bash, zsh and fish completions for `cmd`.
pub fn completions(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let mut cmd = cmd;
    let name = cmd.get_name().to_owned();
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            clap_complete::generate_to(shell, &mut cmd, &name, dir).map_err(write_err(dir))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        clap::Command::new("crust")
            .version("0.1.0")
            .about("Kubernetes CRI container runtime")
            .arg(clap::arg!(--listen <PATH> "crust.api.listen: CRI unix socket path").global(true))
            .subcommand(clap::Command::new("config").about("Print the configuration"))
            .subcommand(clap::Command::new("generate").hide(true))
    }

    #[test]
    fn writes_man_pages() {
        let dir = tempfile::tempdir().unwrap();
        let files = man_pages(cli(), dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["crust.8", "crust-config.8", "crust.toml.5"]);
        let top = std::fs::read_to_string(dir.path().join("crust.8")).unwrap();
        assert!(top.contains(".TH crust 8"), "{top}");
        assert!(top.contains("listen"));
        assert!(!top.contains("generate"), "hidden subcommand documented");
        assert!(top.contains(".SH SEE ALSO\n\\fBcrust.toml\\fR(5)"), "{top}");
        let sub = std::fs::read_to_string(dir.path().join("crust-config.8")).unwrap();
        assert!(sub.contains("crust\\-config"), "{sub}");
        let toml5 = std::fs::read_to_string(dir.path().join("crust.toml.5")).unwrap();
        assert!(toml5.contains("registries_conf"));
    }

    #[test]
    fn writes_completions() {
        let dir = tempfile::tempdir().unwrap();
        let files = completions(cli(), &dir.path().join("c")).unwrap();
        assert_eq!(files.len(), 3);
        let bash = std::fs::read_to_string(dir.path().join("c/crust.bash")).unwrap();
        assert!(bash.contains("--listen"));
        assert!(dir.path().join("c/_crust").exists());
        assert!(dir.path().join("c/crust.fish").exists());
    }

    #[test]
    fn unwritable_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = man_pages(cli(), &file.join("sub")).unwrap_err();
        assert!(err.to_string().contains("file/sub"), "{err}");
    }
}
