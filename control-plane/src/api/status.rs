//! `GET /api/v1/status`, `/healthz` and `/readyz`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::auth::authorize;
use super::rollouts::rollout_view;
use super::{ApiError, ApiState, blocking, dispatcher, engine_err};
use crate::store::Scope;

pub(super) async fn fleet_status(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = dispatcher(&state)?.clone();
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
        "git": ctl.sync().state(),
        "last_good_commit": last_good,
        "current_rollout": current.as_ref().map(|r| rollout_view(r, &live)),
        "connected_hosts": live.keys().collect::<Vec<_>>(),
        "alerts_pending": ctl.alerts().map(|a| a.pending_count()),
    })))
}

/// Liveness: the process answers.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the store answers and the controller runs.
pub(super) async fn readyz(State(state): State<ApiState>) -> Result<&'static str, ApiError> {
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
