//! /v3/{p}/volumes: the lookups the clients make for registered volumes.

use super::context::Ctx;
use super::fault::{CinderResult, Fault};
use super::list::{ListQuery, VOLUME_FILTERS};
use super::views::{summary, volume_detail};
use crate::state::{blocking, AppState};
use axum::extract::{Path, RawQuery, State};
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

fn all_details(state: &AppState, ctx: &Ctx) -> Result<Vec<Value>, crate::state::ServiceError> {
    let active = state.active_jobs(|_| {})?;
    let volumes = state.registered_volumes()?;
    Ok(volumes
        .iter()
        .map(|v| volume_detail(ctx, v, &active))
        .collect())
}

async fn list(
    state: Arc<AppState>,
    ctx: Ctx,
    query: Option<String>,
    detail: bool,
) -> CinderResult<axum::Json<Value>> {
    let q = ListQuery::parse(query.as_deref().unwrap_or(""), ctx.version, VOLUME_FILTERS)?;
    let url = format!(
        "{}/{}",
        ctx.api_url(),
        if detail { "volumes/detail" } else { "volumes" }
    );
    let all = blocking(move || all_details(&state, &ctx)).await?;
    let page = q.apply(all)?;
    let items: Vec<Value> = match detail {
        true => page.items.clone(),
        false => page.items.iter().map(summary).collect(),
    };
    let mut body = json!({ "volumes": items });
    page.decorate(&mut body, "volumes", &url, &q);
    Ok(axum::Json(body))
}

/// GET /volumes
pub async fn list_summary(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    RawQuery(q): RawQuery,
) -> CinderResult<axum::Json<Value>> {
    list(state, ctx, q, false).await
}

/// GET /volumes/detail
pub async fn list_detail(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    RawQuery(q): RawQuery,
) -> CinderResult<axum::Json<Value>> {
    list(state, ctx, q, true).await
}

/// GET /volumes/{id}: 404 for unknown and non-UUID ids (clients then
/// search by name).
pub async fn show(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(params): Path<Vec<(String, String)>>,
) -> CinderResult<axum::Json<Value>> {
    let id = super::context::id_param(&params);
    let missing = || Fault::not_found(format!("Volume {id} could not be found."));
    let uuid = Uuid::parse_str(&id).map_err(|_| missing())?;
    let found = blocking(move || {
        let volume = state.registered_volume(uuid)?;
        let active = state.active_jobs(|f| f.volume_id = Some(uuid))?;
        Ok(volume_detail(&ctx, &volume, &active))
    })
    .await
    .map_err(|_| missing())?;
    Ok(axum::Json(json!({ "volume": found })))
}
