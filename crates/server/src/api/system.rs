//! Health and stores.

use super::views::{HealthView, StoreView};
use super::{ApiResult, Json};
use crate::state::{blocking, AppState, ServiceError};
use axum::extract::State;
use axum::http::StatusCode;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/api/v1/health/live", tag = "health",
    responses((status = 200, body = HealthView)))]
pub async fn live() -> Json<HealthView> {
    Json(HealthView::new(BTreeMap::new()))
}

/// Readiness: the catalog answers and every configured cluster is reachable.
#[utoipa::path(get, path = "/api/v1/health/ready", tag = "health",
    responses((status = 200, body = HealthView), (status = 503, body = HealthView)))]
pub async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, Json<HealthView>) {
    let checks = blocking(move || {
        let mut checks = BTreeMap::new();
        let catalog = match state.catalog.list_volumes() {
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        checks.insert("catalog".to_string(), catalog);
        for (name, result) in state.backend.check_clusters() {
            let status = result.err().unwrap_or_else(|| "ok".into());
            checks.insert(format!("cluster {name}"), status);
        }
        Ok(checks)
    })
    .await
    .unwrap_or_else(|e| BTreeMap::from([("service".to_string(), e.to_string())]));
    let view = HealthView::new(checks);
    let status = match view.status.as_str() {
        "ok" => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(view))
}

/// The backup store: its usage and its backups by status.
#[utoipa::path(get, path = "/api/v1/stores", tag = "stores",
    responses((status = 200, body = [StoreView])), security(("bearer" = [])))]
pub async fn stores(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<StoreView>>> {
    let view = blocking(move || {
        let used_bytes = state
            .backend
            .store_usage()
            .map_err(ServiceError::Internal)?;
        let store = state.backend.store_label();
        let mut backups = BTreeMap::new();
        for b in state.catalog.list_backups(None)? {
            if b.store == store {
                *backups.entry(b.status.as_str().to_string()).or_default() += 1;
            }
        }
        Ok(StoreView {
            store,
            used_bytes,
            backups,
        })
    })
    .await?;
    Ok(Json(vec![view]))
}
