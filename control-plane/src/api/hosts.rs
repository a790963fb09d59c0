//! `GET /api/v1/hosts`, revocation, a host's stored reports and its
//! telemetry.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::auth::authorize;
use super::{ApiError, ApiState, HostView, audit, blocking, dispatcher};
use crate::store::Scope;

pub(super) async fn list_hosts(
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

pub(super) async fn revoke_host(
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
    let closed = tokio::task::spawn_blocking(move || {
        let now = gw.clock().now();
        gw.revoke(&n, now)
    })
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
pub(super) async fn host_reports(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let store = state.store.clone();
    let host = name.clone();
    let all = blocking(move || {
        store
            .reports_of(&host)
            .map_err(|e| ApiError::internal("reading reports", &e))
    })
    .await?;
    let mut out = Vec::new();
    for (id, stored) in all {
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

#[derive(Debug, Deserialize)]
pub(super) struct TelemetryQuery {
    /// History points to return (default 60, at most 720).
    points: Option<usize>,
}

pub(super) async fn host_telemetry(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<TelemetryQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = dispatcher(&state)?.clone();
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
