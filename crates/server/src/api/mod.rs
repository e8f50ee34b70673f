//! The native API under /api/v1: JSON in and out, errors as
//! `{"error": {"code": N, "message": "..."}}`, bearer-token auth (GET needs
//! the read role, everything else admin), documented by the OpenAPI
//! document generated from these handlers (`openapi.rs`).

mod backups;
mod exports;
mod jobs;
pub mod openapi;
mod system;
pub mod views;
mod volumes;

use crate::auth::{Caller, Role};
use crate::state::{AppState, ServiceError};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// An error answer of the native API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

/// The body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

/// An id a client chose for a new `what` (volume, backup): a UUID, else 400.
pub fn chosen_id(what: &str, given: Option<&str>) -> ApiResult<Option<uuid::Uuid>> {
    given
        .map(|text| {
            uuid::Uuid::parse_str(text).map_err(|_| {
                ApiError::bad_request(format!(
                    "{what} id {text:?} is not a UUID; give one like 8c4a32a5-2c4e-4b4e-9d6c-0f1b5e2a7d10, or none"
                ))
            })
        })
        .transpose()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), "{}", self.message);
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.status.as_u16(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError::new(e.status(), e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::new(r.status(), format!("request body: {}", r.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(format!("query: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("path: {}", r.body_text()))
    }
}

/// A JSON body whose rejections are [`ApiError`]s.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A query string whose rejections are [`ApiError`]s.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// A path parameter whose rejections are [`ApiError`]s (a malformed id
/// is "not found").
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

pub type ApiResult<T> = Result<T, ApiError>;

/// The /api/v1 routes.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let authed = Router::new()
        .route("/volumes", get(volumes::list).post(volumes::register))
        .route(
            "/volumes/{id}",
            get(volumes::show).delete(volumes::unregister),
        )
        .route("/backups", get(backups::list).post(backups::create))
        .route("/backups/{id}", get(backups::show).delete(backups::delete))
        .route("/backups/{id}/restore", post(backups::restore))
        .route("/exports", get(exports::list).post(exports::open))
        .route(
            "/exports/{backup_id}",
            axum::routing::delete(exports::close),
        )
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(jobs::show))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/stores", get(system::stores))
        .layer(axum::middleware::from_fn_with_state(state, require_token));
    Router::new()
        .route("/health/live", get(system::live))
        .route("/health/ready", get(system::ready))
        .route("/openapi.json", get(openapi::document))
        .merge(authed)
}

/// Checks the bearer token and the role the method needs.
async fn require_token(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let needed = match *request.method() {
        Method::GET | Method::HEAD => Role::Read,
        _ => Role::Admin,
    };
    match authorize(&state, request.headers(), needed) {
        Ok(caller) => {
            tracing::debug!(caller = %caller.name, "authorized");
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// The caller a bearer token names, if its role suffices.
pub fn authorize(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    needed: Role,
) -> ApiResult<Caller> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send `Authorization: Bearer <token>` (see `blockback serve token`)",
        ));
    };
    let Some(caller) = state.tokens.check(token) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the bearer token is not valid",
        ));
    };
    if caller.role < needed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} is read-only; this request needs an admin token",
                caller.name
            ),
        ));
    }
    Ok(caller)
}
