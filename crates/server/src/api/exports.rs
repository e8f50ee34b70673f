//! /api/v1/exports: backups served over NBD by the service (`[nbd]
//! listen` in the configuration): list, open, close.

use super::{ApiResult, ErrorBody, Json, Path, Query};
use crate::exports::{ExportClosedView, ExportView, Exporter};
use crate::state::{blocking, AppState, ServiceError, ServiceResult};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

fn exporter(state: &AppState) -> ServiceResult<&dyn Exporter> {
    state.backend.exports().ok_or_else(|| {
        ServiceError::Conflict(
            "exports over NBD are off: set listen in the [nbd] section of the configuration".into(),
        )
    })
}

/// The exports served now.
#[utoipa::path(get, path = "/api/v1/exports", tag = "exports",
    responses((status = 200, body = Vec<ExportView>)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<ExportView>>> {
    let views = state.backend.exports().map_or_else(Vec::new, |e| e.list());
    Ok(Json(views))
}

/// A backup to serve.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenExport {
    pub backup_id: Uuid,
    /// Accept writes, into a temporary copy-on-write overlay (never the
    /// backup) [default: false].
    #[serde(default)]
    pub writable: bool,
}

/// Serves an available backup over NBD, named by its id; the backup
/// cannot be deleted while served.
#[utoipa::path(post, path = "/api/v1/exports", tag = "exports", request_body = OpenExport,
    responses((status = 201, body = ExportView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn open(
    State(state): State<Arc<AppState>>,
    Json(body): Json<OpenExport>,
) -> ApiResult<(StatusCode, Json<ExportView>)> {
    let view = blocking(move || {
        let exporter = exporter(&state)?;
        let backup = state.catalog.backup(body.backup_id)?;
        exporter.open(&backup, body.writable)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseQuery {
    /// Turn the view (backup plus writes) into a new backup of the
    /// volume first (writable exports) [default: false].
    #[serde(default)]
    pub save_as_backup: bool,
}

/// Stops serving a backup: its clients are disconnected, a temporary
/// overlay is discarded (or saved as a new backup), the backup released.
#[utoipa::path(delete, path = "/api/v1/exports/{backup_id}", tag = "exports",
    params(("backup_id" = Uuid, Path, description = "the backup served"), CloseQuery),
    responses((status = 200, body = ExportClosedView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn close(
    State(state): State<Arc<AppState>>,
    Path(backup_id): Path<Uuid>,
    Query(q): Query<CloseQuery>,
) -> ApiResult<Json<ExportClosedView>> {
    let closed = blocking(move || exporter(&state)?.close(backup_id, q.save_as_backup)).await?;
    Ok(Json(closed))
}
