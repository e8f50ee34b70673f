//! `blockback serve`: the backup service.
//!
//! A thin shell on tokio + axum over the synchronous engine: every engine
//! call runs on a blocking thread. One listener serves the native API
//! (/api/v1), the Cinder-compatible backup API (/ and /v3) and /metrics.
//! Jobs are a persistent queue in the catalog, claimed by this process's
//! [`jobs::worker::Worker`] with leases (docs/design.md, "Service").

pub mod api;
pub mod auth;
pub mod cinder;
pub mod config;
pub mod exports;
pub mod jobs;
mod listen;
pub mod metrics;
mod read_cache;
pub mod schedule;
pub mod server;
pub mod state;
pub mod telemetry;

pub use config::ServiceConfig;

use blockback_core::catalog::Catalog;
use blockback_ops::CatalogLocation;
use jobs::runner::OpsRunner;
use std::path::Path;
use std::sync::Arc;

/// `blockback serve`: loads the configuration (file, then environment),
/// repairs what a previous life left, and serves until SIGTERM/SIGINT.
pub fn serve(config_file: Option<&Path>) -> Result<(), String> {
    let config = ServiceConfig::load(config_file).map_err(|e| e.to_string())?;
    telemetry::init(&config.logging);
    let config = Arc::new(config);
    let location = CatalogLocation::parse(&config.catalog, &config.state_dir)
        .map_err(|e| format!("catalog: {e}"))?;
    let catalog: Arc<dyn Catalog> = Arc::from(location.open().map_err(|e| e.to_string())?);
    let runner = Arc::new(OpsRunner::new(config.clone(), catalog.clone())?);
    server::recover(catalog.as_ref(), &config.worker(), || runner.recover())
        .map_err(|e| e.to_string())?;
    let listener =
        listen::bind(config.listen).map_err(|e| format!("listen {}: {e}", config.listen))?;
    let service =
        server::Service::new(config, catalog, runner.clone(), runner).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("blockback-serve")
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime
        .block_on(server::run(service, listener, server::signals()))
        .map_err(|e| e.to_string())
}
