//! /api/v1/jobs: the queue.

use super::views::JobView;
use super::{ApiResult, ErrorBody, Json, Path, Query};
use crate::state::{blocking, AppState, ServiceError};
use axum::extract::State;
use blockback_core::catalog::{JobFilter, JobState};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: Option<String>,
    pub volume_id: Option<Uuid>,
    pub backup_id: Option<Uuid>,
}

/// Jobs, oldest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, body = [JobView]), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<JobQuery>,
) -> ApiResult<Json<Vec<JobView>>> {
    let filter = JobFilter {
        state: q.state.as_deref().map(parse_state).transpose()?,
        volume_id: q.volume_id,
        backup_id: q.backup_id,
    };
    let jobs = blocking(move || Ok(state.catalog.list_jobs(&filter)?)).await?;
    Ok(Json(jobs.into_iter().map(JobView::from).collect()))
}

fn parse_state(text: &str) -> Result<JobState, ServiceError> {
    JobState::parse(text).ok_or_else(|| {
        ServiceError::Invalid(format!(
            "state {text:?}: give queued, running, succeeded, failed or cancelled"
        ))
    })
}

/// One job, with its phase, progress, rate and ETA.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<JobView>> {
    let job = blocking(move || Ok(state.catalog.job(id)?)).await?;
    Ok(Json(job.into()))
}

/// Cancels a job: a queued one at once, a running one within a heartbeat
/// (its partial state is cleaned up; nothing half-made is published).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 202, body = JobView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<Uuid>,
) -> ApiResult<(axum::http::StatusCode, Json<JobView>)> {
    let job = blocking(move || state.cancel_job(id)).await?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(job.into())))
}
