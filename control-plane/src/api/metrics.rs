//! `GET /metrics`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::auth::authorize;
use super::rollouts::rollout_status_label;
use super::{ApiError, ApiState, blocking, controller, engine_err};
use crate::store::Scope;

/// `GET /metrics`: the fleet's telemetry and the control plane's health in
/// the Prometheus text format. Needs a read-scope bearer token (Prometheus
/// `authorization: {credentials_file: ...}`): host names, GPU models and
/// container names are fleet inventory.
pub(super) async fn metrics(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
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
