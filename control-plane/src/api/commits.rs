//! `GET /api/v1/commits/{id}` and `POST /api/v1/sync`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::auth::authorize;
use super::{ApiError, ApiState, audit, blocking, dispatcher, engine_err};
use crate::store::Scope;

pub(super) async fn get_commit(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<crate::rollout::CommitRecord>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let ctl = dispatcher(&state)?.clone();
    match blocking(move || ctl.engine().commit(&id).map_err(engine_err)).await? {
        Some(c) => Ok(Json(c)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "commit not seen",
        )),
    }
}

pub(super) async fn sync_now(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let who = authorize(&state, &headers, Scope::Admin)?;
    dispatcher(&state)?.sync().trigger();
    audit(&state, &who, "sync", "", "", "fetch requested".into());
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"sync": "queued"})),
    ))
}
