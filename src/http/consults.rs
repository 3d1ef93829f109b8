//! The session log for managers: `GET /api/consults` (JSON) and
//! `GET /api/consults.csv`, filtered by `from`, `to`, `site` and `station`.

use super::session::{client_addr, AuthUser};
use super::{ApiError, AppState};
use crate::store::{Actor, NewAudit};
use crate::store::{ConsultFilter, ConsultRecord};
use crate::timefmt::{self, Bound};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use signalling::Role;
use std::net::SocketAddr;

pub const READERS: &[Role] = &[Role::Manager, Role::Admin];
const DEFAULT_LIMIT: i64 = 1_000;
const MAX_LIMIT: i64 = 10_000;

#[derive(Debug, Deserialize, Default)]
pub struct LogQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub site: Option<String>,
    pub station: Option<String>,
    /// Include monitoring probe calls (left out by default).
    #[serde(default)]
    pub include_test_calls: bool,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl LogQuery {
    pub fn filter(&self) -> Result<ConsultFilter, ApiError> {
        let time = |v: &Option<String>, b| {
            v.as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| timefmt::parse_time(s, b))
                .transpose()
                .map_err(ApiError::BadRequest)
        };
        let from = time(&self.from, Bound::Start)?;
        let to = time(&self.to, Bound::End)?;
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(ApiError::BadRequest(
                    "`from` is after `to`; swap them".into(),
                ));
            }
        }
        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        Ok(ConsultFilter {
            from,
            to,
            site: nonempty(&self.site),
            station: nonempty(&self.station),
            include_test_calls: self.include_test_calls,
            limit: None,
            offset: None,
        })
    }
}

/// Writes who read or exported the log, with which filter and how many rows.
async fn audit_read(
    state: &AppState,
    who: &AuthUser,
    peer: SocketAddr,
    headers: &HeaderMap,
    action: &'static str,
    filter: &ConsultFilter,
    rows: usize,
) {
    let entry = NewAudit::new(
        state.clock.now_ms(),
        Actor::account(who.user.id, &who.user.username),
        action,
    )
    .detail(json!({
        "from": filter.from.map(timefmt::iso_utc),
        "to": filter.to.map(timefmt::iso_utc),
        "site": filter.site,
        "station": filter.station,
        "include_test_calls": filter.include_test_calls,
        "offset": filter.offset,
        "rows": rows,
    }))
    .client(client_addr(state, peer, headers));
    super::session::audit(state, entry).await;
}

pub async fn list(
    State(state): State<AppState>,
    who: AuthUser,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    who.require(READERS)?;
    let mut filter = q.filter()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}; use offset to page"
        )));
    }
    let offset = q.offset.unwrap_or(0).max(0);
    let total = state.store.consult_count(&filter).await?;
    filter.limit = Some(limit);
    filter.offset = Some(offset);
    let consults = state.store.consults(&filter).await?;
    audit_read(
        &state,
        &who,
        peer,
        &headers,
        "log_read",
        &filter,
        consults.len(),
    )
    .await;
    Ok(Json(json!({
        "from": filter.from,
        "to": filter.to,
        "total": total,
        "offset": offset,
        "count": consults.len(),
        "consults": consults,
    })))
}

pub async fn csv(
    State(state): State<AppState>,
    who: AuthUser,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    who.require(READERS)?;
    let filter = q.filter()?;
    let rows = state.store.consult_count(&filter).await?;
    audit_read(
        &state,
        &who,
        peer,
        &headers,
        "log_exported",
        &filter,
        rows as usize,
    )
    .await;
    // Read in pages so that a big export does not sit in memory at once,
    // and so that nothing is cut off.
    let store = state.store.clone();
    let stream = async_stream(store, filter);
    Ok((
        super::csv_download("miulink-consults", state.clock.now_ms()),
        Body::from_stream(stream),
    )
        .into_response())
}

fn async_stream(
    store: crate::store::Store,
    filter: ConsultFilter,
) -> impl futures_util::Stream<Item = Result<String, crate::store::StoreError>> {
    const PAGE: i64 = 5_000;
    futures_util::stream::unfold(Some(0i64), move |offset| {
        let store = store.clone();
        let mut filter = filter.clone();
        async move {
            let offset = offset?;
            filter.limit = Some(PAGE);
            filter.offset = Some(offset);
            match store.consults(&filter).await {
                Ok(rows) => {
                    let mut chunk = String::new();
                    if offset == 0 {
                        chunk.push_str(ConsultRecord::CSV_HEADER);
                        chunk.push_str("\r\n");
                    }
                    for r in &rows {
                        chunk.push_str(&r.csv_line());
                    }
                    let next = (rows.len() as i64 == PAGE).then_some(offset + PAGE);
                    Some((Ok(chunk), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, "CSV export failed part-way");
                    Some((Err(e), None))
                }
            }
        }
    })
}

pub async fn events(
    State(state): State<AppState>,
    who: AuthUser,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    who.require(READERS)?;
    let events = state.store.consult_events(id).await?;
    if events.is_empty() {
        return Err(ApiError::NotFound(format!("no consult {id} in the log")));
    }
    let entry = NewAudit::new(
        state.clock.now_ms(),
        Actor::account(who.user.id, &who.user.username),
        "log_events_read",
    )
    .target(format!("consult {id}"))
    .detail(json!({ "rows": events.len() }))
    .client(client_addr(&state, peer, &headers));
    super::session::audit(&state, entry).await;
    Ok(Json(json!({ "consult_id": id, "events": events })))
}
