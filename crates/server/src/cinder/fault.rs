//! Cinder's error bodies: `{"<faultName>": {"code": N, "message": "..."}}`.

use crate::state::ServiceError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct Fault {
    pub status: StatusCode,
    pub message: String,
}

pub type CinderResult<T> = Result<T, Fault>;

impl Fault {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Fault {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// Cinder's fault name for a status.
    fn name(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "badRequest",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "itemNotFound",
            405 => "badMethod",
            409 => "conflictingRequest",
            413 => "overLimit",
            415 => "badMediaType",
            501 => "notImplemented",
            503 => "serviceUnavailable",
            _ => "computeFault",
        }
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), "{}", self.message);
        }
        let body = serde_json::json!({
            self.name(): {"code": self.status.as_u16(), "message": self.message}
        });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<ServiceError> for Fault {
    fn from(e: ServiceError) -> Self {
        Fault::new(e.status(), e.to_string())
    }
}

impl From<blockback_core::catalog::CatalogError> for Fault {
    fn from(e: blockback_core::catalog::CatalogError) -> Self {
        ServiceError::from(e).into()
    }
}

/// A JSON body whose rejections are Cinder faults.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = Fault;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Fault> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| Fault::new(e.status(), e.body_text()))?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| Fault::bad_request(format!("Invalid input received: {e}")))
    }
}
