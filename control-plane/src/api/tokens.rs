//! `POST /api/v1/tokens`: join tokens.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use convoy_pki::JoinToken;
use serde::{Deserialize, Serialize};

use super::auth::authorize;
use super::{ApiError, ApiState, audit};
use crate::store::Scope;

/// Default join-token lifetime.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);
/// Longest join-token lifetime accepted: a week; a token is a credential.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenRequest {
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

pub(super) async fn create_token(
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
    let now = state.gw.clock().now();
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
