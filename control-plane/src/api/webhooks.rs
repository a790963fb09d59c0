//! `POST /api/v1/webhooks/git`: forge webhooks.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::{ApiError, ApiState, dispatcher};

/// Forge webhooks: verified (constant time) before anything happens, then
/// answered at once; the fetch is queued (forges time out after 5-10 s).
pub(super) async fn git_webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let ctl = dispatcher(&state)?;
    let Some(secret) = ctl.sync().webhook_secret() else {
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
            ctl.sync().trigger();
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
