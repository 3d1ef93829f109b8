//! The admin console's API (`/api/admin/...`, admins only) and the audit
//! trail (`/api/audit`, `/api/audit.csv`).
//!
//! Account changes go through [`crate::accounts`], the same rules as the
//! command line, each written with its audit entry. Disabling an account
//! or resetting its password ends its sessions and closes its live
//! WebSockets at once (close code 4001, "signed out").

use super::live::Ended;
use super::session::{client_addr, AuthUser};
use super::{ApiError, AppState};
use crate::accounts::{self, AccountError, ChangedBy, NewAccount};
use crate::store::{Actor, AuditFilter, NewAudit, UserRecord};
use crate::timefmt::{self, Bound};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use signalling::Role;
use std::net::SocketAddr;

/// The largest JSON body an admin request may send.
pub const MAX_BODY: usize = 4096;

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(why) => ApiError::BadRequest(why),
            AccountError::NoSuchAccount(name) => {
                ApiError::NotFound(format!("no account named {name:?}"))
            }
            AccountError::Store(e) => match e {
                crate::store::StoreError::Invalid(why) => ApiError::BadRequest(why),
                other => ApiError::Store(other),
            },
            AccountError::Internal(why) => ApiError::Internal(why),
        }
    }
}

/// The signed-in admin, as the author of a change: the session (an
/// admin's, not one that must change its password first), the client's
/// address and the time, taken once for the audit entry.
pub struct AdminChange {
    pub who: AuthUser,
    pub by: ChangedBy,
}

impl FromRequestParts<AppState> for AdminChange {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let who = AuthUser::from_request_parts(parts, state).await?;
        who.require(&[Role::Admin])?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer)
            .ok_or_else(|| {
                ApiError::Internal("the server was started without client addresses".into())
            })?;
        let by = ChangedBy {
            actor: Actor::account(who.user.id, &who.user.username),
            client: Some(client_addr(state, peer, &parts.headers)),
            now: state.clock.now_ms(),
        };
        Ok(AdminChange { who, by })
    }
}

fn body<T>(body: Result<Json<T>, JsonRejection>, what: &str) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::BadRequest(format!("send JSON {what} ({})", e.body_text())))
}

/// An account as the console shows it.
fn account_json(u: &UserRecord, online: bool) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "role": u.role,
        "site": u.site,
        "disabled": u.disabled,
        "demo": u.demo,
        "escalation_duty": u.escalation_duty,
        "monitoring": u.monitoring,
        "break_glass": u.break_glass,
        "sso": u.oidc_subject.is_some(),
        "must_change_password": u.must_change_password,
        "created_at": u.created_at,
        "online": online,
    })
}

#[derive(Debug, Deserialize, Default)]
pub struct AccountQuery {
    /// Matches username, display name or site (case-insensitive).
    pub q: Option<String>,
    pub role: Option<String>,
}

/// `GET /api/admin/accounts?q=&role=`
pub async fn list_accounts(
    State(state): State<AppState>,
    who: AuthUser,
    Query(query): Query<AccountQuery>,
) -> Result<Json<Value>, ApiError> {
    who.require(&[Role::Admin])?;
    let needle = query
        .q
        .as_deref()
        .map(|q| q.trim().to_lowercase())
        .filter(|q| !q.is_empty());
    let role = match query.role.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(Role::parse(r).ok_or_else(|| {
            ApiError::BadRequest(format!("role {r:?}: station, clinician, manager or admin"))
        })?),
        None => None,
    };
    let online: std::collections::HashSet<signalling::UserId> = state
        .live
        .open_sockets()
        .into_iter()
        .map(|(_, s)| s.user_id)
        .collect();
    let accounts: Vec<Value> = state
        .store
        .list_users()
        .await?
        .iter()
        .filter(|u| role.is_none_or(|r| u.role == r))
        .filter(|u| {
            needle.as_deref().is_none_or(|n| {
                u.username.to_lowercase().contains(n)
                    || u.display_name.to_lowercase().contains(n)
                    || u.site
                        .as_deref()
                        .is_some_and(|s| s.to_lowercase().contains(n))
            })
        })
        .map(|u| account_json(u, online.contains(&u.id)))
        .collect();
    Ok(Json(
        json!({ "count": accounts.len(), "accounts": accounts }),
    ))
}

/// `POST /api/admin/accounts`: a new account; a generated password is in
/// the answer, once.
pub async fn add_account(
    State(state): State<AppState>,
    AdminChange { by, .. }: AdminChange,
    new: Result<Json<NewAccount>, JsonRejection>,
) -> Result<Response, ApiError> {
    let new = body(
        new,
        "{\"username\", \"display_name\", \"role\", \"site\", \"escalation_duty\", \"monitoring\", \"break_glass\"}",
    )?;
    let (user, password) = accounts::add(&state.store, &by, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "account": account_json(&user, false),
            "password": password,
        })),
    )
        .into_response())
}

/// Closes the live sockets of an account whose sessions just ended.
fn sign_out_everywhere(state: &AppState, user: &UserRecord) -> usize {
    state.live.end_user(user.id, Ended::Revoked)
}

/// `POST /api/admin/accounts/{username}/disable`
pub async fn disable(
    State(state): State<AppState>,
    AdminChange { who, by }: AdminChange,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if username == who.user.username {
        return Err(ApiError::BadRequest(
            "you cannot disable your own account; ask another admin".into(),
        ));
    }
    let user = accounts::set_disabled(&state.store, &by, &username, true).await?;
    let closed = sign_out_everywhere(&state, &user);
    Ok(Json(json!({
        "account": account_json(&user, false),
        "sessions_closed": closed,
    })))
}

/// `POST /api/admin/accounts/{username}/enable`
pub async fn enable(
    State(state): State<AppState>,
    AdminChange { by, .. }: AdminChange,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = accounts::set_disabled(&state.store, &by, &username, false).await?;
    Ok(Json(json!({ "account": account_json(&user, false) })))
}

/// `POST /api/admin/accounts/{username}/password`: a generated password,
/// shown once; the account's sessions end.
pub async fn reset_password(
    State(state): State<AppState>,
    AdminChange { who, by }: AdminChange,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if username == who.user.username {
        return Err(ApiError::BadRequest(
            "change your own password on the sign-in page (you must know the current one), \
             or ask another admin to reset it"
                .into(),
        ));
    }
    let (user, password) = accounts::reset_password(&state.store, &by, &username, None).await?;
    let closed = sign_out_everywhere(&state, &user);
    Ok(Json(json!({
        "account": account_json(&user, false),
        "password": password,
        "sessions_closed": closed,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEdit {
    pub escalation_duty: Option<bool>,
    pub monitoring: Option<bool>,
    /// `""` or null clears it (not for a station).
    #[serde(default, deserialize_with = "some_or_null")]
    pub site: Option<Option<String>>,
}

/// Distinguishes a `site` left out from one set to null.
fn some_or_null<'de, D>(d: D) -> Result<Option<Option<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/admin/accounts/{username}`: escalation duty, monitoring,
/// site; each one given is changed (and audited) in turn.
pub async fn edit(
    State(state): State<AppState>,
    AdminChange { by, .. }: AdminChange,
    Path(username): Path<String>,
    change: Result<Json<AccountEdit>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let change = body(change, "{\"escalation_duty\", \"monitoring\", \"site\"}")?;
    let mut user = state
        .store
        .user_by_username(&username)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no account named {username:?}")))?;
    if let Some(duty) = change
        .escalation_duty
        .filter(|d| *d != user.escalation_duty)
    {
        user = accounts::set_escalation_duty(&state.store, &by, &username, duty).await?;
    }
    if let Some(m) = change.monitoring.filter(|m| *m != user.monitoring) {
        user = accounts::set_monitoring(&state.store, &by, &username, m).await?;
    }
    if let Some(site) = change.site {
        if site.as_deref().map(str::trim) != user.site.as_deref() {
            user = accounts::set_site(&state.store, &by, &username, site.as_deref()).await?;
        }
    }
    Ok(Json(json!({ "account": account_json(&user, false) })))
}

/// `GET /api/admin/online`: every open signalling connection, with what
/// its account is doing, then every other live sign-in (a manager on the
/// dashboard, an admin here: signed in, no call screen open).
pub async fn online(State(state): State<AppState>, who: AuthUser) -> Result<Json<Value>, ApiError> {
    who.require(&[Role::Admin])?;
    let states = match state.leader.operator() {
        Some(operator) => operator.snapshot().await.unwrap_or_default(),
        None => Vec::new(),
    };
    let by_user: std::collections::HashMap<_, _> = states.iter().map(|s| (s.user_id, s)).collect();
    let sockets = state.live.open_sockets();
    let with_screen: std::collections::HashSet<String> =
        sockets.iter().map(|(session, _)| session.clone()).collect();
    let mut online: Vec<Value> = sockets
        .into_iter()
        .map(|(session, s)| {
            let now = by_user.get(&s.user_id);
            json!({
                "session_id": session,
                "user_id": s.user_id,
                "username": s.username,
                "display_name": s.display_name,
                "role": s.role,
                "since": s.since,
                "screen": true,
                "availability": now.and_then(|n| n.availability),
                "activity": now.map(|n| n.activity.as_str()),
            })
        })
        .collect();
    let now = state.clock.now_ms();
    for s in state
        .store
        .live_session_list(now, now - state.settings.session_idle_ms)
        .await?
    {
        let id = super::live::session_id(&s.token_hash);
        if with_screen.contains(&id) {
            continue;
        }
        online.push(json!({
            "session_id": id,
            "user_id": s.user_id,
            "username": s.username,
            "display_name": s.display_name,
            "role": s.role,
            "since": s.created_at,
            "last_seen_at": s.last_seen_at,
            "screen": false,
            "via": s.via,
            "availability": null,
            "activity": "signed_in",
        }));
    }
    Ok(Json(json!({ "count": online.len(), "online": online })))
}

/// `POST /api/admin/sessions/{id}/end`: signs that session out (its
/// sockets close at once).
pub async fn end_session(
    State(state): State<AppState>,
    AdminChange { by, .. }: AdminChange,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id.len() != 16 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest(
            "a session id is 16 hexadecimal digits (from /api/admin/online)".into(),
        ));
    }
    let ended = state
        .store
        .end_session_by_id(
            &id,
            &NewAudit::new(by.now, by.actor.clone(), "session_ended")
                .detail(json!({ "session_id": id })),
            by.client,
        )
        .await?;
    let Some((hash, username)) = ended else {
        return Err(ApiError::NotFound(format!(
            "no live session {id} (it may have ended already)"
        )));
    };
    state.live.end(&hash, Ended::Revoked);
    Ok(Json(json!({ "ended": id, "username": username })))
}

#[derive(Debug, Deserialize, Default)]
pub struct AuditQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        let time = |v: &Option<String>, b| {
            v.as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| timefmt::parse_time(s, b))
                .transpose()
                .map_err(ApiError::BadRequest)
        };
        let text = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        Ok(AuditFilter {
            from: time(&self.from, Bound::Start)?,
            to: time(&self.to, Bound::End)?,
            actor: text(&self.actor),
            action: text(&self.action),
            target: text(&self.target),
            limit: None,
            offset: None,
        })
    }
}

/// `GET /api/audit`: newest first, paged (`limit` up to 1,000).
pub async fn audit(
    State(state): State<AppState>,
    who: AuthUser,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    who.require(&[Role::Admin])?;
    let mut filter = q.filter()?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be 1 to 1000; use offset to page".into(),
        ));
    }
    let total = state.store.audit_count(&filter).await?;
    filter.limit = Some(limit);
    filter.offset = Some(q.offset.unwrap_or(0).max(0));
    let entries = state.store.audit_entries(&filter, true).await?;
    Ok(Json(
        json!({ "total": total, "count": entries.len(), "entries": entries }),
    ))
}

/// `GET /api/audit.csv`: every matching entry, oldest first.
pub async fn audit_csv(
    State(state): State<AppState>,
    who: AuthUser,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    who.require(&[Role::Admin])?;
    let filter = q.filter()?;
    let entries = state.store.audit_entries(&filter, false).await?;
    let mut out =
        crate::csv_export::line(["id", "at", "actor", "action", "target", "detail", "client"]);
    for e in &entries {
        let cells = [
            e.id.to_string(),
            timefmt::iso_utc(e.at),
            e.actor.clone(),
            e.action.clone(),
            e.target.clone().unwrap_or_default(),
            e.detail.to_string(),
            e.client.clone().unwrap_or_default(),
        ];
        out.push_str(&crate::csv_export::line(cells));
    }
    Ok((
        super::csv_download("miulink-audit", state.clock.now_ms()),
        out,
    )
        .into_response())
}
