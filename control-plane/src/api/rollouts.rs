//! Rollouts: list, current, one, promote, abort, rollback.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::auth::authorize;
use super::{ApiError, ApiState, audit, blocking, dispatcher, engine_err};
use crate::store::Scope;

/// A rollout as the API shows it: the state machine plus each host's
/// connection state.
pub(super) fn rollout_view(
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

pub(super) async fn list_rollouts(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = dispatcher(&state)?.clone();
    let live = state.gw.sessions_info();
    let list = blocking(move || ctl.engine().rollouts(50).map_err(engine_err)).await?;
    Ok(Json(list.iter().map(|r| rollout_view(r, &live)).collect()))
}

pub(super) async fn current_rollout(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = dispatcher(&state)?.clone();
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

pub(super) async fn get_rollout(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = dispatcher(&state)?.clone();
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

pub(super) async fn promote(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = authorize(&state, &headers, Scope::Admin)?;
    let ctl = dispatcher(&state)?.clone();
    let live = state.gw.sessions_info();
    let r = blocking(move || {
        ctl.promote().map_err(|e| match e {
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
pub(super) struct StopRequest {
    #[serde(default)]
    reason: Option<String>,
}

/// `abort` and `rollback` of the current rollout.
pub(super) async fn stop_rollout(
    state: ApiState,
    headers: HeaderMap,
    body: Option<Json<StopRequest>>,
    rollback: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = authorize(&state, &headers, Scope::Admin)?;
    let ctl = dispatcher(&state)?.clone();
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
        ctl.operate(&input)
            .map_err(engine_err)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no rollout"))
    })
    .await?;
    let kind = if rollback { "rollback" } else { "abort" };
    audit(&state, &who, kind, "", &r.id, reason);
    Ok(Json(rollout_view(&r, &live)))
}

pub(super) async fn abort(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Option<Json<StopRequest>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    stop_rollout(state, headers, body, false).await
}

pub(super) async fn rollback(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Option<Json<StopRequest>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    stop_rollout(state, headers, body, true).await
}

pub(super) fn rollout_status_label(s: &crate::rollout::RolloutStatus) -> &'static str {
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
