//! The operator HTTPS API (`/api/v1`), axum over tokio-rustls with the
//! control plane's server certificate. Bearer tokens are stored as SHA-256
//! hashes and compared in constant time; scopes `read` and `admin`.
//!
//! | method | path | scope | body → answer |
//! |---|---|---|---|
//! | POST | `/api/v1/tokens` | admin | `{host, labels?, ttl?}` → `{token, host, expires_at_unix}` |
//! | GET | `/api/v1/hosts` | read | → `[{name, labels, connected, last_seen_unix, cert_serial, cert_not_after_unix, revoked}]` |
//! | POST | `/api/v1/hosts/{name}/revoke` | admin | → `{host, revoked, stream_closed}` |
//! | GET | `/api/v1/hosts/{name}/telemetry?points=N` | read | → latest sample, GPUs with their containers, events, compact history |
//! | GET | `/metrics` | read | → Prometheus text format: fleet telemetry + control-plane health |
//! | GET | `/api/v1/hosts/{name}/reports` | read | → `[{id, kind, stack, stack_revision, host_revision, rollout_id, message, failing_service, at_unix_ms}]` (stored reports, oldest first; each id once) |
//! | POST | `/api/v1/backup` | admin | → a backup file (`application/octet-stream`, see [`crate::backup`]) |
//!
//! Errors are `{"error": {"code", "message"}}` with a matching status.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use convoy_pki::JoinToken;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::controller::Controller;
use crate::gateway::Gateway;
use crate::store::{Scope, Store, api_token_hash};

/// Default join-token lifetime.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);
/// Longest join-token lifetime accepted: a week; a token is a credential.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Largest request body (token requests are tiny).
const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
struct ApiState {
    store: Store,
    gw: Gateway,
    ctl: Option<Arc<Controller>>,
    /// The data dir, for backups (the daemon's router only).
    data_dir: Option<std::path::PathBuf>,
}

/// A JSON error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn internal(what: &str, e: &dyn std::error::Error) -> ApiError {
        tracing::error!(error = %crate::error_chain(e), "{what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what} failed"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// The router (exposed for in-process tests).
pub fn router(store: Store, gw: Gateway) -> Router {
    router_with(store, gw, None)
}

/// The full router, with the controller's endpoints (rollouts, sync,
/// webhooks, events).
pub fn router_with(store: Store, gw: Gateway, ctl: Option<Arc<Controller>>) -> Router {
    router_full(store, gw, ctl, None)
}

/// The daemon's router: [`router_with`] plus `POST /api/v1/backup`, which
/// needs the data dir.
pub fn router_full(
    store: Store,
    gw: Gateway,
    ctl: Option<Arc<Controller>>,
    data_dir: Option<std::path::PathBuf>,
) -> Router {
    Router::new()
        .route("/api/v1/backup", post(backup))
        .route("/api/v1/tokens", post(create_token))
        .route("/api/v1/hosts", get(list_hosts))
        .route("/api/v1/hosts/{name}/revoke", post(revoke_host))
        .route("/api/v1/hosts/{name}/telemetry", get(host_telemetry))
        .route("/metrics", get(metrics))
        .route("/api/v1/hosts/{name}/reports", get(host_reports))
        .route("/api/v1/status", get(fleet_status))
        .route("/api/v1/rollouts", get(list_rollouts))
        .route("/api/v1/rollouts/current", get(current_rollout))
        .route("/api/v1/rollouts/promote", post(promote))
        .route("/api/v1/rollouts/{id}", get(get_rollout))
        .route("/api/v1/commits/{id}", get(get_commit))
        .route("/api/v1/sync", post(sync_now))
        .route("/api/v1/webhooks/git", post(git_webhook))
        .route("/api/v1/events", get(list_audit))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/rollouts/abort", post(abort))
        .route("/api/v1/rollouts/rollback", post(rollback))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/alerts/test", post(test_alert))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(ApiState {
            store,
            gw,
            ctl,
            data_dir,
        })
}

/// A `Write` that hands 64 KiB chunks to the response body through a
/// bounded channel: the backup streams with bounded memory, and a slow
/// client slows the (blocking) writer down.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const BACKUP_CHUNK: usize = 64 * 1024;

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BACKUP_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(BACKUP_CHUNK));
        self.tx
            .blocking_send(Ok(chunk.into()))
            .map_err(|_| std::io::Error::other("client went away"))
    }
}

async fn backup(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let Some(dir) = state.data_dir.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "backups are served by the daemon only",
        ));
    };
    let db = state.store.db().clone();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let w = ChannelWriter {
            tx,
            buf: Vec::with_capacity(BACKUP_CHUNK),
        };
        match crate::backup::write(&crate::datadir::DataDir::new(dir), &db, w) {
            Ok(s) => tracing::info!(
                files = s.files,
                trees = s.trees,
                records = s.records,
                bytes = s.bytes,
                "backup streamed"
            ),
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "backup failed");
                // Abort the body: the client sees a broken transfer, never
                // a short file that looks complete (the checksum would
                // catch that too).
                let _ = errors.blocking_send(Err(std::io::Error::other("backup failed")));
            }
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        body,
    )
        .into_response())
}

/// Checks the bearer token and its scope.
fn authorize(state: &ApiState, headers: &HeaderMap, need: Scope) -> Result<String, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    };
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let presented = api_token_hash(token.trim());
    let tokens = state
        .store
        .api_tokens()
        .map_err(|e| ApiError::internal("reading API tokens", &e))?;
    // Compare against every stored hash without stopping at a match, so
    // timing says nothing about which (or whether a) token matched.
    let mut found = None;
    for (hash, rec) in &tokens {
        if ct_eq(hash.as_bytes(), presented.as_bytes()) {
            found = Some((rec.scope, rec.name.clone()));
        }
    }
    match (found, need) {
        (None, _) => Err(unauthorized()),
        (Some((Scope::Read, _)), Scope::Admin) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token has read scope; admin is required",
        )),
        (Some((_, name)), _) => Ok(name),
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)))
        == 0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    host: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// e.g. `1h`, `30m` (default 1h).
    ttl: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TokenAnswer {
    pub token: String,
    pub host: String,
    pub expires_at_unix: u64,
}

async fn create_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<TokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<TokenAnswer>, ApiError> {
    let who = authorize(&state, &headers, Scope::Admin)?;
    let Json(req) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let ttl = match &req.ttl {
        None => DEFAULT_TOKEN_TTL,
        Some(s) => convoy_shared::duration::parse(s)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_ttl", format!("ttl: {e}")))?,
    };
    if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_ttl",
            "ttl must be between 1s and 168h",
        ));
    }
    for (k, v) in &req.labels {
        if k.is_empty()
            || k.len() > convoy_shared::limits::MAX_NAME_LEN
            || v.len() > convoy_shared::limits::MAX_NAME_LEN
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_label",
                format!("label {k:?}: key must be 1..=253 bytes, value at most 253"),
            ));
        }
    }
    let now = SystemTime::now();
    let (printed, stored) = JoinToken::new(
        &req.host,
        req.labels,
        ttl,
        now,
        &state.gw.ca().fingerprint_sha256(),
    )
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_token_request", e.to_string()))?;
    let store = state.store.clone();
    let rec = stored.clone();
    tokio::task::spawn_blocking(move || store.put_token(&rec))
        .await
        .map_err(|e| ApiError::internal("token task", &e))?
        .map_err(|e| ApiError::internal("storing token", &e))?;
    tracing::info!(host = %stored.host, token_id = %stored.id, ttl_secs = ttl.as_secs(), "join token created");
    audit(
        &state,
        &who,
        "token_created",
        &stored.host,
        "",
        format!("join token {} (ttl {}s)", stored.id, ttl.as_secs()),
    );
    Ok(Json(TokenAnswer {
        token: printed,
        host: stored.host,
        expires_at_unix: stored.expires_at_unix,
    }))
}

pub use convoy_shared::api::HostView;

async fn list_hosts(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Vec<HostView>>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let hosts = state
        .store
        .hosts()
        .map_err(|e| ApiError::internal("reading hosts", &e))?;
    let revoked = state
        .store
        .revocations()
        .map_err(|e| ApiError::internal("reading revocations", &e))?;
    let live = state.gw.sessions_info();
    Ok(Json(
        hosts
            .into_iter()
            .map(|h| HostView {
                connected: live.contains_key(&h.name),
                revoked: revoked.hosts.contains(&h.name),
                name: h.name,
                labels: h.labels,
                last_seen_unix: h.last_seen_unix,
                cert_serial: h.cert_serial,
                cert_not_after_unix: h.cert_not_after_unix,
            })
            .collect(),
    ))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RevokeAnswer {
    pub host: String,
    pub revoked: bool,
    pub stream_closed: bool,
}

async fn revoke_host(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<RevokeAnswer>, ApiError> {
    let who = authorize(&state, &headers, Scope::Admin)?;
    let known = state
        .store
        .host(&name)
        .map_err(|e| ApiError::internal("reading host", &e))?
        .is_some();
    if !known {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_host",
            format!("no enrolled host named {name:?}"),
        ));
    }
    let gw = state.gw.clone();
    let n = name.clone();
    let closed = tokio::task::spawn_blocking(move || gw.revoke(&n, SystemTime::now()))
        .await
        .map_err(|e| ApiError::internal("revoke task", &e))?
        .map_err(|e| ApiError::internal("revoking host", &e))?;
    tracing::warn!(host = %name, stream_closed = closed, "host revoked");
    audit(
        &state,
        &who,
        "revoke",
        &name,
        "",
        format!("host revoked (live stream closed: {closed})"),
    );
    Ok(Json(RevokeAnswer {
        host: name,
        revoked: true,
        stream_closed: closed,
    }))
}

/// Reports a host sent, as stored (resends are stored once, under their id).
async fn host_reports(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    use prost::Message as _;
    authorize(&state, &headers, Scope::Read)?;
    let store = state.store.clone();
    let all = blocking(move || {
        store
            .reports()
            .map_err(|e| ApiError::internal("reading reports", &e))
    })
    .await?;
    let mut out = Vec::new();
    for (id, bytes) in all {
        let stored = match crate::gateway::StoredReport::decode(bytes.as_slice()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(report = %id, error = %e, "undecodable stored report skipped");
                continue;
            }
        };
        if stored.host != name {
            continue;
        }
        let r = stored.report;
        let kind = convoy_shared::proto::ReportKind::try_from(r.kind)
            .map_or_else(|_| format!("unknown({})", r.kind), |k| format!("{k:?}"));
        out.push(serde_json::json!({
            "id": id,
            "kind": kind,
            "stack": r.stack,
            "stack_revision": r.stack_revision,
            "host_revision": r.host_revision,
            "rollout_id": r.rollout_id,
            "message": r.message,
            "failing_service": r.failing_service,
            "at_unix_ms": r.at_unix_ms,
        }));
    }
    Ok(Json(out))
}

/// rustls config for the API: the server certificate, no client auth,
/// HTTP/2 and HTTP/1.1.
pub fn api_tls_config(
    server_cert_pem: &str,
    server_key_pem: &str,
) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("server certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes())
        .map_err(|e| format!("server key: {e}"))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("server certificate/key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Serves the API until `stop` resolves.
pub async fn serve_api(
    router: Router,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(stop);
    // Bounds concurrent API connections (operators and scripts, not fleets).
    let permits = Arc::new(tokio::sync::Semaphore::new(128));
    loop {
        let (tcp, addr) = tokio::select! {
            _ = &mut stop => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(peer = %addr, "too many API connections; dropping one");
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %addr, error = %e, "API TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let svc = hyper_util::service::TowerToHyperService::new(router);
            let res =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            if let Err(e) = res {
                tracing::debug!(peer = %addr, error = %e, "API connection ended with an error");
            }
        });
    }
}

fn controller(state: &ApiState) -> Result<&Arc<Controller>, ApiError> {
    state.ctl.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the controller is not running",
        )
    })
}

fn engine_err(e: crate::rollout::EngineError) -> ApiError {
    ApiError::internal("reading rollout state", &e)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "API task failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "task failed")
    })?
}

/// A rollout as the API shows it: the state machine plus each host's
/// connection state.
fn rollout_view(
    r: &crate::rollout::Rollout,
    live: &BTreeMap<String, crate::gateway::SessionInfo>,
) -> serde_json::Value {
    let hosts: serde_json::Map<String, serde_json::Value> = r
        .hosts
        .iter()
        .map(|(name, h)| {
            (
                name.clone(),
                serde_json::json!({
                    "wave": r.waves.get(h.wave).map(|w| w.name.clone()),
                    "phase": h.phase,
                    "target_revision": h.target_revision,
                    "previous_revision": h.previous_revision,
                    "online": live.contains_key(name),
                }),
            )
        })
        .collect();
    serde_json::json!({
        "id": r.id,
        "commit": r.commit,
        "created_unix_ms": r.created_ms,
        "status": r.status,
        "summary": crate::rollout::describe(r),
        "on_failure": r.on_failure,
        "current_wave": r.waves.get(r.current_wave).map(|w| w.name.clone()),
        "waves": r.waves,
        "hosts": hosts,
        "history": r.history,
    })
}

async fn fleet_status(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = controller(&state)?.clone();
    let live = state.gw.sessions_info();
    let c = ctl.clone();
    let (last_good, current) = blocking(move || {
        Ok((
            c.engine().last_good_commit().map_err(engine_err)?,
            c.engine().current_rollout().map_err(engine_err)?,
        ))
    })
    .await?;
    Ok(Json(serde_json::json!({
        "fleet": ctl.fleet(),
        "git": ctl.sync_state(),
        "last_good_commit": last_good,
        "current_rollout": current.as_ref().map(|r| rollout_view(r, &live)),
        "connected_hosts": live.keys().collect::<Vec<_>>(),
        "alerts_pending": ctl.alerts().map(|a| a.pending_count()),
    })))
}

async fn list_rollouts(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = controller(&state)?.clone();
    let live = state.gw.sessions_info();
    let list = blocking(move || ctl.engine().rollouts(50).map_err(engine_err)).await?;
    Ok(Json(list.iter().map(|r| rollout_view(r, &live)).collect()))
}

async fn current_rollout(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = controller(&state)?.clone();
    let live = state.gw.sessions_info();
    match blocking(move || ctl.engine().current_rollout().map_err(engine_err)).await? {
        Some(r) => Ok(Json(rollout_view(&r, &live))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no rollout yet",
        )),
    }
}

async fn get_rollout(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = controller(&state)?.clone();
    let live = state.gw.sessions_info();
    match blocking(move || ctl.engine().rollout(&id).map_err(engine_err)).await? {
        Some(r) => Ok(Json(rollout_view(&r, &live))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such rollout",
        )),
    }
}

async fn promote(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = authorize(&state, &headers, Scope::Admin)?;
    let ctl = controller(&state)?.clone();
    let live = state.gw.sessions_info();
    let r = blocking(move || {
        ctl.engine()
            .promote(convoy_kit::clock::now_ms())
            .map_err(|e| match e {
                crate::rollout::EngineError::NoRollout => {
                    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no rollout to promote")
                }
                other => engine_err(other),
            })
    })
    .await?;
    audit(
        &state,
        &who,
        "promote",
        "",
        &r.id,
        "promoted the waiting wave".into(),
    );
    Ok(Json(rollout_view(&r, &live)))
}

#[derive(Debug, Default, Deserialize)]
struct StopRequest {
    #[serde(default)]
    reason: Option<String>,
}

/// `abort` and `rollback` of the current rollout.
async fn stop_rollout(
    state: ApiState,
    headers: HeaderMap,
    body: Option<Json<StopRequest>>,
    rollback: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = authorize(&state, &headers, Scope::Admin)?;
    let ctl = controller(&state)?.clone();
    let live = state.gw.sessions_info();
    let reason = body
        .and_then(|b| b.0.reason)
        .unwrap_or_else(|| format!("by {who}"));
    let input = if rollback {
        crate::rollout::Input::Rollback {
            reason: reason.clone(),
        }
    } else {
        crate::rollout::Input::Abort {
            reason: reason.clone(),
        }
    };
    let r = blocking(move || {
        ctl.engine()
            .input(&input, convoy_kit::clock::now_ms())
            .map_err(engine_err)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no rollout"))
    })
    .await?;
    let kind = if rollback { "rollback" } else { "abort" };
    audit(&state, &who, kind, "", &r.id, reason);
    Ok(Json(rollout_view(&r, &live)))
}

async fn abort(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Option<Json<StopRequest>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    stop_rollout(state, headers, body, false).await
}

async fn rollback(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Option<Json<StopRequest>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    stop_rollout(state, headers, body, true).await
}

fn audit(state: &ApiState, who: &str, kind: &str, host: &str, rollout: &str, message: String) {
    if let Some(ctl) = &state.ctl {
        ctl.audit().record(crate::audit::AuditEntry {
            who: who.to_owned(),
            kind: kind.to_owned(),
            host: host.to_owned(),
            rollout: rollout.to_owned(),
            message,
            ..Default::default()
        });
    }
}

/// The audit log, newest first: `?host=&stack=&rollout=&kind=&before=&limit=`.
async fn list_audit(
    State(state): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<crate::audit::Query>,
) -> Result<Json<Vec<crate::audit::AuditEntry>>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = controller(&state)?.clone();
    let list = blocking(move || {
        ctl.audit()
            .query(&q)
            .map_err(|e| ApiError::internal("reading the audit log", &e))
    })
    .await?;
    Ok(Json(list))
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the store answers and the controller runs.
async fn readyz(State(state): State<ApiState>) -> Result<&'static str, ApiError> {
    if state.ctl.is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "controller not running",
        ));
    }
    let store = state.store.clone();
    blocking(move || {
        store
            .fleet()
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string()))
    })
    .await?;
    Ok("ready\n")
}

async fn get_commit(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<crate::rollout::CommitRecord>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = controller(&state)?.clone();
    match blocking(move || ctl.engine().commit(&id).map_err(engine_err)).await? {
        Some(c) => Ok(Json(c)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "commit not seen",
        )),
    }
}

async fn sync_now(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let who = authorize(&state, &headers, Scope::Admin)?;
    controller(&state)?.trigger_sync();
    audit(&state, &who, "sync", "", "", "fetch requested".into());
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"sync": "queued"})),
    ))
}

/// Forge webhooks: verified (constant time) before anything happens, then
/// answered at once; the fetch is queued (forges time out after 5-10 s).
async fn git_webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let ctl = controller(&state)?;
    let Some(secret) = ctl.webhook_secret() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "webhooks are not configured (git.webhook_secret)",
        ));
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match crate::webhook::verify(secret.as_bytes(), &body, header) {
        Ok(forge) => {
            tracing::info!(forge = ?forge, delivery = header("x-github-delivery").unwrap_or_default(), "verified git webhook; fetching");
            ctl.trigger_sync();
            Ok((
                StatusCode::ACCEPTED,
                Json(serde_json::json!({"sync": "queued"})),
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "git webhook refused");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                e.to_string(),
            ))
        }
    }
}

async fn list_alerts(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = controller(&state)?.clone();
    let Some(alerts) = ctl.alerts().cloned() else {
        return Ok(Json(serde_json::json!([])));
    };
    let list = blocking(move || {
        alerts
            .list(100)
            .map_err(|e| ApiError::internal("reading alerts", &e))
    })
    .await?;
    Ok(Json(serde_json::json!(
        list.into_iter()
            .map(|(a, d)| serde_json::json!({"alert": a, "deliveries": d}))
            .collect::<Vec<_>>()
    )))
}

#[derive(Debug, Deserialize)]
struct TestAlert {
    sink: String,
}

async fn test_alert(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Json(req): Json<TestAlert>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let ctl = controller(&state)?.clone();
    let Some(alerts) = ctl.alerts() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no alert sinks configured",
        ));
    };
    match alerts.test(&req.sink).await {
        Ok(id) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"id": id, "sink": req.sink})),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            e.to_string(),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct TelemetryQuery {
    /// History points to return (default 60, at most 720).
    points: Option<usize>,
}

async fn host_telemetry(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<TelemetryQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = controller(&state)?.clone();
    let points = q.points.unwrap_or(crate::telemetry::DEFAULT_HISTORY_POINTS);
    let view = ctl.with_telemetry(|t| t.host(&name).map(|h| h.to_json(points)));
    let connected = state.gw.sessions_info().contains_key(&name);
    let view = match view {
        Some(v) => v,
        None => {
            let store = state.store.clone();
            let n = name.clone();
            let known = blocking(move || {
                store
                    .host(&n)
                    .map_err(|e| ApiError::internal("reading host", &e))
            })
            .await?
            .is_some();
            if !known {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_host",
                    format!("no enrolled host named {name:?}"),
                ));
            }
            // Enrolled, no sample yet.
            serde_json::json!({"at_unix_ms": null, "dropped_samples": 0, "samples_held": 0,
                "host": null, "gpus": [], "events": [], "history": []})
        }
    };
    let mut v = view;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("name".into(), serde_json::json!(name));
        obj.insert("connected".into(), serde_json::json!(connected));
    }
    Ok(Json(v))
}

fn rollout_status_label(s: &crate::rollout::RolloutStatus) -> &'static str {
    use crate::rollout::RolloutStatus as S;
    match s {
        S::Running => "running",
        S::WaitingApproval => "waiting_approval",
        S::Completed => "completed",
        S::Halted { .. } => "halted",
        S::RollingBack { .. } => "rolling_back",
        S::RolledBack { .. } => "rolled_back",
        S::Superseded { .. } => "superseded",
    }
}

/// `GET /metrics`: the fleet's telemetry and the control plane's health in
/// the Prometheus text format. Needs a read-scope bearer token (Prometheus
/// `authorization: {credentials_file: ...}`): host names, GPU models and
/// container names are fleet inventory.
async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = controller(&state)?.clone();
    let connected_agents = state.gw.sessions_info().len();
    let store = state.store.clone();
    let c = ctl.clone();
    let (enrolled_hosts, rollouts) = blocking(move || {
        let hosts = store
            .hosts()
            .map_err(|e| ApiError::internal("reading hosts", &e))?
            .len();
        Ok((hosts, c.engine().rollouts(50).map_err(engine_err)?))
    })
    .await?;
    let mut health = crate::telemetry::ControlPlaneHealth {
        connected_agents,
        enrolled_hosts,
        alert_outbox_pending: ctl.alerts().map(|a| a.pending_count()),
        ..Default::default()
    };
    for r in &rollouts {
        *health
            .rollouts_by_status
            .entry(rollout_status_label(&r.status))
            .or_default() += 1;
    }
    // `rollouts` is newest first.
    health.current_rollout_status = rollouts.first().map(|r| rollout_status_label(&r.status));
    let st = ctl.stream_stats();
    health.stream_messages = [
        ("report", st.reports),
        ("telemetry", st.telemetry_batches),
        ("delivered", st.delivered),
        ("connect", st.connects),
    ]
    .into_iter()
    .collect();
    health.telemetry_samples = st.telemetry_samples;
    let mut body = ctl.with_telemetry(|t| t.render_prometheus());
    body.push_str(&crate::telemetry::render_control_plane(&health));
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
