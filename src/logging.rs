//! Logging: `tracing` to stderr, text or JSON, level from the config.
//!
//! The level filter sits behind a reload handle so SIGHUP can change it; the format needs
//! a restart. `CRUST_LOG` (EnvFilter directives, like `RUST_LOG`) overrides the configured
//! level for debugging single modules, e.g. `CRUST_LOG=crust::image=trace`.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::{LogFormat, LogLevel};

/// Environment variable with filter directives overriding `log_level`.
pub const LOG_ENV: &str = "CRUST_LOG";

/// Errors setting up or changing logging.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `CRUST_LOG` does not parse.
    #[error("invalid {LOG_ENV} filter {value:?}")]
    Filter {
        /// The variable's value.
        value: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("cannot install the log subscriber")]
    Init(#[source] tracing_subscriber::util::TryInitError),
    /// The subscriber is gone.
    #[error("cannot change the log level")]
    Reload(#[source] reload::Error),
}

/// Handle to change the level after start-up.
#[derive(Clone)]
pub struct LogHandle {
    handle: reload::Handle<EnvFilter, Registry>,
    env_override: bool,
}

fn filter(level: LogLevel) -> Result<(EnvFilter, bool), LoggingError> {
    match std::env::var(LOG_ENV) {
        Ok(value) if !value.is_empty() => EnvFilter::try_new(&value)
            .map(|f| (f, true))
            .map_err(|source| LoggingError::Filter { value, source }),
        _ => Ok((level_filter(level), false)),
    }
}

/// `level` for crust; the HTTP/2 and gRPC plumbing never goes below `info`, so that
/// `debug` shows crust's own decisions rather than every h2 frame.
fn level_filter(level: LogLevel) -> EnvFilter {
    let deps = match level {
        LogLevel::Debug | LogLevel::Trace => "info",
        other => other.as_str(),
    };
    let mut directives = level.as_str().to_owned();
    for dep in [
        "h2",
        "hyper",
        "hyper_util",
        "tower",
        "tonic",
        "rustls",
        "reqwest",
    ] {
        directives.push_str(&format!(",{dep}={deps}"));
    }
    EnvFilter::new(directives)
}

/// Install the global subscriber.
pub fn init(level: LogLevel, format: LogFormat) -> Result<LogHandle, LoggingError> {
    let (filter, env_override) = filter(level)?;
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
    }
    .map_err(LoggingError::Init)?;
    Ok(LogHandle {
        handle,
        env_override,
    })
}

impl LogHandle {
    /// Apply a new level (ignored while `CRUST_LOG` overrides it).
    pub fn set_level(&self, level: LogLevel) -> Result<(), LoggingError> {
        if self.env_override {
            tracing::info!(
                env = LOG_ENV,
                "log level set by environment; config level ignored"
            );
            return Ok(());
        }
        self.handle
            .reload(level_filter(level))
            .map_err(LoggingError::Reload)
    }
}

/// `error: cause: cause` for logs (what anyhow's `{:#}` prints in the binary).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}
