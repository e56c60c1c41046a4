//! The collector's HTTPS server: reports in (`POST /api/v1/reports`, with
//! the node's token), the node listing, `/metrics` and the status page out
//! (no token: put the collector on a trusted network).
//!
//! A report passes, in order: a body limit (413), the token (401), the
//! node's rate budget (429), JSON parsing and the schema version (400), the
//! token's node against the report's (403), the sequence number (409);
//! then it is stored (202), in a transaction that checks the token against
//! the registry again (401 if another process revoked or replaced it since
//! it was cached). Every refusal is a JSON `{"error": "…"}` that
//! says why, and is counted by reason in `/metrics`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kiln_agent::report::{REPORT_SCHEMA, REPORTS_PATH, Report};
use secrecy::SecretString;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::db::now_ms;
use crate::error::CollectorError;
use crate::metrics::{CONTENT_TYPE, IngestCounters, RejectReason};
use crate::nodes::{NodeTable, NodesResponse, RateLimit, Refusal};
use crate::page;
use crate::store::{ReportStore, Retention, Saved, StoredReport};
use crate::token_cache::TokenCache;
use crate::tokens::{TokenHash, TokenRegistry, VerifiedToken};

/// The node listing's path.
pub const NODES_PATH: &str = "/api/v1/nodes";
/// The Prometheus exposition's path.
pub const METRICS_PATH: &str = "/metrics";

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// The SQLite file of tokens and reports.
    pub db_path: std::path::PathBuf,
    pub retention: Retention,
    pub rate_limit: RateLimit,
    /// Largest accepted report body, in bytes.
    pub body_limit: usize,
    /// A request (headers and body) that takes longer gets 408.
    pub request_timeout: Duration,
    /// How often the collector re-reads the token registry, so tokens
    /// issued or revoked by another `kiln` process show in the listing.
    pub token_sync_every: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long a graceful shutdown waits for open requests.
    pub shutdown_grace: Duration,
}

impl CollectorConfig {
    pub fn new(db_path: std::path::PathBuf) -> Self {
        Self {
            db_path,
            retention: Retention::default(),
            rate_limit: RateLimit::default(),
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            token_sync_every: Duration::from_secs(5),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

struct App {
    config: CollectorConfig,
    registry: Arc<TokenRegistry>,
    verified: TokenCache,
    store: ReportStore,
    nodes: NodeTable,
    counters: IngestCounters,
}

/// An open collector, ready to serve.
pub struct Collector {
    app: Arc<App>,
}

impl Collector {
    /// Opens the database (tokens and stored reports) and loads every
    /// node's latest report.
    pub fn open(config: CollectorConfig) -> Result<Self, CollectorError> {
        let registry = Arc::new(TokenRegistry::open(&config.db_path)?);
        let store = ReportStore::open(&config.db_path, config.retention)?;
        let nodes = NodeTable::new(config.rate_limit, store.latest()?, registry.nodes()?);
        Ok(Self {
            app: Arc::new(App {
                config,
                registry,
                verified: TokenCache::default(),
                store,
                nodes,
                counters: IngestCounters::new(),
            }),
        })
    }

    /// Serves HTTPS on `listener` until `shutdown` completes, then lets
    /// open requests finish (up to the grace period) and commits every
    /// accepted report before returning.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), CollectorError> {
        let app = self.app;
        let sync = tokio::spawn(sync_tokens(Arc::clone(&app)));
        let acceptor = TlsAcceptor::from(tls);
        let router = router(Arc::clone(&app));
        let slots = Arc::new(Semaphore::new(app.config.max_connections.max(1)));
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (tcp, _peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (acceptor, router, watcher) =
                (acceptor.clone(), router.clone(), graceful.watcher());
            let header_timeout = app.config.request_timeout;
            tokio::spawn(async move {
                let _slot = slot;
                let Ok(Ok(stream)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let service = TowerToHyperService::new(router);
                let service = hyper::service::service_fn(move |request| service.call(request));
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(error) = watcher.watch(connection).await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
        }
        drop(listener);
        sync.abort();
        if tokio::time::timeout(app.config.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("open connections did not finish within the grace period");
        }
        app.store.close().await;
        Ok(())
    }
}

fn router(app: Arc<App>) -> Router {
    let limit = app.config.body_limit;
    let timeout = app.config.request_timeout;
    let reports = Router::new()
        .route(REPORTS_PATH, post(ingest))
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), count));
    let reads = Router::new()
        .route(NODES_PATH, get(nodes))
        .route(METRICS_PATH, get(metrics))
        .route("/", get(status_page))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ));
    reports.merge(reads).with_state(app)
}

async fn sync_tokens(app: Arc<App>) {
    let mut ticks = tokio::time::interval(app.config.token_sync_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let registry = Arc::clone(&app.registry);
        match tokio::task::spawn_blocking(move || registry.nodes()).await {
            Ok(Ok(tokens)) => {
                app.verified
                    .retain_current(&tokens.iter().map(|(_, id)| *id).collect());
                app.nodes.sync(tokens);
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot re-read the token registry"),
            Err(error) => tracing::warn!(%error, "re-reading the token registry failed"),
        }
    }
}

/// Counts every report and every refusal by reason, including the body
/// limit's and the timeout's, which answer before the handler runs.
async fn count(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let is_report = request.method() == Method::POST;
    let response = next.run(request).await;
    if is_report {
        app.counters.received();
        let status = response.status();
        if status.is_success() {
            app.counters.accepted();
        } else if let Some(reason) = RejectReason::from_status(status.as_u16()) {
            app.counters.rejected(reason);
        }
    }
    response
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn ingest(State(app): State<Arc<App>>, headers: HeaderMap, request: Request) -> Response {
    let Some(token) = bearer(&headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer TOKEN`".to_owned(),
        );
    };
    let verified = match verify(&app, &token).await {
        Ok(Some(verified)) => verified,
        Ok(None) => return token_refused(),
        Err(error) => return internal(&error),
    };
    match app.nodes.admit(&verified, Instant::now()) {
        Ok(()) => {}
        Err(Refusal::RateLimited { retry_after }) => return rate_limited(&verified, retry_after),
        Err(Refusal::Superseded) => return token_refused(),
        Err(Refusal::Replayed { .. }) => return internal("unexpected replay refusal"),
    }
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) => return refuse(rejection.status(), rejection.body_text()),
    };
    let report: Report = match serde_json::from_slice(&body) {
        Ok(report) => report,
        Err(error) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("malformed report: {error}"),
            );
        }
    };
    if report.schema != REPORT_SCHEMA {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "report schema {} is not supported (this collector reads schema {REPORT_SCHEMA})",
                report.schema
            ),
        );
    }
    let identity = &verified.identity;
    if report.node != identity.node || report.cluster != identity.cluster {
        tracing::warn!(token_node = %identity.node, report_node = %report.node, "a report for another node than its token's");
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "this token is node `{}` of cluster `{}`; the report is for node `{}` of cluster `{}`",
                identity.node, identity.cluster, report.node, report.cluster
            ),
        );
    }
    store(&app, &verified, report).await
}

/// The token's owner: from the cache, or from the registry (on the blocking
/// pool) and then cached. `None`: the registry does not know it.
async fn verify(app: &App, token: &SecretString) -> Result<Option<VerifiedToken>, String> {
    let hash = TokenHash::of(token);
    if let Some(verified) = app.verified.get(&hash) {
        return Ok(Some(verified));
    }
    let registry = Arc::clone(&app.registry);
    let found = tokio::task::spawn_blocking(move || registry.verify_hash(&hash))
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| error.to_string())?;
    if let Some(verified) = &found {
        app.verified.insert(hash, verified.clone());
    }
    Ok(found)
}

fn token_refused() -> Response {
    refuse(
        StatusCode::UNAUTHORIZED,
        "unknown, replaced or revoked token".to_owned(),
    )
}

fn rate_limited(verified: &VerifiedToken, retry_after: Duration) -> Response {
    let seconds = retry_after.as_secs_f64().ceil().max(1.0);
    let mut response = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "node `{}` sends too fast; retry in {seconds:.0}s",
            verified.identity.node
        ),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("{seconds:.0}")) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

async fn store(app: &App, verified: &VerifiedToken, report: Report) -> Response {
    let sequence = report.sequence;
    let previous = match app.nodes.claim(verified, sequence) {
        Ok(previous) => previous,
        Err(Refusal::Replayed { last }) => {
            return refuse(
                StatusCode::CONFLICT,
                format!(
                    "sequence {sequence} of node `{}` is not above the last one seen ({last}): \
                     a replay or an old report",
                    verified.identity.node
                ),
            );
        }
        Err(Refusal::Superseded) => return token_refused(),
        Err(Refusal::RateLimited { .. }) => return internal("unexpected rate refusal"),
    };
    let stored = StoredReport {
        report,
        received_at_ms: now_ms(),
        token_id: verified.token_id,
    };
    match app.store.save(stored.clone()).await {
        Ok(Saved::TokenGone) => {
            app.nodes.release(verified, sequence, previous);
            app.verified.forget(verified.token_id);
            app.nodes.forget(verified);
            token_refused()
        }
        Ok(Saved::Stored) => {
            app.nodes.record(verified, stored);
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({ "accepted": sequence })),
            )
                .into_response()
        }
        Err(error) => {
            app.nodes.release(verified, sequence, previous);
            tracing::error!(node = %verified.identity.node, %error, "cannot store a report");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the collector cannot store reports right now: {error}"),
            )
        }
    }
}

fn internal(reason: &str) -> Response {
    tracing::error!(%reason, "collector internal error");
    refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("collector error: {reason}"),
    )
}

/// The bearer token, never logged; anything else in the header is no token.
fn bearer(headers: &HeaderMap) -> Option<SecretString> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| SecretString::from(token))
}

async fn nodes(State(app): State<Arc<App>>) -> Response {
    let now = now_ms();
    axum::Json(NodesResponse {
        generated_at_ms: now,
        nodes: app.nodes.snapshot(now),
    })
    .into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    match app.counters.render(&app.nodes.snapshot(now_ms())) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => internal(&format!("cannot encode the metrics: {error}")),
    }
}

async fn status_page(State(app): State<Arc<App>>) -> Response {
    let generated = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let mut response =
        Html(page::render(&app.nodes.snapshot(now_ms()), &generated)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Collector")
            .field("db_path", &self.app.config.db_path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_a_bearer_token_is_a_token() {
        let token = bearer(&with_authorization("Bearer kiln_at_abc")).unwrap();
        assert_eq!(token.expose_secret(), "kiln_at_abc");
        assert!(bearer(&with_authorization("bearer  kiln_at_abc ")).is_some());
        assert!(bearer(&with_authorization("Basic a2lsbjpwdw==")).is_none());
        assert!(bearer(&with_authorization("Bearer ")).is_none());
        assert!(bearer(&HeaderMap::new()).is_none());
    }
}
