//! HTTP: one router, one state, one error type.
//!
//! * [`session`]: login, logout, who am I, and the [`session::AuthUser`] extractor.
//! * [`consults`]: the session log for managers, as JSON and CSV.
//! * [`reports`]: the response-time dashboard's figures.
//! * [`ws`]: the signalling WebSocket.
//! * [`web`]: the browser client's files.

pub mod consults;
pub mod reports;
pub mod session;
pub mod web;
pub mod ws;

use crate::auth::LoginLimiter;
use crate::clock::Clock;
use crate::hub::HubHandle;
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub hub: HubHandle,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub limiter: Arc<LoginLimiter>,
    /// A hash to check against for unknown usernames, so that a login for
    /// an unknown user takes as long as one with a wrong password.
    pub dummy_hash: Arc<String>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/me", get(session::me))
        .route("/api/consults", get(consults::list))
        .route("/api/consults.csv", get(consults::csv))
        .route("/api/consults/{id}/events", get(consults::events))
        .route("/api/reports", get(reports::report))
        .route("/ws", get(ws::upgrade))
        .route("/api/{*rest}", axum::routing::any(not_found))
        .fallback(web::serve)
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(state)
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let stats = &state.hub.stats;
    let log_ok = stats.log_ok.load(Ordering::Relaxed);
    let db_ok = state.store.ping().await.is_ok();
    let body = json!({
        "status": if log_ok && db_ok { "ok" } else { "degraded" },
        "database": db_ok,
        "session_log_writable": log_ok,
        "connections": stats.connections.load(Ordering::Relaxed),
        "waiting_requests": stats.waiting.load(Ordering::Relaxed),
        "calls": stats.calls.load(Ordering::Relaxed),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if log_ok && db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such page or API; see the README for the list".into())
}

/// Every error an HTTP handler returns. Database details are logged, never
/// shown to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("log in first")]
    Unauthorized,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("too many failed logins for this account; try again in {0} seconds")]
    TooManyAttempts(i64),
    #[error("internal error")]
    Store(#[from] StoreError),
    #[error("internal error")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            ApiError::Store(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let message = match &self {
            ApiError::Store(e) => {
                tracing::error!(error = %e, "request failed on the database");
                "the server could not read or write its database; try again, and tell IT if it persists".to_owned()
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "request failed");
                "the server failed; try again, and tell IT if it persists".to_owned()
            }
            other => other.to_string(),
        };
        (status, Json(json!({ "error": code, "message": message }))).into_response()
    }
}
