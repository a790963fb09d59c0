//! The operator HTTPS API (`/api/v1`), axum over tokio-rustls with the
//! control plane's server certificate. Bearer tokens are stored as SHA-256
//! hashes and compared in constant time; scopes `read` and `admin`.
//!
//! | method | path | scope | body → answer |
//! |---|---|---|---|
//! | POST | `/api/v1/tokens` | admin | `{host, labels?, ttl?}` → `{token, host, expires_at_unix}` |
//! | GET | `/api/v1/hosts` | read | → `[{name, labels, connected, last_seen_unix, cert_serial, cert_not_after_unix, revoked}]` |
//! | POST | `/api/v1/hosts/{name}/revoke` | admin | → `{host, revoked, stream_closed}` |
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
        .route("/api/v1/status", get(fleet_status))
        .route("/api/v1/rollouts", get(list_rollouts))
        .route("/api/v1/rollouts/current", get(current_rollout))
        .route("/api/v1/rollouts/promote", post(promote))
        .route("/api/v1/rollouts/{id}", get(get_rollout))
        .route("/api/v1/commits/{id}", get(get_commit))
        .route("/api/v1/sync", post(sync_now))
        .route("/api/v1/webhooks/git", post(git_webhook))
        .route("/api/v1/events", get(list_events))
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
fn authorize(state: &ApiState, headers: &HeaderMap, need: Scope) -> Result<(), ApiError> {
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
            found = Some(rec.scope);
        }
    }
    match (found, need) {
        (None, _) => Err(unauthorized()),
        (Some(Scope::Read), Scope::Admin) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token has read scope; admin is required",
        )),
        _ => Ok(()),
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
    authorize(&state, &headers, Scope::Admin)?;
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
    Ok(Json(TokenAnswer {
        token: printed,
        host: stored.host,
        expires_at_unix: stored.expires_at_unix,
    }))
}

/// One row of `GET /api/v1/hosts`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub connected: bool,
    pub last_seen_unix: u64,
    pub cert_serial: String,
    pub cert_not_after_unix: u64,
    pub revoked: bool,
}

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
    authorize(&state, &headers, Scope::Admin)?;
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
    Ok(Json(RevokeAnswer {
        host: name,
        revoked: true,
        stream_closed: closed,
    }))
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

fn engine_err(e: crate::rollouts::EngineError) -> ApiError {
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
        "summary": crate::rollouts::describe(r),
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
    authorize(&state, &headers, Scope::Admin)?;
    let ctl = controller(&state)?.clone();
    let live = state.gw.sessions_info();
    let r = blocking(move || {
        ctl.engine()
            .promote(crate::controller::now_ms())
            .map_err(|e| match e {
                crate::rollouts::EngineError::NoRollout => {
                    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no rollout to promote")
                }
                other => engine_err(other),
            })
    })
    .await?;
    Ok(Json(rollout_view(&r, &live)))
}

async fn get_commit(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<crate::rollouts::CommitRecord>, ApiError> {
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
    authorize(&state, &headers, Scope::Admin)?;
    controller(&state)?.trigger_sync();
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

async fn list_events(
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
