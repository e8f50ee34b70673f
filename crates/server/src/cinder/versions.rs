//! Version discovery: `GET /` (300, cinderclient) and `GET /v3[/]` (200,
//! openstacksdk), the document Cinder serves.

use super::context::host_url;
use super::MAX_MINOR;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::sync::Arc;

fn document(state: &AppState, headers: &HeaderMap) -> serde_json::Value {
    let self_href = format!("{}/v3/", host_url(state, headers));
    serde_json::json!({"versions": [{
        "id": "v3.0",
        "status": "CURRENT",
        "version": format!("3.{MAX_MINOR}"),
        "min_version": "3.0",
        "updated": "2023-08-31T00:00:00Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": self_href},
        ],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.volume+json;version=3",
        }],
    }]})
}

/// GET /
pub async fn root(State(state): State<Arc<AppState>>, headers: HeaderMap) -> impl IntoResponse {
    (
        StatusCode::MULTIPLE_CHOICES,
        axum::Json(document(&state, &headers)),
    )
}

/// GET /v3 and /v3/
pub async fn v3(State(state): State<Arc<AppState>>, headers: HeaderMap) -> impl IntoResponse {
    (StatusCode::OK, axum::Json(document(&state, &headers)))
}
