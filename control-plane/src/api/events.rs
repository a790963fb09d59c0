//! `GET /api/v1/events`: the audit log.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

use super::auth::authorize;
use super::{ApiError, ApiState, blocking, dispatcher};
use crate::store::Scope;

/// The audit log, newest first: `?host=&stack=&rollout=&kind=&before=&limit=`.
pub(super) async fn list_audit(
    State(state): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<crate::audit::Query>,
) -> Result<Json<Vec<crate::audit::AuditEntry>>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = dispatcher(&state)?.clone();
    let list = blocking(move || {
        ctl.audit()
            .query(&q)
            .map_err(|e| ApiError::internal("reading the audit log", &e))
    })
    .await?;
    Ok(Json(list))
}
