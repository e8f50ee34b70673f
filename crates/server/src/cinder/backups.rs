//! /v3/{p}/backups: create, list, detail, show, update, delete, restore,
//! actions (os-reset_status, os-force_delete).

use super::context::{id_param, Ctx};
use super::fault::{Body, CinderResult, Fault};
use super::list::{self, ListQuery};
use super::views::{backup_detail, summary, BackupFacts};
use crate::jobs::request::{label, BackupMode, RestoreTarget};
use crate::state::{blocking, check_label, AppState, Chosen, ServiceError};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use blockback_core::catalog::{BackupRecord, BackupStatus, CatalogError, JobKind, JobState};
use blockback_core::engine::unix_now;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// Every backup as a detail view: the catalog's records, then backups
/// whose job has not created the record yet.
fn all_details(state: &AppState, ctx: &Ctx) -> Result<Vec<Value>, ServiceError> {
    let records = state.catalog.list_backups(None)?;
    let parents: HashSet<Uuid> = records.iter().filter_map(|b| b.parent).collect();
    let mut out: Vec<Value> = records
        .iter()
        .map(|b| backup_detail(ctx, &BackupFacts::of_record(b, parents.contains(&b.id))))
        .collect();
    let known: HashSet<Uuid> = records.iter().map(|b| b.id).collect();
    for job in state.active_jobs(|_| {})? {
        if job.backup_id.is_some_and(|b| known.contains(&b)) {
            continue;
        }
        if let Some(facts) = BackupFacts::of_job(&job, volume_size(state, job.volume_id)) {
            out.push(backup_detail(ctx, &facts));
        }
    }
    Ok(out)
}

fn volume_size(state: &AppState, volume: Uuid) -> Option<u64> {
    state.catalog.volume(volume).ok().and_then(|v| v.size)
}

/// One backup by id: its record (and its volume's others, for whether it
/// has dependents), else the job that will create it; 404 for unknown and
/// non-UUID ids (clients probe names this way before searching).
fn one_detail(state: &AppState, ctx: &Ctx, id: &str) -> CinderResult<Value> {
    let missing = || Fault::not_found(format!("Backup {id} could not be found."));
    let uuid = Uuid::parse_str(id).map_err(|_| missing())?;
    match state.catalog.backup(uuid) {
        Ok(b) => {
            let siblings = state.catalog.list_backups(Some(b.volume_id))?;
            let dependents = siblings.iter().any(|c| c.parent == Some(b.id));
            Ok(backup_detail(ctx, &BackupFacts::of_record(&b, dependents)))
        }
        Err(CatalogError::BackupNotFound(_)) => {
            let jobs = state.active_jobs(|f| f.backup_id = Some(uuid))?;
            jobs.iter()
                .find_map(|j| BackupFacts::of_job(j, volume_size(state, j.volume_id)))
                .map(|facts| backup_detail(ctx, &facts))
                .ok_or_else(missing)
        }
        Err(e) => Err(ServiceError::from(e).into()),
    }
}

fn record(state: &AppState, id: &str) -> CinderResult<BackupRecord> {
    let missing = || Fault::not_found(format!("Backup {id} could not be found."));
    let uuid = Uuid::parse_str(id).map_err(|_| missing())?;
    state.catalog.backup(uuid).map_err(|_| missing())
}

/// GET /backups
pub async fn list_summary(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    RawQuery(query): RawQuery,
) -> CinderResult<impl IntoResponse> {
    list_backups(state, ctx, query, false).await
}

/// GET /backups/detail
pub async fn list_detail(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    RawQuery(query): RawQuery,
) -> CinderResult<impl IntoResponse> {
    list_backups(state, ctx, query, true).await
}

async fn list_backups(
    state: Arc<AppState>,
    ctx: Ctx,
    query: Option<String>,
    detail: bool,
) -> CinderResult<axum::Json<Value>> {
    let q = ListQuery::parse(
        query.as_deref().unwrap_or(""),
        ctx.version,
        list::BACKUP_FILTERS,
    )?;
    let path = if detail { "backups/detail" } else { "backups" };
    let all = {
        let ctx = ctx.clone();
        blocking(move || all_details(&state, &ctx)).await?
    };
    let page = q.apply(all)?;
    let items: Vec<Value> = match detail {
        true => page.items.clone(),
        false => page.items.iter().map(summary).collect(),
    };
    let mut body = json!({ "backups": items });
    page.decorate(
        &mut body,
        "backups",
        &format!("{}/{path}", ctx.api_url()),
        &q,
    );
    Ok(axum::Json(body))
}

/// GET /backups/{id}
pub async fn show(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(params): Path<Vec<(String, String)>>,
) -> CinderResult<axum::Json<Value>> {
    let id = id_param(&params);
    let detail = blocking_fault(move || one_detail(&state, &ctx, &id)).await?;
    Ok(axum::Json(json!({ "backup": detail })))
}

async fn blocking_fault<T: Send + 'static>(
    work: impl FnOnce() -> CinderResult<T> + Send + 'static,
) -> CinderResult<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .unwrap_or_else(|e| {
            Err(Fault::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("worker thread failed: {e}"),
            ))
        })
}

/// A boolean or a boolean-like string, as Cinder's schema takes them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn value(&self, what: &str) -> CinderResult<bool> {
        match self {
            Flag::Bool(b) => Ok(*b),
            Flag::Text(t) => match t.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
                "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
                _ => Err(Fault::bad_request(format!(
                    "Invalid input for field/attribute {what}. Value: {t}. It is not a boolean."
                ))),
            },
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    backup: CreateBackup,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBackup {
    volume_id: Option<String>,
    container: Option<String>,
    name: Option<String>,
    description: Option<String>,
    incremental: Option<Flag>,
    force: Option<Flag>,
    snapshot_id: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    availability_zone: Option<String>,
}

/// POST /backups
pub async fn create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Body(body): Body<CreateBody>,
) -> CinderResult<(StatusCode, axum::Json<Value>)> {
    let b = body.backup;
    let volume_id = b
        .volume_id
        .clone()
        .ok_or_else(|| Fault::bad_request("Invalid input: 'volume_id' is a required property"))?;
    let volume_uuid = Uuid::parse_str(&volume_id).map_err(|_| {
        Fault::bad_request(format!(
            "Invalid input: volume_id {volume_id:?} is not a UUID"
        ))
    })?;
    if b.snapshot_id.is_some() {
        return Err(Fault::bad_request(
            "Invalid input: backups of volume snapshots are not supported by blockback; back up the volume",
        ));
    }
    let incremental = b
        .incremental
        .as_ref()
        .map(|f| f.value("incremental"))
        .transpose()?;
    b.force.as_ref().map(|f| f.value("force")).transpose()?;
    let mut labels = BTreeMap::new();
    for (key, value) in [
        (label::NAME, b.name),
        (label::DESCRIPTION, b.description),
        (label::CONTAINER, b.container),
        ("backup.availability_zone", b.availability_zone),
    ] {
        if let Some(v) = value {
            labels.insert(key.to_string(), v);
        }
    }
    for (k, v) in b.metadata.unwrap_or_default() {
        labels.insert(format!("{}{k}", label::META), v);
    }
    let mode = match incremental {
        Some(true) => BackupMode::Incremental,
        _ => BackupMode::Full,
    };
    let job = blocking_fault(move || {
        let volume = state
            .registered_volume(volume_uuid)
            .map_err(|_| Fault::not_found(format!("Volume {volume_id} could not be found.")))?;
        Ok(state.submit_backup(&volume, mode, labels, BTreeMap::new(), Chosen::default())?)
    })
    .await?;
    let id = job.backup_id.map(|b| b.to_string()).unwrap_or_default();
    let name = job_label(&job.request, label::NAME);
    let body = json!({"backup": {"id": id, "name": name, "links": ctx.links("backups", &id)}});
    Ok((StatusCode::ACCEPTED, axum::Json(body)))
}

fn job_label(request: &str, key: &str) -> Value {
    match crate::jobs::request::JobRequest::from_json(request) {
        Ok(crate::jobs::request::JobRequest::Backup { labels, .. }) => json!(labels.get(key)),
        _ => Value::Null,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    backup: UpdateBackup,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBackup {
    name: Option<String>,
    description: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
}

/// PUT /backups/{id} (3.9 and later)
pub async fn update(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(params): Path<Vec<(String, String)>>,
    Body(body): Body<UpdateBody>,
) -> CinderResult<axum::Json<Value>> {
    if !ctx.at_least(9) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    let id = id_param(&params);
    let u = body.backup;
    let updated = blocking_fault(move || {
        let mut b = record(&state, &id)?;
        for (key, value) in [(label::NAME, u.name), (label::DESCRIPTION, u.description)] {
            if let Some(v) = value {
                check_label(key, &v)?;
                b.metadata.insert(key.to_string(), v);
            }
        }
        if let Some(meta) = u.metadata {
            b.metadata.retain(|k, _| !k.starts_with(label::META));
            for (k, v) in meta {
                check_label(&k, &v)?;
                b.metadata.insert(format!("{}{k}", label::META), v);
            }
        }
        b.updated_at = unix_now();
        state.catalog.update_backup(&b)?;
        Ok(b)
    })
    .await?;
    let id = updated.id.to_string();
    let name = json!(updated.metadata.get(label::NAME));
    Ok(axum::Json(
        json!({"backup": {"id": id, "name": name, "links": ctx.links("backups", &id)}}),
    ))
}

/// DELETE /backups/{id}
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(params): Path<Vec<(String, String)>>,
) -> CinderResult<StatusCode> {
    let id = id_param(&params);
    blocking_fault(move || {
        let b = record(&state, &id)?;
        state.submit_delete(&b, false)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    restore: RestoreRequest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreRequest {
    volume_id: Option<String>,
    name: Option<String>,
}

/// POST /backups/{id}/restore: onto a registered volume, or into a new
/// volume (named `name`, or `restore_backup_<id>`).
pub async fn restore(
    State(state): State<Arc<AppState>>,
    Path(params): Path<Vec<(String, String)>>,
    Body(body): Body<RestoreBody>,
) -> CinderResult<(StatusCode, axum::Json<Value>)> {
    let id = id_param(&params);
    let r = body.restore;
    let answer = blocking_fault(move || {
        let b = record(&state, &id)?;
        let (target, volume_id, volume_name) = restore_target(&state, &b, r)?;
        state.submit_restore(&b, target)?;
        Ok(json!({"restore": {"backup_id": id, "volume_id": volume_id, "volume_name": volume_name}}))
    })
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(answer)))
}

fn restore_target(
    state: &AppState,
    b: &BackupRecord,
    r: RestoreRequest,
) -> CinderResult<(RestoreTarget, Uuid, String)> {
    if let Some(vid) = r.volume_id {
        let missing = || Fault::not_found(format!("Volume {vid} could not be found."));
        let uuid = Uuid::parse_str(&vid).map_err(|_| missing())?;
        let volume = state.registered_volume(uuid).map_err(|_| missing())?;
        if let Some(size) = volume.size.filter(|s| *s < b.size) {
            return Err(Fault::bad_request(format!(
                "Invalid volume: volume size {} is too small to restore backup of size {}.",
                super::views::gib(size),
                super::views::gib(b.size)
            )));
        }
        return Ok((RestoreTarget::Volume { volume_id: uuid }, uuid, volume.name));
    }
    let name = r.name.unwrap_or_else(|| format!("restore_backup_{}", b.id));
    check_label("name", &name)?;
    let volume_id = Uuid::new_v4();
    let target = RestoreTarget::NewVolume {
        volume_id,
        name: name.clone(),
    };
    Ok((target, volume_id, name))
}

/// POST /backups/{id}/action: `os-reset_status` or `os-force_delete`.
pub async fn action(
    State(state): State<Arc<AppState>>,
    Path(params): Path<Vec<(String, String)>>,
    Body(body): Body<serde_json::Map<String, Value>>,
) -> CinderResult<StatusCode> {
    let id = id_param(&params);
    let (name, args) = match body.iter().next() {
        Some((k, v)) if body.len() == 1 => (k.clone(), v.clone()),
        _ => return Err(Fault::bad_request("Invalid input: give exactly one action")),
    };
    match name.as_str() {
        "os-reset_status" => {
            let status = reset_status_of(&args)?;
            blocking_fault(move || reset_status(&state, &id, status)).await?
        }
        "os-force_delete" => blocking_fault(move || force_delete(&state, &id)).await?,
        other => {
            return Err(Fault::bad_request(format!(
                "There is no such action: {other}"
            )))
        }
    }
    Ok(StatusCode::ACCEPTED)
}

fn reset_status_of(args: &Value) -> CinderResult<BackupStatus> {
    let given = args["status"].as_str().unwrap_or("").to_ascii_lowercase();
    match given.as_str() {
        "available" => Ok(BackupStatus::Available),
        "error" => Ok(BackupStatus::Error),
        _ => Err(Fault::bad_request(format!(
            "Invalid input received: Backup status: {given} is invalid, valid statuses are: ['available', 'error']."
        ))),
    }
}

fn reset_status(state: &AppState, id: &str, status: BackupStatus) -> CinderResult<()> {
    let mut b = record(state, id)?;
    let running = state.active_jobs(|f| f.backup_id = Some(b.id))?;
    if running.iter().any(|j| j.state == JobState::Running) {
        return Err(Fault::bad_request(format!(
            "Invalid backup: a job is running on backup {id}; cancel it or wait for it"
        )));
    }
    b.status = status;
    b.updated_at = unix_now();
    state.catalog.update_backup(&b)?;
    tracing::warn!(backup_id = %b.id, status = %status, "backup status reset by an administrator");
    Ok(())
}

/// Cancels a backup still being made, and deletes the backup whatever
/// its status.
fn force_delete(state: &AppState, id: &str) -> CinderResult<()> {
    let uuid = Uuid::parse_str(id)
        .map_err(|_| Fault::not_found(format!("Backup {id} could not be found.")))?;
    let pending = state.active_jobs(|f| f.backup_id = Some(uuid))?;
    for job in pending.iter().filter(|j| j.kind == JobKind::Backup) {
        state.cancel_job(job.id)?;
    }
    match state.catalog.backup(uuid) {
        Ok(b) => {
            state.submit_delete(&b, true)?;
            Ok(())
        }
        Err(_) if !pending.is_empty() => Ok(()),
        Err(_) => Err(Fault::not_found(format!("Backup {id} could not be found."))),
    }
}
