//! The OpenAPI document of the native API, generated from the handlers'
//! annotations and the view types (never written by hand).

use super::{backups, exports, jobs, system, volumes};
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "blockback", description = "The native API of `blockback serve`: registered volumes, backups, exports over NBD, jobs, stores, health."),
    paths(
        volumes::list, volumes::register, volumes::show, volumes::unregister,
        backups::list, backups::show, backups::create, backups::delete, backups::restore,
        exports::list, exports::open, exports::close,
        jobs::list, jobs::show, jobs::cancel,
        system::live, system::ready, system::stores,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// GET /api/v1/openapi.json
pub async fn document() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}
