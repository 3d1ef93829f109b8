//! The store: accounts, sessions and the durable session log.
//!
//! All SQL lives in this module (and its children): nothing outside it
//! knows which database is behind it. Two backends, chosen by the URL:
//! SQLite (`sqlite://path`, the embedded default) and PostgreSQL
//! (`postgres://user:pass@host:port/db`). Both are reached through sqlx's
//! `Any` driver, so one query serves both where the SQL can be the same,
//! and it nearly always can: `$N` parameters (which SQLite also accepts),
//! integer milliseconds for times, integers for flags (`BIGINT` on
//! PostgreSQL), `RETURNING` instead of a last-insert id, `ON CONFLICT`
//! upserts. Where the two differ, the difference is one `match` on
//! [`Backend`] in this module; each backend's schema is its own folder of
//! migrations with the same meaning (`migrations/sqlite`,
//! `migrations/postgres`).
//!
//! Writes of the session log go through [`Store::record`], one transaction
//! per batch of events, so that a batch is either wholly durable or not at
//! all. SQLite runs in WAL mode with `synchronous=FULL`; PostgreSQL commits
//! with its `synchronous_commit` (on by default): a committed event
//! survives a crash of the process or the machine.

mod accounts;
mod audit;
mod consults;
mod copy;
mod history;
mod lease;
mod maintenance;
mod oidc;
mod reports;

pub use accounts::{
    AccountChange, AccountFlags, EndedSession, LiveSession, NewUser, OidcLink, UserRecord,
};
pub use audit::{Actor, AuditFilter, AuditRecord, NewAudit};
pub use history::HistoricConsult;
pub use lease::Fence;
pub use maintenance::{
    check_copy, ensure_unused, sqlite_companions, sqlite_path, BackupSummary, Deleted,
};
pub use oidc::PendingLogin;
pub use reports::{CachedChunk, ConsultFact, ReportSnapshot};

use crate::timefmt;
use signalling::{Event, OpenConsult, Restore};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;
use sqlx::{Executor, Row};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}; the database may be from a newer MIU Link")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Invalid(String),
    /// This instance's leadership (epoch) is over: another instance leads,
    /// or the lease ran out. Nothing was written.
    #[error("leadership {0} has ended: another instance leads now (or the lease ran out); nothing was written")]
    Deposed(i64),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Rows in one multi-row INSERT of the session log (well inside both
/// backends' limits on bound parameters).
const ROWS_PER_STATEMENT: usize = 200;

/// One consult as managers see it, with derived times.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsultRecord {
    pub id: i64,
    pub station: String,
    pub site: Option<String>,
    pub urgency: String,
    pub reason: String,
    pub patient_ref: Option<String>,
    pub status: String,
    pub requested_at: i64,
    pub first_rung_at: Option<i64>,
    pub rung_count: i64,
    pub closed_at: Option<i64>,
    pub call_id: Option<i64>,
    pub clinician: Option<String>,
    pub accepted_at: Option<i64>,
    pub connected_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub outcome: Option<String>,
    pub outcome_note: Option<String>,
    pub outcome_at: Option<i64>,
    /// Every available clinician re-alerted (first escalation step).
    pub realerted_at: Option<i64>,
    /// Escalated to accounts with an escalation duty (second step).
    pub escalated_at: Option<i64>,
    /// The latest call quality summary from each side.
    pub station_quality: Option<serde_json::Value>,
    pub clinician_quality: Option<serde_json::Value>,
    /// Request to answer.
    pub wait_ms: Option<i64>,
    /// Answer to media flowing on both sides.
    pub connect_ms: Option<i64>,
    /// Media connected (or answer, if media never connected) to hang-up.
    pub duration_ms: Option<i64>,
    pub synthetic: bool,
    pub test_call: bool,
}

/// Which consults to read back.
#[derive(Debug, Clone, Default)]
pub struct ConsultFilter {
    /// Requested at or after (ms).
    pub from: Option<i64>,
    /// Requested before (ms).
    pub to: Option<i64>,
    pub site: Option<String>,
    pub station: Option<String>,
    pub include_test_calls: bool,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventRecord {
    pub at: i64,
    pub kind: String,
    pub detail: serde_json::Value,
}

/// Which database a store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, or what to write instead.
    pub fn of(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Invalid(format!(
                "cannot use database URL {:?}: write sqlite://path/to/miulink.db or \
                 postgres://user:password@host:5432/database",
                redact_url(url)
            )))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A database URL fit for a log line or an error: any password replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Set on the leader's handle: its session-log writes are checked
    /// against the lease (see [`Store::fenced`]).
    fence: Option<std::sync::Arc<Fence>>,
}

/// The tables that hold an installation's history, parents first.
pub const LOG_TABLES: &[&str] = &[
    "users",
    "sessions",
    "consults",
    "consult_events",
    "presence_log",
    "audit_log",
];

/// A SQLite URL that creates the file if it is missing (`mode=rwc`),
/// unless it names a mode (or an in-memory database) itself.
fn sqlite_url_creating(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let shown = redact_url(url);
        let cannot =
            |e: sqlx::Error| StoreError::Invalid(format!("cannot open the database {shown}: {e}"));
        let pool = match backend {
            Backend::Sqlite => {
                // Owner-only from the first byte: it holds password hashes
                // and the session log.
                maintenance::private_sqlite_file(url).map_err(|e| {
                    StoreError::Invalid(format!("cannot create the database {shown}: {e}"))
                })?;
                let url = sqlite_url_creating(url);
                AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Every connection: a commit is on disk before it
                            // returns, and writers wait rather than fail.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await
                    .map_err(cannot)?
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // No statement of ours waits long for a lock, and a
                        // transaction left open by a frozen instance is
                        // ended by the server, so it cannot hold the lease
                        // row against a takeover.
                        conn.execute(
                            "SET lock_timeout = '2s'; \
                             SET idle_in_transaction_session_timeout = '2s'",
                        )
                        .await?;
                        Ok(())
                    })
                })
                .connect(url)
                .await
                .map_err(cannot)?,
        };
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Store {
            pool,
            backend,
            fence: None,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// How many rows each table of the log holds: what `migrate-db`
    /// compares, and what tests count.
    pub async fn row_counts(&self) -> Result<Vec<(&'static str, i64)>> {
        let mut counts = Vec::new();
        for table in LOG_TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&self.pool)
                .await?;
            counts.push((*table, n));
        }
        Ok(counts)
    }

    // -- the session log --------------------------------------------------

    /// One past the largest request and call ids in the log, so that ids
    /// are never reused across restarts.
    pub async fn next_ids(&self) -> Result<(u64, u64)> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(id), 0) AS r, COALESCE(MAX(call_id), 0) AS c FROM consults",
        )
        .fetch_one(&self.pool)
        .await?;
        let r: i64 = row.try_get("r")?;
        let c: i64 = row.try_get("c")?;
        Ok((r.max(0) as u64 + 1, c.max(0) as u64 + 1))
    }

    /// Writes a batch of events in one transaction: all or nothing.
    pub async fn record(&self, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_log_write().await?;
        // Each event updates its consult in turn; the rows of the two
        // append-only tables then go in one statement per chunk (a log
        // group is up to a few thousand events, and every statement is a
        // round trip to the database or its worker thread).
        let mut presence: Vec<(i64, i64, &'static str)> = Vec::new();
        let mut appended: Vec<(i64, i64, &'static str, String)> = Vec::new();
        // The consults these events change: read once, each event applied
        // by the lifecycle (`signalling::consult`), written once.
        let mut batch = consults::Batch::default();
        let existing = consults::Batch::existing(events.iter().filter_map(|e| match e {
            Event::Consult {
                request_id, event, ..
            } => Some((*request_id, event)),
            Event::Presence { .. } => None,
        }));
        for consult in consults::read(&mut tx, &existing).await? {
            batch.add_read(consult);
        }
        for event in events {
            match event {
                Event::Presence {
                    user_id,
                    at,
                    status,
                    ..
                } => presence.push((user_id.0, *at, status.as_str())),
                Event::Consult {
                    request_id,
                    at,
                    event,
                } => {
                    let id = i64::try_from(request_id.0).map_err(|_| {
                        StoreError::Invalid(format!("request id {request_id} is out of range"))
                    })?;
                    batch.apply(*request_id, *at, event)?;
                    let detail = serde_json::to_string(event).map_err(|e| {
                        StoreError::Invalid(format!("cannot encode event for the log: {e}"))
                    })?;
                    appended.push((id, *at, event.kind(), detail));
                }
            }
        }
        batch.write(self.backend, &mut tx).await?;
        for chunk in presence.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO presence_log (user_id, at, status) VALUES {}",
                history::value_rows(self.backend, chunk.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for (user_id, at, status) in chunk {
                q = q.bind(*user_id).bind(*at).bind(*status);
            }
            q.execute(&mut *tx).await?;
        }
        // In the order the events happened: `id` orders a consult's events.
        for chunk in appended.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO consult_events (consult_id, at, kind, detail) VALUES {}",
                history::value_rows(self.backend, chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for (id, at, kind, detail) in chunk {
                q = q.bind(*id).bind(*at).bind(*kind).bind(detail.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// What was open when the server last stopped: waiting requests, calls
    /// in progress and outcomes still owed, with the accounts involved.
    /// Synthetic history (`miulink seed`, demo mode) is never open work,
    /// though some of it ends without an outcome as real calls do.
    pub async fn load_open(&self) -> Result<Restore> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM consults WHERE status IN ('waiting', 'in_call', 'ended') \
             AND synthetic = 0 ORDER BY id",
            consults::columns()
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut restore = Restore::default();
        let mut user_ids = std::collections::BTreeSet::new();
        for r in &rows {
            let consult = consults::from_row(r)?;
            user_ids.insert(consult.station_id);
            match consult.open().map_err(StoreError::Invalid)? {
                Some(OpenConsult::Waiting(request)) => restore.waiting.push(request),
                Some(OpenConsult::Call(call)) => {
                    user_ids.insert(call.clinician);
                    restore.calls.push(call);
                }
                Some(OpenConsult::Owed(owed)) => {
                    user_ids.insert(owed.clinician);
                    restore.owed.push(owed);
                }
                None => {}
            }
        }
        for id in user_ids {
            if let Some(user) = self.user_by_id(id).await? {
                restore.accounts.push(user.identity());
            }
        }
        Ok(restore)
    }

    pub async fn consults(&self, filter: &ConsultFilter) -> Result<Vec<ConsultRecord>> {
        let (sql, binds) = consult_query(filter, false);
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = match b {
                Bind::Int(i) => query.bind(*i),
                Bind::Text(s) => query.bind(s.clone()),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(consult_from_row).collect()
    }

    pub async fn consult_count(&self, filter: &ConsultFilter) -> Result<i64> {
        let (sql, binds) = consult_query(filter, true);
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for b in &binds {
            query = match b {
                Bind::Int(i) => query.bind(*i),
                Bind::Text(s) => query.bind(s.clone()),
            };
        }
        Ok(query.fetch_one(&self.pool).await?)
    }

    pub async fn consult_events(&self, consult_id: i64) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT at, kind, detail FROM consult_events WHERE consult_id = $1 ORDER BY id",
        )
        .bind(consult_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(EventRecord {
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}

/// `$first, $first+1, ...`: `count` numbered parameters, which both
/// backends read the same way.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

enum Bind {
    Int(i64),
    Text(String),
}

fn consult_query(filter: &ConsultFilter, count: bool) -> (String, Vec<Bind>) {
    let mut sql = if count {
        "SELECT COUNT(*) FROM consults WHERE 1 = 1".to_owned()
    } else {
        format!(
            "SELECT {}, synthetic FROM consults WHERE 1 = 1",
            consults::columns()
        )
    };
    let mut binds = Vec::new();
    let mut push = |sql: &mut String, clause: &str, b: Bind| {
        binds.push(b);
        sql.push_str(&clause.replace("$?", &format!("${}", binds.len())));
    };
    if let Some(from) = filter.from {
        push(&mut sql, " AND requested_at >= $?", Bind::Int(from));
    }
    if let Some(to) = filter.to {
        push(&mut sql, " AND requested_at < $?", Bind::Int(to));
    }
    if let Some(site) = &filter.site {
        push(&mut sql, " AND site = $?", Bind::Text(site.clone()));
    }
    if let Some(station) = &filter.station {
        push(
            &mut sql,
            " AND station_name = $?",
            Bind::Text(station.clone()),
        );
    }
    if !filter.include_test_calls {
        sql.push_str(" AND test_call = 0");
    }
    if !count {
        sql.push_str(" ORDER BY requested_at, id");
        if let Some(limit) = filter.limit {
            push(&mut sql, " LIMIT $?", Bind::Int(limit));
            if let Some(offset) = filter.offset {
                push(&mut sql, " OFFSET $?", Bind::Int(offset));
            }
        }
    }
    (sql, binds)
}

fn consult_from_row(r: &AnyRow) -> Result<ConsultRecord> {
    let c = consults::from_row(r)?;
    let json = |text: &Option<String>| text.as_deref().and_then(|t| serde_json::from_str(t).ok());
    Ok(ConsultRecord {
        id: c.id.0 as i64,
        wait_ms: c.wait_ms(),
        connect_ms: c.connect_ms(),
        duration_ms: c.duration_ms(),
        station_quality: json(&c.station_quality),
        clinician_quality: json(&c.clinician_quality),
        station: c.station_name,
        site: c.site,
        urgency: c.urgency.as_str().to_owned(),
        reason: c.reason,
        patient_ref: c.patient_ref,
        status: c.status.as_str().to_owned(),
        requested_at: c.requested_at,
        first_rung_at: c.first_rung_at,
        rung_count: i64::from(c.rung_count),
        closed_at: c.closed_at,
        call_id: c.call_id.map(|id| id.0 as i64),
        clinician: c.clinician_name,
        accepted_at: c.accepted_at,
        connected_at: c.connected_at,
        ended_at: c.ended_at,
        end_reason: c.end_reason.map(|r| r.as_str().to_owned()),
        outcome: c.outcome.map(|o| o.as_str().to_owned()),
        outcome_note: c.outcome_note,
        outcome_at: c.outcome_at,
        realerted_at: c.realerted_at,
        escalated_at: c.escalated_at,
        synthetic: r.try_get::<i64, _>("synthetic")? != 0,
        test_call: c.test_call,
    })
}

impl ConsultRecord {
    pub const CSV_HEADER: &'static str =
        "consult_id,requested_at_utc,station,site,urgency,reason,status,\
        clinician,accepted_at_utc,connected_at_utc,ended_at_utc,wait_seconds,connect_seconds,\
        duration_seconds,end_reason,outcome,outcome_note,patient_ref,rung_count,realerted_at_utc,\
        escalated_at_utc,synthetic,test_call";

    /// One CSV line (RFC 4180 quoting; cells that a spreadsheet would run as
    /// a formula are prefixed with an apostrophe).
    pub fn csv_line(&self) -> String {
        let t = |ms: Option<i64>| ms.map(timefmt::iso_utc).unwrap_or_default();
        let secs = |ms: Option<i64>| {
            ms.map(|m| format!("{:.1}", m as f64 / 1000.0))
                .unwrap_or_default()
        };
        let fields = [
            self.id.to_string(),
            timefmt::iso_utc(self.requested_at),
            self.station.clone(),
            self.site.clone().unwrap_or_default(),
            self.urgency.clone(),
            self.reason.clone(),
            self.status.clone(),
            self.clinician.clone().unwrap_or_default(),
            t(self.accepted_at),
            t(self.connected_at),
            t(self.ended_at),
            secs(self.wait_ms),
            secs(self.connect_ms),
            secs(self.duration_ms),
            self.end_reason.clone().unwrap_or_default(),
            self.outcome.clone().unwrap_or_default(),
            self.outcome_note.clone().unwrap_or_default(),
            self.patient_ref.clone().unwrap_or_default(),
            self.rung_count.to_string(),
            t(self.realerted_at),
            t(self.escalated_at),
            u8::from(self.synthetic).to_string(),
            u8::from(self.test_call).to_string(),
        ];
        crate::csv_export::line(fields)
    }
}
