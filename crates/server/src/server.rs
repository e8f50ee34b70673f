//! Starting and stopping: recovery at start, the listener (plain or TLS),
//! the worker, and graceful shutdown (stop accepting, let running jobs
//! finish within the grace period, cancel the rest cleanly).

use crate::auth::{read_tokens_file, Tokens};
use crate::config::ServiceConfig;
use crate::jobs::worker::{JobRunner, Worker, WorkerSettings};
use crate::metrics::{Metrics, Scrape};
use crate::schedule::{Scheduler, SystemClock};
use crate::state::{blocking, AppState, Backend, ServiceError};
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use blockback_core::catalog::{Catalog, LostJobs};
use blockback_core::engine::unix_now;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

/// The header carrying each request's id (Cinder's name; clients print it).
pub const REQUEST_ID: &str = "x-openstack-request-id";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("catalog: {0}")]
    Catalog(String),
    #[error("{0}")]
    Io(String),
}

/// Everything `run` needs, built from the configuration.
pub struct Service {
    pub state: Arc<AppState>,
}

impl Service {
    /// Builds the state: tokens, catalog, worker; then repairs what a
    /// previous life left (see [`recover`]).
    pub fn new(
        config: Arc<ServiceConfig>,
        catalog: Arc<dyn Catalog>,
        backend: Arc<dyn Backend>,
        runner: Arc<dyn JobRunner>,
    ) -> Result<Self, StartError> {
        let mut entries = config.auth.tokens.clone();
        if let Some(path) = &config.auth.tokens_file {
            entries.extend(read_tokens_file(path).map_err(|e| StartError::Config(e.to_string()))?);
        }
        let tokens = Tokens::new(entries).map_err(StartError::Config)?;
        if tokens.is_empty() {
            tracing::warn!("no tokens configured: the native API refuses every request");
        }
        let metrics = Arc::new(Metrics::default());
        let settings = WorkerSettings {
            name: config.worker(),
            max_running: config.jobs.max_running,
            lease: Duration::from_secs(config.jobs.lease_secs),
            heartbeat: Duration::from_secs_f64(config.jobs.heartbeat_secs),
            shutdown_grace: Duration::from_secs(config.shutdown_timeout_secs),
            nice: config.jobs.nice,
        };
        let worker = Worker::new(catalog.clone(), runner, settings, metrics.clone());
        let state = Arc::new(AppState {
            config,
            catalog,
            worker,
            metrics,
            tokens,
            backend,
            read_cache: Default::default(),
        });
        Ok(Service { state })
    }

    /// The whole HTTP application.
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        let request_id = HeaderName::from_static(REQUEST_ID);
        let mut app = Router::new()
            .nest("/api/v1", crate::api::router(state.clone()))
            .route("/metrics", get(metrics));
        if state.config.cinder.enabled {
            app = app.merge(crate::cinder::router(state.clone()));
        }
        app.with_state(state.clone())
            .layer(axum::extract::DefaultBodyLimit::max(
                state.config.max_body_bytes,
            ))
            .layer(PropagateRequestIdLayer::new(request_id.clone()))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(SetRequestIdLayer::new(request_id, OpenStackRequestId))
    }
}

/// Request ids as Cinder makes them: `req-<uuid>`.
#[derive(Clone, Copy)]
struct OpenStackRequestId;

impl MakeRequestId for OpenStackRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = format!("req-{}", uuid::Uuid::new_v4());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// Every log line of a request carries its id, method and path.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
}

/// GET /metrics
async fn metrics(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    if !state.config.auth.metrics_public {
        if let Err(e) = crate::api::authorize(&state, &headers, crate::auth::Role::Read) {
            return e.into_response();
        }
    }
    let rendered = blocking(move || {
        let scrape = Scrape {
            store: state.backend.store_label(),
            store_used: state.backend.store_usage().ok().flatten(),
        };
        state
            .metrics
            .render(state.catalog.as_ref(), &scrape)
            .map_err(ServiceError::Internal)
    })
    .await;
    match rendered {
        Ok(text) => (
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Marks the jobs this worker was running when it died as failed, then
/// lets `repair` (the engine's crash recovery) clean their partial state.
pub fn recover(
    catalog: &dyn Catalog,
    worker: &str,
    repair: impl FnOnce() -> Result<Vec<String>, String>,
) -> Result<(), StartError> {
    let lost = LostJobs {
        worker: Some(worker.to_string()),
        now: unix_now(),
        reason: "the service stopped (crash, kill or power loss) while this job ran; \
                 its partial state was cleaned up at the next start"
            .into(),
    };
    let failed = catalog
        .fail_lost_jobs(&lost)
        .map_err(|e| StartError::Catalog(e.to_string()))?;
    for job in &failed {
        tracing::warn!(job_id = %job.id, kind = %job.kind, "job was running when the service stopped; marked failed");
    }
    for note in repair().map_err(StartError::Catalog)? {
        tracing::warn!("recovery: {note}");
    }
    Ok(())
}

/// Serves on `listener` until `shutdown` completes, then drains: the
/// listener stops accepting, in-flight requests finish, the worker lets
/// running jobs end (cancelling them after the grace period).
pub async fn run(
    service: Service,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let state = service.state.clone();
    let app = service.router();
    let (stop_tx, stop_rx) = watch::channel(false);
    let schedules = state.config.schedules().map_err(StartError::Config)?;
    let scheduler = Arc::new(Scheduler::new(
        state.clone(),
        schedules,
        Arc::new(SystemClock),
    ));
    let scheduler = tokio::spawn(scheduler.run(stop_rx.clone()));
    let worker = tokio::spawn(state.worker.clone().run(stop_rx));
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: no new requests or jobs");
        h.graceful_shutdown(Some(Duration::from_secs(10)));
        let _ = stop_tx.send(true);
    });
    listener
        .set_nonblocking(true)
        .map_err(|e| StartError::Io(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Io(e.to_string()))?;
    tracing::info!(%addr, tls = state.config.tls.is_some(), "listening");
    let served = match &state.config.tls {
        Some(tls) => {
            let rustls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .map_err(|e| {
                    StartError::Config(format!(
                        "tls: cert {} / key {}: {e}",
                        tls.cert.display(),
                        tls.key.display()
                    ))
                })?;
            axum_server::from_tcp_rustls(listener, rustls)
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
        None => {
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
    };
    let _ = scheduler.await;
    let _ = worker.await;
    let closing = state.clone();
    let _ = blocking(move || {
        if let Some(exports) = closing.backend.exports() {
            exports.close_all();
        }
        Ok(())
    })
    .await;
    // The last references to the catalog go on a blocking thread: the
    // PostgreSQL client closes its connections with a runtime of its own,
    // which cannot start on this runtime's threads (it panicked, and the
    // process aborted at every shutdown).
    let _ = tokio::task::spawn_blocking(move || drop((service, state))).await;
    served.map_err(|e| StartError::Io(e.to_string()))?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn signals() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
