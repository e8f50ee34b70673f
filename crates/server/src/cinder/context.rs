//! What every Cinder request carries: the negotiated microversion, who
//! calls (token or noauth), and the base of the links in answers.

use super::fault::Fault;
use super::MAX_MINOR;
use crate::auth::Role;
use crate::state::AppState;
use axum::extract::{FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The negotiated microversion's minor number (3.N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion(pub u32);

const VERSION_HEADER: &str = "openstack-api-version";

/// Reads `OpenStack-API-Version: volume 3.N` (absent: 3.0; `latest`: the
/// maximum), refuses what is malformed (400) or out of range (406), and
/// echoes the version on the answer.
pub async fn negotiate(mut request: Request, next: Next) -> Response {
    let version = match requested_version(request.headers()) {
        Ok(v) => v,
        Err(f) => return f.into_response(),
    };
    request.extensions_mut().insert(ApiVersion(version));
    let request_id = request.headers().get(crate::server::REQUEST_ID).cloned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("volume 3.{version}")) {
        headers.insert(VERSION_HEADER, v);
    }
    headers.insert(
        header::VARY,
        HeaderValue::from_static("OpenStack-API-Version"),
    );
    if let Some(id) = request_id {
        headers.insert("x-compute-request-id", id);
    }
    response
}

fn requested_version(headers: &HeaderMap) -> Result<u32, Fault> {
    let Some(value) = headers.get(VERSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return Ok(0);
    };
    let Some(item) = value
        .split(',')
        .map(str::trim)
        .find_map(|i| i.strip_prefix("volume "))
    else {
        return Ok(0);
    };
    let item = item.trim();
    if item == "latest" {
        return Ok(MAX_MINOR);
    }
    let invalid = || {
        Fault::bad_request(format!(
            "API Version String {item} is of invalid format. Must be of format MajorNum.MinorNum."
        ))
    };
    let (major, minor) = item.split_once('.').ok_or_else(invalid)?;
    let (major, minor): (u32, u32) = (
        major.parse().map_err(|_| invalid())?,
        minor.parse().map_err(|_| invalid())?,
    );
    if major != 3 || minor > MAX_MINOR {
        return Err(Fault::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Version {item} is not supported by the API. Minimum is 3.0 and maximum is 3.{MAX_MINOR}."
            ),
        ));
    }
    Ok(minor)
}

/// The caller: a token's name, or with noauth the `user:project` of
/// `X-Auth-Token` (Cinder's own noauth format).
#[derive(Debug, Clone, Default)]
pub struct CinderCaller {
    pub user: Option<String>,
    pub project: Option<String>,
}

/// Checks `X-Auth-Token` (reads need the read role, changes admin), or
/// trusts it under noauth (allowed only on a loopback listener).
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let caller =
        if state.config.cinder.noauth {
            let (user, project) = token.split_once(':').unwrap_or((token.as_str(), ""));
            CinderCaller {
                user: Some(user)
                    .filter(|u| !u.is_empty() && *u != "notused")
                    .map(Into::into),
                project: Some(project).filter(|p| !p.is_empty()).map(Into::into),
            }
        } else {
            let needed = match *request.method() {
                Method::GET | Method::HEAD => Role::Read,
                _ => Role::Admin,
            };
            match state.tokens.check(&token) {
                None => return Fault::new(
                    StatusCode::UNAUTHORIZED,
                    "The request you have made requires authentication: send a valid X-Auth-Token.",
                )
                .into_response(),
                Some(c) if c.role < needed => {
                    return Fault::new(
                        StatusCode::FORBIDDEN,
                        format!(
                            "Policy doesn't allow this: token {:?} is read-only.",
                            c.name
                        ),
                    )
                    .into_response()
                }
                Some(c) => CinderCaller {
                    user: Some(c.name),
                    project: None,
                },
            }
        };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Per-request facts the handlers and views need.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub version: u32,
    /// `http://host:port`, from the configured public URL or the request.
    pub host_url: String,
    /// The project segment of the request URL, if it had one.
    pub url_project: Option<String>,
    pub caller: CinderCaller,
}

impl Ctx {
    pub fn at_least(&self, minor: u32) -> bool {
        self.version >= minor
    }

    /// `<host>/v3[/p]`
    pub fn api_url(&self) -> String {
        match &self.url_project {
            Some(p) => format!("{}/v3/{p}", self.host_url),
            None => format!("{}/v3", self.host_url),
        }
    }

    /// Cinder's self and bookmark links of `/<collection>/<id>`.
    pub fn links(&self, collection: &str, id: &str) -> serde_json::Value {
        let bookmark = match &self.url_project {
            Some(p) => format!("{}/{p}/{collection}/{id}", self.host_url),
            None => format!("{}/{collection}/{id}", self.host_url),
        };
        serde_json::json!([
            {"rel": "self", "href": format!("{}/{collection}/{id}", self.api_url())},
            {"rel": "bookmark", "href": bookmark},
        ])
    }

    /// The project to show: the URL's, else the noauth token's.
    pub fn project(&self) -> Option<String> {
        self.url_project
            .clone()
            .or_else(|| self.caller.project.clone())
    }
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = Fault;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Fault> {
        let version = parts.extensions.get::<ApiVersion>().map_or(0, |v| v.0);
        let caller = parts
            .extensions
            .get::<CinderCaller>()
            .cloned()
            .unwrap_or_default();
        let path = match parts.extensions.get::<OriginalUri>() {
            Some(uri) => uri.0.path().to_string(),
            None => parts.uri.path().to_string(),
        };
        Ok(Ctx {
            version,
            host_url: host_url(state, &parts.headers),
            url_project: project_of(&path),
            caller,
        })
    }
}

/// The `{id}` path parameter (the project, when present, comes first).
pub fn id_param(params: &[(String, String)]) -> String {
    params
        .iter()
        .rfind(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The base URL clients reach the service at.
pub fn host_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let scheme = if state.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| state.config.listen.to_string());
    format!("{scheme}://{host}")
}

/// `p` of `/v3/p/backups/...`; `None` for `/v3/backups/...`.
fn project_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v3/")?;
    let first = rest.split('/').next()?;
    match first {
        "" | "backups" | "volumes" => None,
        p => Some(p.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(VERSION_HEADER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn versions_are_negotiated_as_cinder_does() {
        assert_eq!(requested_version(&HeaderMap::new()).unwrap(), 0);
        assert_eq!(requested_version(&with("volume 3.64")).unwrap(), 64);
        assert_eq!(
            requested_version(&with("compute 2.1, volume latest")).unwrap(),
            71
        );
        assert_eq!(
            requested_version(&with("volume 3.99")).unwrap_err().status,
            406
        );
        assert_eq!(
            requested_version(&with("volume 4.0")).unwrap_err().status,
            406
        );
        assert_eq!(
            requested_version(&with("volume 3.x")).unwrap_err().status,
            400
        );
    }

    #[test]
    fn the_project_comes_from_the_url() {
        assert_eq!(project_of("/v3/abc/backups/detail").as_deref(), Some("abc"));
        assert_eq!(project_of("/v3/backups/detail"), None);
        assert_eq!(project_of("/v3/volumes/x"), None);
    }
}
