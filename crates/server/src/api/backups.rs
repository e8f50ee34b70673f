//! /api/v1/backups: list, show, create, delete, restore.

use super::views::{BackupView, JobView, Page};
use super::{chosen_id, ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::jobs::request::{label, BackupMode, RestoreTarget};
use crate::read_cache::cached_json;
use crate::state::{blocking, AppState, Chosen, ServiceError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blockback_core::catalog::{BackupPage, BackupStatus, CatalogError, VolumeRecord};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Largest page.
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupQuery {
    pub volume_id: Option<Uuid>,
    /// `creating`, `available`, `error`, `deleting` or `restoring`.
    pub status: Option<String>,
    /// Page size, 1 to 1000 [default: 1000].
    pub limit: Option<usize>,
    /// The last id of the previous page.
    pub marker: Option<Uuid>,
}

/// Backups, oldest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/backups", tag = "backups", params(BackupQuery),
    responses((status = 200, body = Page<BackupView>), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<BackupQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(MAX_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit {limit}: give 1 to {MAX_LIMIT}"
        )));
    }
    let status = match q.status.as_deref() {
        Some(s) => Some(BackupStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status {s:?}: give creating, available, error, deleting or restoring"
            ))
        })?),
        None => None,
    };
    let page = BackupPage {
        volume_id: q.volume_id,
        status,
        after: q.marker,
        // One more than asked: whether another page follows.
        limit: limit + 1,
    };
    let key = format!("list {page:?}");
    let answer = cached_json(state, key, move |state| {
        let mut items = match state.catalog.backups_page(&page) {
            // With a marker, the backup not found is the marker.
            Err(CatalogError::BackupNotFound(marker)) if page.after.is_some() => {
                return Err(ServiceError::Invalid(format!(
                    "marker {marker} is not in this list"
                )))
            }
            other => other?,
        };
        let protected = state.catalog.protected_backups()?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_marker = if more {
            items.last().map(|b| b.id)
        } else {
            None
        };
        Ok(Page {
            items: items
                .into_iter()
                .map(|b| {
                    let p = protected.contains(&b.id);
                    BackupView::new(b, p)
                })
                .collect(),
            next_marker,
        })
    });
    Ok(answer.await?)
}

/// One backup.
#[utoipa::path(get, path = "/api/v1/backups/{id}", tag = "backups",
    params(("id" = Uuid, Path, description = "backup id")),
    responses((status = 200, body = BackupView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(State(state): State<Arc<AppState>>, Path(id): Path<Uuid>) -> ApiResult<Response> {
    let answer = cached_json(state, format!("show {id}"), move |state| {
        let backup = state.catalog.backup(id)?;
        let p = state.catalog.protected_backups()?.contains(&id);
        Ok(BackupView::new(backup, p))
    });
    Ok(answer.await?)
}

/// A backup to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBackup {
    /// The registered volume: its id or its name.
    pub volume: String,
    #[serde(default)]
    pub mode: BackupMode,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Volume metadata stored with the backup and set on restored images.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The backup's id, when the client chooses it (a UUID; Cinder's
    /// backup id) [default: a new one].
    pub id: Option<String>,
    /// The `backup.<id>.meta` object's JSON, stored as given (Cinder's
    /// backup metadata, as its backup drivers write it) [default: one
    /// made from the volume's name and `metadata`].
    pub metadata_object: Option<String>,
}

/// Queues a backup of a registered volume; the job's `backup_id` is the
/// id the backup will have.
#[utoipa::path(post, path = "/api/v1/backups", tag = "backups", request_body = CreateBackup,
    responses((status = 202, body = JobView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Json(body): Json<CreateBackup>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let chosen = Chosen {
        id: chosen_id("backup", body.id.as_deref())?,
        metadata_object: body.metadata_object,
    };
    let job = blocking(move || {
        let volume = find_volume(&state, &body.volume)?;
        let mut labels = BTreeMap::new();
        if let Some(n) = body.name {
            labels.insert(label::NAME.to_string(), n);
        }
        if let Some(d) = body.description {
            labels.insert(label::DESCRIPTION.to_string(), d);
        }
        state.submit_backup(&volume, body.mode, labels, body.metadata, chosen)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// A registered volume by id or by unique name.
pub fn find_volume(state: &AppState, given: &str) -> Result<VolumeRecord, ServiceError> {
    if let Ok(id) = Uuid::parse_str(given) {
        return state.registered_volume(id);
    }
    let named: Vec<_> = state
        .registered_volumes()?
        .into_iter()
        .filter(|v| v.name == given)
        .collect();
    match named.len() {
        1 => Ok(named.into_iter().next().expect("one")),
        0 => Err(ServiceError::NotFound(format!(
            "no registered volume has the id or name {given:?}"
        ))),
        n => Err(ServiceError::Invalid(format!(
            "{n} registered volumes are named {given:?}; give the volume id"
        ))),
    }
}

/// Queues the delete of a backup (available or error).
#[utoipa::path(delete, path = "/api/v1/backups/{id}", tag = "backups",
    params(("id" = Uuid, Path, description = "backup id")),
    responses((status = 202, body = JobView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let job = blocking(move || {
        let backup = state.catalog.backup(id)?;
        state.submit_delete(&backup, false)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// Where to restore: exactly one of the fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBackup {
    /// Onto this registered volume (written over).
    pub volume_id: Option<Uuid>,
    /// Into a new RBD volume of this name, in the pool of the backup's
    /// source (registered when the restore starts).
    pub new_volume_name: Option<String>,
    /// Into this file (new, or written over), under a configured restore directory.
    pub path: Option<String>,
}

/// Queues a restore of an available backup.
#[utoipa::path(post, path = "/api/v1/backups/{id}/restore", tag = "backups",
    params(("id" = Uuid, Path, description = "backup id")), request_body = RestoreBackup,
    responses((status = 202, body = JobView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn restore(
    State(state): State<Arc<AppState>>,
    Path(id): Path<Uuid>,
    Json(body): Json<RestoreBackup>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let target = match (body.volume_id, body.new_volume_name, body.path) {
        (Some(volume_id), None, None) => RestoreTarget::Volume { volume_id },
        (None, Some(name), None) if !name.trim().is_empty() => RestoreTarget::NewVolume {
            volume_id: Uuid::new_v4(),
            name,
        },
        (None, None, Some(path)) => RestoreTarget::File { path },
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of volume_id, new_volume_name (not empty) and path",
            ))
        }
    };
    let job = blocking(move || {
        let backup = state.catalog.backup(id)?;
        state.submit_restore(&backup, target)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}
