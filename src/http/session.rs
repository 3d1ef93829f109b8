//! Logging in and out, and finding out who a request comes from.

use super::{ApiError, AppState};
use crate::auth;
use crate::store::UserRecord;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use signalling::Role;

pub const COOKIE_NAME: &str = "miulink_session";

/// The logged-in account behind a request: from the session cookie, or
/// from `Authorization: Bearer TOKEN` (for programs such as the probe).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: UserRecord,
    /// True when the token came from the cookie (a browser).
    pub via_cookie: bool,
}

impl AuthUser {
    /// Refuses with 403 unless the account has one of these roles.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.user.role) {
            Ok(())
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "this needs a {} account; you are logged in as a {}",
                allowed.join(" or "),
                self.user.role.as_str()
            )))
        }
    }
}

/// The session token in a request, and whether it came from the cookie.
pub fn token_from_headers(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(token) = value.strip_prefix("Bearer ") {
            return Some((token.trim().to_owned(), false));
        }
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| (value.to_owned(), true))
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, via_cookie) =
            token_from_headers(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let user = state
            .store
            .session_user(&auth::token_hash(&token), state.clock.now_ms())
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(AuthUser { user, via_cookie })
    }
}

#[derive(Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

pub async fn login(
    State(state): State<AppState>,
    Json(body): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let now = state.clock.now_ms();
    let username = body.username.trim().to_owned();
    if let Some(wait_ms) = state.limiter.locked_for(&username, now) {
        return Err(ApiError::TooManyAttempts((wait_ms + 999) / 1000));
    }
    let user = state.store.user_by_username(&username).await?;
    let hash = match &user {
        Some(u) => u.password_hash.clone(),
        None => state.dummy_hash.as_ref().clone(),
    };
    let password = body.password;
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &password))
        .await
        .map_err(|e| ApiError::Internal(format!("password check failed: {e}")))?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            state.limiter.failed(&username, now);
            tracing::info!(username = %username, "failed login");
            return Err(ApiError::BadCredentials);
        }
    };
    state.limiter.succeeded(&username);
    let token = auth::new_token();
    let ttl = state.settings.session_ttl_ms;
    state
        .store
        .create_session(&auth::token_hash(&token), user.id, now, now + ttl)
        .await?;
    tracing::info!(username = %user.username, role = user.role.as_str(), "login");
    let cookie = format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl / 1000,
        if state.settings.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    let body = json!({
        "token": token,
        "role": user.role,
        "display_name": user.display_name,
        "username": user.username,
        "site": user.site,
        "expires_at": now + ttl,
    });
    Ok(([(SET_COOKIE, cookie)], Json(body)).into_response())
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some((token, _)) = token_from_headers(&headers) {
        state
            .store
            .delete_session(&auth::token_hash(&token))
            .await?;
    }
    let cookie = format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(SET_COOKIE, cookie)], Json(json!({ "ok": true }))).into_response())
}

/// Who is logged in, and the settings a client needs before it connects.
pub async fn me(State(state): State<AppState>, who: AuthUser) -> Json<serde_json::Value> {
    let u = &who.user;
    Json(json!({
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "role": u.role,
        "site": u.site,
        "demo": u.demo,
        "escalation_duty": u.escalation_duty,
        "settings": {
            "fallback_phone": state.settings.fallback_phone,
            "test_call_clinician": state.settings.test_call_clinician,
            "ice_servers": super::ws::ice_servers(&state, &u.username),
            "ice_transport_policy": if state.settings.relay_only { "relay" } else { "all" },
        },
    }))
}
