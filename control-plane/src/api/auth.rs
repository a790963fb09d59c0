//! Bearer-token authentication: the presented token's SHA-256 against
//! every stored hash, in constant time.

use axum::http::{HeaderMap, StatusCode};
use subtle::ConstantTimeEq;

use super::{ApiError, ApiState};
use crate::store::{Scope, api_token_hash};

/// Checks the bearer token and its scope.
pub(super) fn authorize(
    state: &ApiState,
    headers: &HeaderMap,
    need: Scope,
) -> Result<String, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    };
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let presented = api_token_hash(token.trim());
    let tokens = state
        .store
        .api_tokens()
        .map_err(|e| ApiError::internal("reading API tokens", &e))?;
    // Compare against every stored hash without stopping at a match, so
    // timing says nothing about which (or whether a) token matched.
    let mut found = None;
    for (hash, rec) in &tokens {
        if bool::from(hash.as_bytes().ct_eq(presented.as_bytes())) {
            found = Some((rec.scope, rec.name.clone()));
        }
    }
    match (found, need) {
        (None, _) => Err(unauthorized()),
        (Some((Scope::Read, _)), Scope::Admin) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token has read scope; admin is required",
        )),
        (Some((_, name)), _) => Ok(name),
    }
}
