//! `GET /metrics`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::auth::authorize;
use super::rollouts::rollout_status_label;
use super::{ApiError, ApiState, blocking, dispatcher, engine_err};
use crate::store::Scope;
use crate::telemetry::ControlPlaneHealth;
use crate::telemetry::prometheus;

/// `GET /metrics`: the fleet's telemetry and the control plane's health in
/// the Prometheus text format. Needs a read-scope bearer token (Prometheus
/// `authorization: {credentials_file: ...}`): host names, GPU models and
/// container names are fleet inventory.
pub(super) async fn metrics(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = dispatcher(&state)?.clone();
    let connected_agents = state.gw.sessions_info().len();
    let store = state.store.clone();
    let c = ctl.clone();
    let (enrolled_hosts, statuses) = blocking(move || {
        let hosts = store
            .host_count()
            .map_err(|e| ApiError::internal("counting hosts", &e))?;
        Ok((hosts, c.engine().recent_statuses(50).map_err(engine_err)?))
    })
    .await?;
    let mut health = ControlPlaneHealth {
        connected_agents,
        enrolled_hosts,
        alert_outbox_pending: ctl.alerts().map(|a| a.pending_count()),
        ..Default::default()
    };
    for s in &statuses {
        *health
            .rollouts_by_status
            .entry(rollout_status_label(s))
            .or_default() += 1;
    }
    // Newest first.
    health.current_rollout_status = statuses.first().map(rollout_status_label);
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
    // Encoding walks every host under the telemetry lock: off the async
    // workers.
    let telemetry = ctl.telemetry().clone();
    let body =
        blocking(move || Ok(prometheus::encode(&prometheus::registry(telemetry, health)))).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        body,
    )
        .into_response())
}
