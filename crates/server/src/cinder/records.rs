//! export_record / import_record: a backup's catalog record as base64
//! JSON, so another blockback (or this one, after its catalog was lost)
//! can take the backup over. Importing checks the data is in the store.

use super::context::Ctx;
use super::fault::{Body, CinderResult, Fault};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use blockback_core::catalog::{BackupRecord, BackupStatus, VolumeRecord};
use blockback_core::engine::unix_now;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

/// The `backup_service` of records blockback exports.
pub const SERVICE: &str = "blockback";

/// GET /backups/{id}/export_record
pub async fn export(
    State(state): State<Arc<AppState>>,
    Path(params): Path<Vec<(String, String)>>,
) -> CinderResult<axum::Json<Value>> {
    let id = super::context::id_param(&params);
    let missing = || Fault::not_found(format!("Backup {id} could not be found."));
    let uuid = Uuid::parse_str(&id).map_err(|_| missing())?;
    let record = tokio::task::spawn_blocking(move || state.catalog.backup(uuid))
        .await
        .map_err(|e| Fault::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|_| missing())?;
    if record.status != BackupStatus::Available {
        return Err(Fault::bad_request(format!(
            "Invalid backup: Backup status must be available and not {}.",
            record.status
        )));
    }
    let text = serde_json::to_vec(&record)
        .map_err(|e| Fault::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let url = base64::engine::general_purpose::STANDARD.encode(text);
    Ok(axum::Json(
        json!({"backup-record": {"backup_service": SERVICE, "backup_url": url}}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    #[serde(rename = "backup-record")]
    record: ImportRecord,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRecord {
    backup_service: String,
    backup_url: String,
}

/// POST /backups/import_record
pub async fn import(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Body(body): Body<ImportBody>,
) -> CinderResult<(StatusCode, axum::Json<Value>)> {
    let r = body.record;
    if r.backup_service != SERVICE {
        return Err(Fault::bad_request(format!(
            "Invalid input received: backup service {:?} is not supported; records exported by blockback have {SERVICE:?}",
            r.backup_service
        )));
    }
    let record = decode(&r.backup_url)?;
    let record = tokio::task::spawn_blocking(move || take_over(&state, record))
        .await
        .map_err(|e| Fault::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let id = record.id.to_string();
    let name = json!(record.metadata.get(crate::jobs::request::label::NAME));
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"backup": {"id": id, "name": name, "links": ctx.links("backups", &id)}})),
    ))
}

fn decode(url: &str) -> CinderResult<BackupRecord> {
    let bad =
        |why: String| Fault::bad_request(format!("Invalid input received: backup_url: {why}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(url.trim())
        .map_err(|e| bad(format!("not base64: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a blockback backup record: {e}")))
}

/// Records an exported backup after checking its data is in the store.
fn take_over(state: &AppState, mut record: BackupRecord) -> CinderResult<BackupRecord> {
    if state.catalog.backup(record.id).is_ok() {
        return Err(Fault::bad_request(format!(
            "Invalid backup: Backup {} already exists in the catalog.",
            record.id
        )));
    }
    state
        .backend
        .check_backup_data(&record)
        .map_err(|e| Fault::bad_request(format!("Invalid backup: {e}")))?;
    if state.catalog.volume(record.volume_id).is_err() {
        let name = record
            .metadata
            .get("volume.name")
            .cloned()
            .unwrap_or_default();
        let volume = VolumeRecord::new(record.volume_id, record.source.clone(), name, unix_now());
        state.catalog.insert_volume(&volume)?;
    }
    record.status = BackupStatus::Available;
    record.pid = None;
    record.updated_at = unix_now();
    state.catalog.insert_backup(&record)?;
    tracing::info!(backup_id = %record.id, "backup record imported");
    Ok(record)
}
