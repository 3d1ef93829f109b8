//! HTTP: one router, one state, one error type.
//!
//! * [`session`]: login, logout, who am I, and the [`session::AuthUser`] extractor.
//! * [`consults`]: the session log for managers, as JSON and CSV.
//! * [`admin`]: the admin console's API and the audit trail.
//! * [`oidc`]: sign-in through the trust's identity provider.
//! * [`reports`]: the response-time dashboard's figures.
//! * [`ws`]: the signalling WebSocket.
//! * [`live`]: which sockets belong to which session, so that ending a
//!   session closes them.
//! * [`serve`]: the HTTP server itself (timeouts, connection cap, TLS).
//! * [`ops`]: the metrics listener and the plain-HTTP redirect.
//! * [`web`]: the browser client's files.

pub mod admin;
pub mod consults;
pub mod live;
pub mod oidc;
pub mod ops;
pub mod reports;
pub mod serve;
pub mod session;
pub mod web;
pub mod ws;

use crate::auth::{LoginThrottle, Verifier, VerifyError};
use crate::clock::Clock;
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use session::AuthUser;
use signalling::Role;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Whether this instance leads, and its operator while it does.
    pub leader: crate::leader::Leadership,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub throttle: Arc<LoginThrottle>,
    pub verifier: Arc<Verifier>,
    pub live: Arc<live::LiveSessions>,
    pub patient_ref: Arc<crate::settings::PatientRefRule>,
    /// A hash to check against for unknown usernames, so that a login for
    /// an unknown user takes as long as one with a wrong password.
    pub dummy_hash: Arc<String>,
    /// The trust's identity provider, when one is configured.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
}

pub fn router(state: AppState) -> Router {
    let secure = state.settings.secure_cookies;
    // Everything under /api is personal or changes by the second (and
    // /api/me carries TURN credentials): never kept by a cache.
    let api = Router::new()
        .route(
            "/api/login",
            post(session::login).layer(DefaultBodyLimit::max(session::MAX_LOGIN_BODY)),
        )
        .route("/api/logout", post(session::logout))
        .route(
            "/api/password",
            post(session::change_password).layer(DefaultBodyLimit::max(session::MAX_LOGIN_BODY)),
        )
        .route("/api/me", get(session::me))
        .route("/api/consults", get(consults::list))
        .route("/api/consults.csv", get(consults::csv))
        .route("/api/consults/{id}/events", get(consults::events))
        .route("/api/reports", get(reports::report))
        .route(
            "/api/admin/accounts",
            get(admin::list_accounts)
                .post(admin::add_account)
                .layer(DefaultBodyLimit::max(admin::MAX_BODY)),
        )
        .route(
            "/api/admin/accounts/{username}",
            axum::routing::patch(admin::edit).layer(DefaultBodyLimit::max(admin::MAX_BODY)),
        )
        .route(
            "/api/admin/accounts/{username}/disable",
            post(admin::disable),
        )
        .route("/api/admin/accounts/{username}/enable", post(admin::enable))
        .route(
            "/api/admin/accounts/{username}/password",
            post(admin::reset_password),
        )
        .route("/api/admin/online", get(admin::online))
        .route("/api/admin/sessions/{id}/end", post(admin::end_session))
        .route("/api/audit", get(admin::audit))
        .route("/api/auth/options", get(oidc::options))
        .route("/api/audit.csv", get(admin::audit_csv))
        .route("/api/{*rest}", axum::routing::any(not_found))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/ws", get(ws::upgrade))
        .route("/auth/oidc/login", get(oidc::login))
        .route("/auth/oidc/callback", get(oidc::callback))
        .route("/auth/oidc/jwks.json", get(oidc::jwks))
        .merge(api)
        .fallback(web::serve)
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(PERMISSIONS_POLICY),
        ));
    let router = if secure {
        // Cookies marked Secure mean users reach this over HTTPS: tell
        // browsers never to try plain HTTP.
        router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
    } else {
        router
    };
    router.with_state(state)
}

/// The camera and microphone for this origin only; nothing else powerful.
pub const PERMISSIONS_POLICY: &str = "camera=(self), microphone=(self), display-capture=(), \
    geolocation=(), payment=(), usb=(), serial=(), bluetooth=()";

/// `/healthz`: the status for anyone (a load balancer, a monitor); the
/// figures (connections, queue, calls, version, epoch) only for a signed-in
/// admin, or on the metrics listener.
async fn healthz(State(state): State<AppState>, who: Result<AuthUser, ApiError>) -> Response {
    let details = matches!(&who, Ok(w) if w.user.role == Role::Admin);
    let (status, body) = health(&state, details).await;
    (status, Json(body)).into_response()
}

/// The health of this instance: 200 only on the leader, when its database
/// answers, its log can be written and its switchboard runs.
pub async fn health(state: &AppState, details: bool) -> (StatusCode, Value) {
    let stats = &state.leader.stats;
    let role = state.leader.role();
    let log_ok = stats.log_ok.load(Ordering::Relaxed);
    let db_ok = state.store.ping().await.is_ok();
    let leading = role.is_leader();
    // A dead switchboard is never healthy, whatever else answers.
    let operator_ok = !*stats.dead.borrow();
    let healthy = leading && log_ok && db_ok && operator_ok;
    let mut body = json!({
        "status": if healthy { "ok" } else if leading || !operator_ok { "degraded" } else { "standby" },
        "role": role.as_str(),
        "switchboard": if operator_ok { "running" } else { "stopped" },
        "database": db_ok,
        "session_log_writable": log_ok,
    });
    if details {
        body["connections"] = json!(if leading {
            stats.connections.load(Ordering::Relaxed)
        } else {
            0
        });
        body["waiting_requests"] = json!(if leading {
            stats.waiting.load(Ordering::Relaxed)
        } else {
            0
        });
        body["calls"] = json!(if leading {
            stats.calls.load(Ordering::Relaxed)
        } else {
            0
        });
        body["version"] = json!(env!("CARGO_PKG_VERSION"));
        if let crate::leader::Role::Leader { epoch } = role {
            if state.store.backend() == crate::store::Backend::Postgres {
                body["epoch"] = json!(epoch);
            }
        }
    }
    // A load balancer sends traffic only where this is 200: the leader,
    // when it can write its log.
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

/// The headers of a CSV download named `{prefix}-{today}.csv`.
pub fn csv_download(prefix: &str, now_ms: i64) -> [(HeaderName, String); 2] {
    let day = crate::timefmt::iso_utc(now_ms);
    let name = format!("{prefix}-{}.csv", day.get(..10).unwrap_or(&day));
    [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ),
    ]
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
    #[error("too many failed logins; try again in {0} seconds")]
    TooManyAttempts(i64),
    #[error("this instance is standing by; the leader serves connections (reconnect through the service's address)")]
    Standby,
    #[error("the server is checking too many passwords at once; try again in a second")]
    Busy,
    #[error("{0}")]
    WeakPassword(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("choose a new password first: this account's password was generated for it")]
    PasswordChangeRequired,
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
            ApiError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::Standby => (StatusCode::SERVICE_UNAVAILABLE, "standby"),
            ApiError::WeakPassword(_) => (StatusCode::BAD_REQUEST, "weak_password"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::PasswordChangeRequired => (StatusCode::FORBIDDEN, "password_change_required"),
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
        let retry_after = match &self {
            ApiError::TooManyAttempts(secs) => Some((*secs).max(1)),
            ApiError::Busy | ApiError::Standby => Some(1),
            _ => None,
        };
        let mut response =
            (status, Json(json!({ "error": code, "message": message }))).into_response();
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Busy => ApiError::Busy,
            VerifyError::Failed(why) => ApiError::Internal(why),
        }
    }
}
