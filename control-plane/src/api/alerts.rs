//! `GET /api/v1/alerts` and `POST /api/v1/alerts/test`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::auth::authorize;
use super::{ApiError, ApiState, blocking, dispatcher};
use crate::store::Scope;

pub(super) async fn list_alerts(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = dispatcher(&state)?.clone();
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
pub(super) struct TestAlert {
    sink: String,
}

pub(super) async fn test_alert(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Json(req): Json<TestAlert>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let ctl = dispatcher(&state)?.clone();
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
