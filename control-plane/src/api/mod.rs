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
//!
//! One file per handler family: `auth.rs` (bearer tokens), `tokens.rs`
//! (join tokens), `hosts.rs`, `rollouts.rs`, `commits.rs` (commits and
//! sync), `webhooks.rs`, `events.rs` (audit log), `alerts.rs`,
//! `metrics.rs`, `backup.rs`, `status.rs` (fleet status, liveness,
//! readiness); `serve.rs` holds the TLS config and the accept loop.

mod alerts;
mod auth;
mod backup;
mod commits;
mod events;
mod hosts;
mod metrics;
mod rollouts;
mod serve;
mod status;
mod tokens;
mod webhooks;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::dispatch::Dispatcher;
use crate::gateway::Gateway;
use crate::store::Store;

pub use hosts::RevokeAnswer;
pub use serve::{api_tls_config, serve_api};
pub use tokens::{DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL, TokenAnswer};

/// Largest request body (token requests are tiny).
const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) gw: Gateway,
    pub(crate) ctl: Option<Arc<Dispatcher>>,
    /// The data dir, for backups (the daemon's router only).
    pub(crate) data_dir: Option<std::path::PathBuf>,
}

/// A JSON error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub(crate) fn internal(what: &str, e: &dyn std::error::Error) -> ApiError {
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
pub fn router(store: Arc<dyn Store>, gw: Gateway) -> Router {
    router_with(store, gw, None)
}

/// The full router, with the dispatcher's endpoints (rollouts, sync,
/// webhooks, events).
pub fn router_with(store: Arc<dyn Store>, gw: Gateway, ctl: Option<Arc<Dispatcher>>) -> Router {
    router_full(store, gw, ctl, None)
}

/// The daemon's router: [`router_with`] plus `POST /api/v1/backup`, which
/// needs the data dir.
pub fn router_full(
    store: Arc<dyn Store>,
    gw: Gateway,
    ctl: Option<Arc<Dispatcher>>,
    data_dir: Option<std::path::PathBuf>,
) -> Router {
    Router::new()
        .route("/api/v1/backup", post(backup::backup))
        .route("/api/v1/tokens", post(tokens::create_token))
        .route("/api/v1/hosts", get(hosts::list_hosts))
        .route("/api/v1/hosts/{name}/revoke", post(hosts::revoke_host))
        .route("/api/v1/hosts/{name}/telemetry", get(hosts::host_telemetry))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/hosts/{name}/reports", get(hosts::host_reports))
        .route("/api/v1/status", get(status::fleet_status))
        .route("/api/v1/rollouts", get(rollouts::list_rollouts))
        .route("/api/v1/rollouts/current", get(rollouts::current_rollout))
        .route("/api/v1/rollouts/promote", post(rollouts::promote))
        .route("/api/v1/rollouts/{id}", get(rollouts::get_rollout))
        .route("/api/v1/commits/{id}", get(commits::get_commit))
        .route("/api/v1/sync", post(commits::sync_now))
        .route("/api/v1/webhooks/git", post(webhooks::git_webhook))
        .route("/api/v1/events", get(events::list_audit))
        .route("/api/v1/alerts", get(alerts::list_alerts))
        .route("/api/v1/rollouts/abort", post(rollouts::abort))
        .route("/api/v1/rollouts/rollback", post(rollouts::rollback))
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
        .route("/api/v1/alerts/test", post(alerts::test_alert))
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

pub use convoy_shared::api::HostView;

pub(crate) fn dispatcher(state: &ApiState) -> Result<&Arc<Dispatcher>, ApiError> {
    state.ctl.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the controller is not running",
        )
    })
}

pub(crate) fn engine_err(e: crate::rollout::EngineError) -> ApiError {
    ApiError::internal("reading rollout state", &e)
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "API task failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "task failed")
    })?
}

pub(crate) fn audit(
    state: &ApiState,
    who: &str,
    kind: &str,
    host: &str,
    rollout: &str,
    message: String,
) {
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
