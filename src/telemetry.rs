//! Logging: `tracing` with an env filter (`RUST_LOG` wins over `log.filter`), human-readable in
//! development and JSON in production. Phone numbers are masked at the call sites; codes,
//! tokens and secrets are never passed to a log macro. OpenTelemetry export arrives with issue 7.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. Returns an error if one is already installed.
pub fn init(cfg: &Config) -> Result<(), String> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.filter))
        .map_err(|e| format!("AROGYA_LOG__FILTER (log.filter): {e}"))?;
    let json = match cfg.log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => cfg.is_production(),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(ansi),
            )
            .try_init()
    };
    result.map_err(|e| e.to_string())
}
