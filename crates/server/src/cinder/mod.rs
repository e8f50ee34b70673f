//! The Cinder Block Storage v3 backup API, the subset python-cinderclient
//! and openstackclient use (shared/reference/cinder-backup-api.md):
//! version discovery at / and /v3, microversions 3.0 to 3.71, backups
//! (create, list, detail, show, update, delete, restore, reset-status,
//! force-delete, export/import record) and the volume lookups the clients
//! make, for registered volumes. Every route works with and without the
//! project segment (`/v3/{project_id}/backups`, `/v3/backups`).

mod backups;
mod context;
mod fault;
mod list;
mod records;
mod versions;
mod views;
mod volumes;

use crate::state::AppState;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

pub use context::ApiVersion;

/// Highest microversion served (the clients' own maximum).
pub const MAX_MINOR: u32 = 71;

pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let api = Router::new()
        .route("/backups", get(backups::list_summary).post(backups::create))
        .route("/backups/detail", get(backups::list_detail))
        .route("/backups/import_record", post(records::import))
        .route(
            "/backups/{id}",
            get(backups::show)
                .put(backups::update)
                .delete(backups::delete),
        )
        .route("/backups/{id}/restore", post(backups::restore))
        .route("/backups/{id}/action", post(backups::action))
        .route("/backups/{id}/export_record", get(records::export))
        .route("/volumes", get(volumes::list_summary))
        .route("/volumes/detail", get(volumes::list_detail))
        .route("/volumes/{id}", get(volumes::show))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            context::authenticate,
        ))
        .layer(axum::middleware::from_fn(context::negotiate));
    Router::new()
        .route("/", get(versions::root))
        .route("/v3", get(versions::v3))
        .route("/v3/", get(versions::v3))
        .nest("/v3/{project_id}", api.clone())
        .nest("/v3", api)
}
