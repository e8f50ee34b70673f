//! Logs: tracing to stderr, as text or one JSON object per line, with the
//! request or job span (request id, job id) on every line.

use crate::config::{LogFormat, LoggingConfig};
use tracing_subscriber::EnvFilter;

/// Installs the subscriber; `BLOCKBACK_LOG` overrides the configured filter.
pub fn init(config: &LoggingConfig) {
    let filter =
        EnvFilter::try_from_env("BLOCKBACK_LOG").unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match config.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = result {
        eprintln!("blockback serve: logging not set up: {e}");
    }
}
