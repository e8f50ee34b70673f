//! The `blockback` command line: a thin shell over `blockback-core`.
//!
//! Exit codes: 0 success, 1 failure (one line on stderr), 2 usage error.

mod arenas;
mod args;
mod cancel;
mod commands;
mod config;
mod output;
mod progress;
mod remote;
mod secrets;
mod session;

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    if let args::Command::Serve(serve) = &cli.command {
        arenas::limit(arenas::SERVICE_ARENAS);
        // The service sets up its own logging and signal handling.
        return commands::serve::run(serve);
    }
    arenas::limit(arenas::TRANSFER_ARENAS);
    // Not in the service: a trim holds each arena's lock while it walks
    // it, which would land in its requests' latency.
    arenas::trim_in_background();
    init_tracing(cli.quiet);
    output::set_quiet(cli.quiet);
    cancel::install();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blockback: error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, without repeating a cause that
/// the message above it already contains.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out.replace('\n', " ")
}

fn init_tracing(quiet: bool) {
    let default = if quiet { "error" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BLOCKBACK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into logs.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
}
