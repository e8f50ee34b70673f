//! /api/v1/volumes: registered volumes.

use super::views::VolumeView;
use super::{chosen_id, ApiError, ApiResult, ErrorBody, Json, Path};
use crate::state::{blocking, AppState, NewVolume};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

/// A volume to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterVolume {
    /// The volume's id, when the client chooses it (a UUID; Cinder's
    /// volume id, which backup image names carry) [default: a new one].
    pub id: Option<String>,
    /// A name for people and for Cinder clients' lookups by name.
    pub name: String,
    /// `rbd:POOL/IMAGE`, an image file or a block device.
    pub source: String,
    /// The configured cluster an RBD source is on [default: `default`].
    pub cluster: Option<String>,
}

/// Registered volumes, oldest first.
#[utoipa::path(get, path = "/api/v1/volumes", tag = "volumes",
    responses((status = 200, body = [VolumeView]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<VolumeView>>> {
    let volumes = blocking(move || state.registered_volumes()).await?;
    Ok(Json(volumes.into_iter().map(VolumeView::from).collect()))
}

/// Registers a volume (its source must be reachable). A source that
/// earlier backups already recorded keeps its id, so its chain continues.
#[utoipa::path(post, path = "/api/v1/volumes", tag = "volumes", request_body = RegisterVolume,
    responses((status = 201, body = VolumeView), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn register(
    State(state): State<Arc<AppState>>,
    Json(body): Json<RegisterVolume>,
) -> ApiResult<(StatusCode, Json<VolumeView>)> {
    if body.name.trim().is_empty() || body.source.trim().is_empty() {
        return Err(ApiError::bad_request("name and source must not be empty"));
    }
    let new = NewVolume {
        id: chosen_id("volume", body.id.as_deref())?,
        name: body.name,
        source: body.source,
        cluster: body.cluster,
    };
    let volume = blocking(move || state.register_volume(new)).await?;
    Ok((StatusCode::CREATED, Json(volume.into())))
}

/// One registered volume.
#[utoipa::path(get, path = "/api/v1/volumes/{id}", tag = "volumes",
    params(("id" = Uuid, Path, description = "volume id")),
    responses((status = 200, body = VolumeView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<VolumeView>> {
    let volume = blocking(move || state.registered_volume(id)).await?;
    Ok(Json(volume.into()))
}

/// Unregisters a volume; its backups stay (listed, restorable, deletable).
#[utoipa::path(delete, path = "/api/v1/volumes/{id}", tag = "volumes",
    params(("id" = Uuid, Path, description = "volume id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unregister(
    State(state): State<Arc<AppState>>,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    blocking(move || state.unregister_volume(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
