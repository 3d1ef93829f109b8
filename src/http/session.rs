//! Logging in and out, and finding out who a request comes from.

use super::live::Ended;
use super::{ApiError, AppState};
use crate::auth;
use crate::store::{Actor, NewAudit, UserRecord};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use signalling::Role;
use std::net::{IpAddr, SocketAddr};

pub const COOKIE_NAME: &str = "miulink_session";

/// The logged-in account behind a request: from the session cookie, or
/// from `Authorization: Bearer TOKEN` (for programs such as the probe).
/// An account that owes a password change is refused everything but
/// [`change_password`] and [`logout`] (403 `password_change_required`).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: UserRecord,
    /// True when the token came from the cookie (a browser).
    pub via_cookie: bool,
    /// The session's token hash, to tie sockets to the session.
    pub token_hash: String,
    /// When the session expires (UTC ms).
    pub expires_at: i64,
}

/// Like [`AuthUser`], but also for an account that still owes a password
/// change (for the change itself).
pub struct AnyAuthUser(pub AuthUser);

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
    cookie(headers, COOKIE_NAME).map(|value| (value, true))
}

/// The value of the cookie called `name`, if the request has it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

impl FromRequestParts<AppState> for AnyAuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, via_cookie) =
            token_from_headers(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let now = state.clock.now_ms();
        let token_hash = auth::token_hash(&token);
        let (user, expires_at) = state
            .store
            .session_user(&token_hash, now, now - state.settings.session_idle_ms)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if state.live.should_touch(&token_hash, now) {
            state.store.touch_session(&token_hash, now).await?;
        }
        Ok(AnyAuthUser(AuthUser {
            user,
            via_cookie,
            token_hash,
            expires_at,
        }))
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AnyAuthUser(who) = AnyAuthUser::from_request_parts(parts, state).await?;
        if who.user.must_change_password {
            return Err(ApiError::PasswordChangeRequired);
        }
        Ok(who)
    }
}

/// The client's address: the peer's, or the one a trusted proxy (see
/// `--trusted-proxy`) put last in `X-Forwarded-For`.
pub fn client_addr(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let peer = peer.ip();
    if !state.settings.trusted_proxies.contains(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .rev()
        .find(|a| !state.settings.trusted_proxies.contains(a))
        .unwrap_or(peer)
}

#[derive(Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// Programs that use `Authorization: Bearer` (the probe) ask for the
    /// token in the answer; browsers use the HttpOnly cookie only.
    #[serde(default)]
    pub want_token: bool,
}

/// The largest login or password-change body read.
pub const MAX_LOGIN_BODY: usize = 4096;

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| {
        let what = format!(
            "send JSON {{\"username\": ..., \"password\": ...}} of at most {MAX_LOGIN_BODY} bytes ({})",
            e.body_text()
        );
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(what)
        } else {
            ApiError::BadRequest(what)
        }
    })?;
    // Before anything else looks at it (the throttle, the database, the log).
    let username = body.username.trim();
    auth::check_username(username).map_err(ApiError::BadRequest)?;
    let username = username.to_owned();
    let client = client_addr(&state, peer, &headers);
    let now = state.clock.now_ms();
    let user = state.store.user_by_username(&username).await?;
    let attempt = state
        .throttle
        .attempt(client, user.as_ref().map(|u| u.id.0), now)
        .map_err(|wait_ms| {
            tracing::info!(%client, "login refused by the throttle");
            ApiError::TooManyAttempts((wait_ms + 999) / 1000)
        })?;
    let hash = match &user {
        Some(u) => u.password_hash.clone(),
        None => state.dummy_hash.as_ref().clone(),
    };
    // One address's logins take turns into the shared queue, so that one
    // attacker cannot fill it ahead of everybody else.
    let Some(turn) = state.throttle.address_turn(&attempt).await else {
        state.throttle.take_back(attempt);
        return Err(ApiError::Busy);
    };
    let verified = state.verifier.verify(hash, body.password).await;
    drop(turn);
    let ok = match verified {
        Ok(ok) => ok,
        Err(e) => {
            // Never checked: it must not count as a failed guess (the real
            // user retrying after a 503 would be throttled for it).
            state.throttle.take_back(attempt);
            return Err(e.into());
        }
    };
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        Some(u) => {
            tracing::info!(username = %u.username, %client, "failed login");
            let why = if u.disabled {
                "disabled"
            } else {
                "wrong password"
            };
            audit(
                &state,
                NewAudit::new(now, Actor::Anonymous, "login_failed")
                    .target(u.username.clone())
                    .detail(json!({ "reason": why }))
                    .client(client),
            )
            .await;
            return Err(ApiError::BadCredentials);
        }
        None => {
            // What was typed is not logged: it may be a password typed
            // into the wrong box.
            tracing::info!(%client, "failed login for an unknown username");
            audit(
                &state,
                NewAudit::new(now, Actor::Anonymous, "login_failed")
                    .detail(json!({ "reason": "unknown username" }))
                    .client(client),
            )
            .await;
            return Err(ApiError::BadCredentials);
        }
    };
    if let Err(why) = local_login_allowed(&state, &user) {
        audit(
            &state,
            NewAudit::new(now, Actor::account(user.id, &user.username), "login_failed")
                .target(user.username.clone())
                .detail(json!({ "reason": "password sign-in not allowed for this account" }))
                .client(client),
        )
        .await;
        return Err(ApiError::Forbidden(why));
    }
    state.throttle.succeeded(attempt);
    let (token, cookie) = open_session(&state, &user, now).await?;
    let ttl = state.settings.session_ttl_ms;
    tracing::info!(username = %user.username, role = user.role.as_str(), %client, "login");
    audit(
        &state,
        NewAudit::new(
            now,
            Actor::account(user.id, &user.username),
            "login_succeeded",
        )
        .target(user.username.clone())
        .detail(json!({
            "via": "password",
            "break_glass": user.break_glass && state.settings.oidc.is_some(),
        }))
        .client(client),
    )
    .await;
    let mut answer = json!({
        "role": user.role,
        "display_name": user.display_name,
        "username": user.username,
        "site": user.site,
        "expires_at": now + ttl,
        "must_change_password": user.must_change_password,
    });
    if body.want_token {
        answer["token"] = json!(token);
    }
    Ok(([(SET_COOKIE, cookie)], Json(answer)).into_response())
}

pub async fn logout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut answer = json!({ "ok": true });
    if let Some((token, _)) = token_from_headers(&headers) {
        let hash = auth::token_hash(&token);
        let now = state.clock.now_ms();
        let ended = state.store.take_session(&hash).await?;
        // Every socket of this session closes now, in every window.
        state.live.end(&hash, Ended::SignedOut);
        if let Some(ended) = ended {
            audit(
                &state,
                NewAudit::new(
                    now,
                    Actor::account(ended.user_id, &ended.username),
                    "logout",
                )
                .target(ended.username.clone())
                .detail(json!({ "via": ended.via }))
                .client(client_addr(&state, peer, &headers)),
            )
            .await;
            // Signed in through the identity provider: end that session
            // too, where the provider offers it (RP-initiated logout).
            if let Some(id_token) = ended.id_token {
                if let Some(url) = super::oidc::end_session_url(&state, &id_token).await {
                    answer["redirect"] = json!(url);
                }
            }
        }
    }
    let cookie = format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(SET_COOKIE, cookie)], Json(answer)).into_response())
}

/// A new session for this account: its token, and the cookie that holds
/// it (HttpOnly, SameSite=Strict, Secure over HTTPS).
pub async fn open_session(
    state: &AppState,
    user: &UserRecord,
    now: i64,
) -> Result<(String, String), ApiError> {
    let token = auth::new_token();
    let ttl = state.settings.session_ttl_ms;
    state
        .store
        .create_session(
            &auth::token_hash(&token),
            user.id,
            now,
            now + ttl,
            state.settings.max_sessions_per_account,
        )
        .await?;
    let cookie = format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl / 1000,
        if state.settings.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    Ok((token, cookie))
}

/// Appends to the audit trail; a failure is logged, never shown to the
/// user (the action itself has happened).
pub async fn audit(state: &AppState, entry: NewAudit) {
    if let Err(e) = state.store.audit(&entry).await {
        tracing::error!(error = %e, action = entry.action, "cannot write the audit trail");
    }
}

/// Whether this account may sign in with a password, given
/// `--local-login`: an error saying what to do instead.
pub fn local_login_allowed(state: &AppState, user: &UserRecord) -> Result<(), String> {
    use crate::settings::LocalLogin;
    let allowed = match state.settings.local_login() {
        LocalLogin::All => true,
        LocalLogin::Stations => user.role == Role::Station || user.break_glass,
        LocalLogin::Off => user.break_glass,
    };
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "{} accounts sign in with {}; use that button on the sign-in page",
            user.role.as_str(),
            state
                .settings
                .oidc
                .as_ref()
                .map_or("the trust's identity provider", |o| o.label.as_str())
        ))
    }
}

#[derive(Deserialize)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// `POST /api/password`: a signed-in user sets a new password (owed at the
/// first sign-in with a generated one). Other sessions of the account end.
pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    AnyAuthUser(who): AnyAuthUser,
    body: Result<Json<PasswordChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::BadRequest(format!(
            "send JSON {{\"current_password\": ..., \"new_password\": ...}} ({})",
            e.body_text()
        ))
    })?;
    if let Err(why) = auth::check_password_policy(&body.new_password) {
        return Err(ApiError::WeakPassword(why));
    }
    if body.new_password == body.current_password {
        return Err(ApiError::WeakPassword(
            "the new password must differ from the current one".into(),
        ));
    }
    let ok = state
        .verifier
        .verify(who.user.password_hash.clone(), body.current_password)
        .await?;
    if !ok {
        tracing::info!(username = %who.user.username, "password change with a wrong current password");
        return Err(ApiError::BadCredentials);
    }
    let new = body.new_password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&new))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))?
        .map_err(ApiError::Internal)?;
    state
        .store
        .set_password_changed(who.user.id, &hash, &who.token_hash)
        .await?;
    // Sockets of the other sessions close at the next check; this one stays.
    tracing::info!(username = %who.user.username, "password changed");
    audit(
        &state,
        NewAudit::new(
            state.clock.now_ms(),
            Actor::account(who.user.id, &who.user.username),
            "password_changed",
        )
        .target(who.user.username.clone())
        .client(client_addr(&state, peer, &headers)),
    )
    .await;
    Ok(Json(json!({ "ok": true })).into_response())
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
            "ice_servers": super::ws::ice_servers(&state, u.role, &u.username),
            "ice_transport_policy": if state.settings.relay_only { "relay" } else { "all" },
            "patient_ref_pattern": state.settings.patient_ref_pattern,
            "patient_ref_hint": state.patient_ref.hint(),
        },
    }))
}
