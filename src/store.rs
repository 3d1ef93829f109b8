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

mod copy;
mod history;
mod lease;
mod maintenance;
mod reports;

pub use history::HistoricConsult;
pub use lease::Fence;
pub use maintenance::{
    check_copy, ensure_unused, sqlite_companions, sqlite_path, BackupSummary, Deleted,
};
pub use reports::{CachedChunk, ConsultFact, ReportSnapshot};

use crate::timefmt;
use signalling::{
    CallId, ConsultEvent, EndReason, EscalationLevel, Event, Outcome, RequestId, Restore,
    RestoredCall, RestoredOwed, RestoredRequest, Role, Urgency, UserId,
};
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

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub site: Option<String>,
    #[serde(skip)]
    pub password_hash: String,
    pub disabled: bool,
    pub demo: bool,
    pub escalation_duty: bool,
    pub monitoring: bool,
    /// The password was generated for this account (the first admin's):
    /// it must choose its own before it can do anything else.
    pub must_change_password: bool,
    pub created_at: i64,
}

impl UserRecord {
    pub fn identity(&self) -> signalling::Identity {
        signalling::Identity {
            user_id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            site: self.site.clone(),
            escalation_duty: self.escalation_duty,
            monitoring: self.monitoring,
        }
    }
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub site: Option<&'a str>,
    pub password_hash: &'a str,
    pub flags: AccountFlags,
    pub now: i64,
}

/// What sets an account apart, beyond its role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountFlags {
    /// A demo account (`--demo`), password "demo".
    pub demo: bool,
    /// Alerted when a request is escalated, even when busy.
    pub escalation_duty: bool,
    /// A monitoring probe's account, not a person.
    pub monitoring: bool,
}

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

const USER_COLUMNS: &str = "id, username, display_name, role, site, password_hash, disabled, \
    demo, escalation_duty, monitoring, must_change_password, created_at";

const CONSULT_COLUMNS: &str = "id, station_name, site, urgency, reason, patient_ref, status, \
    requested_at, first_rung_at, rung_count, closed_at, call_id, clinician_name, accepted_at, \
    connected_at, ended_at, end_reason, outcome, outcome_note, outcome_at, realerted_at, \
    escalated_at, station_quality, clinician_quality, synthetic, test_call";

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

    // -- accounts ---------------------------------------------------------

    pub async fn create_user(&self, new: NewUser<'_>) -> Result<UserId> {
        let result = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (username, display_name, role, site, password_hash, demo, escalation_duty, monitoring, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(new.username)
        .bind(new.display_name)
        .bind(new.role.as_str())
        .bind(new.site)
        .bind(new.password_hash)
        .bind(i64::from(new.flags.demo))
        .bind(i64::from(new.flags.escalation_duty))
        .bind(i64::from(new.flags.monitoring))
        .bind(new.now)
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(id) => Ok(UserId(id)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Invalid(format!(
                    "an account named {:?} already exists; pick another username",
                    new.username
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Accounts and consults that are not demo material: a database with
    /// any is a real one, which `--demo` must not touch.
    pub async fn real_content(&self) -> Result<(i64, i64)> {
        let accounts = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE demo = 0")
            .fetch_one(&self.pool)
            .await?;
        let consults = sqlx::query_scalar("SELECT COUNT(*) FROM consults WHERE synthetic = 0")
            .fetch_one(&self.pool)
            .await?;
        Ok((accounts, consults))
    }

    /// Disables every enabled demo account (and ends its sessions); their
    /// usernames.
    pub async fn disable_demo_accounts(&self) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT username FROM users WHERE demo = 1 AND disabled = 0 ORDER BY username",
        )
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET disabled = 1 WHERE demo = 1")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE demo = 1)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(names)
    }

    /// Enables the demo accounts again (a demo database started with `--demo`).
    pub async fn enable_demo_accounts(&self) -> Result<()> {
        sqlx::query("UPDATE users SET disabled = 0 WHERE demo = 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn user_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    pub async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY role, username"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Returns false if there is no such account.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET disabled = $1 WHERE username = $2")
            .bind(i64::from(disabled))
            .bind(username)
            .execute(&mut *tx)
            .await?;
        if disabled {
            // A disabled account is logged out everywhere at once.
            sqlx::query(
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE username = $1)",
            )
            .bind(username)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Returns false if there is no such account.
    pub async fn set_escalation_duty(&self, username: &str, duty: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET escalation_duty = $1 WHERE username = $2")
            .bind(i64::from(duty))
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks an account as a monitoring probe's (or not). Returns false if
    /// there is no such account.
    pub async fn set_monitoring(&self, username: &str, monitoring: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET monitoring = $1 WHERE username = $2")
            .bind(i64::from(monitoring))
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_password_hash(&self, username: &str, hash: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
            .bind(hash)
            .bind(username)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE username = $1)",
        )
        .bind(username)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    // -- sessions ---------------------------------------------------------

    /// Starts a session; beyond `max_per_account` live sessions for this
    /// account, the least recently used ones are ended.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        now: i64,
        expires_at: i64,
        max_per_account: u32,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $3)",
        )
        .bind(token_hash)
        .bind(user.0)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND token_hash NOT IN \
             (SELECT token_hash FROM sessions WHERE user_id = $1 \
              ORDER BY last_seen_at DESC, created_at DESC LIMIT $2)",
        )
        .bind(user.0)
        .bind(i64::from(max_per_account.max(1)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The enabled account behind a live session (not expired, used since
    /// `idle_cutoff`), and when the session expires.
    pub async fn session_user(
        &self,
        token_hash: &str,
        now: i64,
        idle_cutoff: i64,
    ) -> Result<Option<(UserRecord, i64)>> {
        let columns = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let row = sqlx::query(&format!(
            "SELECT {columns}, s.expires_at AS session_expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 AND u.disabled = 0"
        ))
        .bind(token_hash)
        .bind(now)
        .bind(idle_cutoff)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get("session_expires_at")?)))
            .transpose()
    }

    /// Of these sessions, the ones still live (as [`Store::session_user`]
    /// judges them); marks those as used now.
    pub async fn live_sessions(
        &self,
        token_hashes: &[String],
        now: i64,
        idle_cutoff: i64,
    ) -> Result<std::collections::HashSet<String>> {
        let mut live = std::collections::HashSet::new();
        // No transaction around the two: on SQLite a read that turns into
        // a write fails at once ("database is locked") whenever the session
        // log committed in between, which under load is always; a plain
        // UPDATE waits its turn for the write lock instead.
        for chunk in token_hashes.chunks(500) {
            let select = format!(
                "SELECT s.token_hash FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.expires_at > $1 AND s.last_seen_at > $2 AND u.disabled = 0 \
                 AND s.token_hash IN ({})",
                placeholders(3, chunk.len())
            );
            let mut query = sqlx::query_scalar::<_, String>(&select)
                .bind(now)
                .bind(idle_cutoff);
            for h in chunk {
                query = query.bind(h);
            }
            let found = query.fetch_all(&self.pool).await?;
            if !found.is_empty() {
                let update = format!(
                    "UPDATE sessions SET last_seen_at = $1 WHERE token_hash IN ({})",
                    placeholders(2, found.len())
                );
                let mut touch = sqlx::query(&update).bind(now);
                for h in &found {
                    touch = touch.bind(h);
                }
                touch.execute(&self.pool).await?;
            }
            live.extend(found);
        }
        Ok(live)
    }

    /// Marks a session as used now (at most this often: callers throttle).
    pub async fn touch_session(&self, token_hash: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Clears an account's duty to change its password.
    pub async fn set_password_changed(
        &self,
        user: UserId,
        hash: &str,
        keep_session: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1, must_change_password = 0 WHERE id = $2")
            .bind(hash)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        // Every other session of the account ends: whoever knew the old
        // password is signed out.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user.0)
            .bind(keep_session)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_must_change_password(&self, username: &str, must: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET must_change_password = $1 WHERE username = $2")
            .bind(i64::from(must))
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn delete_expired_sessions(&self, now: i64, idle_cutoff: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(idle_cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
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
                    apply_consult_event(&mut tx, id, *at, event).await?;
                    let detail = serde_json::to_string(event).map_err(|e| {
                        StoreError::Invalid(format!("cannot encode event for the log: {e}"))
                    })?;
                    appended.push((id, *at, event.kind(), detail));
                }
            }
        }
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
        let rows = sqlx::query(
            "SELECT id, station_id, clinician_id, urgency, reason, patient_ref, status, requested_at, \
             call_id, accepted_at, station_media_at, clinician_media_at, end_reason, outcome, \
             realerted_at, escalated_at, test_call \
             FROM consults WHERE status IN ('waiting', 'in_call', 'ended') AND synthetic = 0 ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut restore = Restore::default();
        let mut user_ids = std::collections::BTreeSet::new();
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let station = UserId(r.try_get("station_id")?);
            user_ids.insert(station);
            let urgency: String = r.try_get("urgency")?;
            let realerted: Option<i64> = r.try_get("realerted_at")?;
            let escalated: Option<i64> = r.try_get("escalated_at")?;
            let request = RestoredRequest {
                id: RequestId(id as u64),
                station,
                urgency: Urgency::parse(&urgency).ok_or_else(|| {
                    StoreError::Invalid(format!("consult {id} has unknown urgency {urgency:?}"))
                })?,
                reason: r.try_get("reason")?,
                patient_ref: r.try_get("patient_ref")?,
                requested_at: r.try_get("requested_at")?,
                test: r.try_get::<i64, _>("test_call")? != 0,
                escalation: if escalated.is_some() {
                    Some(EscalationLevel::Escalated)
                } else {
                    realerted.map(|_| EscalationLevel::Realerted)
                },
            };
            let status: String = r.try_get("status")?;
            if status == "waiting" {
                restore.waiting.push(request);
                continue;
            }
            let clinician_id: Option<i64> = r.try_get("clinician_id")?;
            let call_id: Option<i64> = r.try_get("call_id")?;
            let accepted_at: Option<i64> = r.try_get("accepted_at")?;
            let (Some(clinician), Some(call_id), Some(accepted_at)) =
                (clinician_id, call_id, accepted_at)
            else {
                return Err(StoreError::Invalid(format!(
                    "consult {id} is {status} but has no call"
                )));
            };
            let clinician = UserId(clinician);
            user_ids.insert(clinician);
            let outcome: Option<String> = r.try_get("outcome")?;
            let outcome = outcome.as_deref().and_then(Outcome::parse);
            if status == "in_call" {
                restore.calls.push(RestoredCall {
                    id: CallId(call_id as u64),
                    clinician,
                    accepted_at,
                    station_media: r.try_get::<Option<i64>, _>("station_media_at")?.is_some(),
                    clinician_media: r.try_get::<Option<i64>, _>("clinician_media_at")?.is_some(),
                    outcome,
                    request,
                });
            } else {
                let reason: Option<String> = r.try_get("end_reason")?;
                restore.owed.push(RestoredOwed {
                    call_id: CallId(call_id as u64),
                    request_id: request.id,
                    station,
                    clinician,
                    reason: reason
                        .as_deref()
                        .and_then(EndReason::parse)
                        .unwrap_or(EndReason::ClinicianDisconnected),
                    requested_at: request.requested_at,
                    accepted_at,
                });
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

async fn apply_consult_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    at: i64,
    event: &ConsultEvent,
) -> Result<()> {
    let query = match event {
        ConsultEvent::Requested {
            station,
            urgency,
            reason,
            patient_ref,
            test_call,
        } => sqlx::query(
            "INSERT INTO consults (id, station_id, station_name, site, urgency, reason, patient_ref, requested_at, status, test_call) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'waiting', $9)",
        )
        .bind(id)
        .bind(station.user_id.0)
        .bind(station.display_name.clone())
        .bind(station.site.clone())
        .bind(urgency.as_str())
        .bind(reason.clone())
        .bind(patient_ref.clone())
        .bind(at)
        .bind(i64::from(*test_call)),
        ConsultEvent::Rung { .. } => sqlx::query(
            "UPDATE consults SET first_rung_at = COALESCE(first_rung_at, $2), rung_count = rung_count + 1 WHERE id = $1",
        )
        .bind(id)
        .bind(at),
        ConsultEvent::Escalated { level, .. } => sqlx::query(match level {
            signalling::EscalationLevel::Realerted => {
                "UPDATE consults SET realerted_at = COALESCE(realerted_at, $2) WHERE id = $1"
            }
            signalling::EscalationLevel::Escalated => {
                "UPDATE consults SET escalated_at = COALESCE(escalated_at, $2) WHERE id = $1"
            }
        })
        .bind(id)
        .bind(at),
        ConsultEvent::QualityReported { side, sample, .. } => {
            let json = serde_json::to_string(sample).map_err(|e| {
                StoreError::Invalid(format!("cannot encode a quality sample: {e}"))
            })?;
            sqlx::query(match side {
                signalling::Side::Station => "UPDATE consults SET station_quality = $2 WHERE id = $1",
                signalling::Side::Clinician => {
                    "UPDATE consults SET clinician_quality = $2 WHERE id = $1"
                }
            })
            .bind(id)
            .bind(json)
        }
        ConsultEvent::Cancelled => sqlx::query(
            "UPDATE consults SET status = 'cancelled', closed_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(at),
        ConsultEvent::Abandoned => sqlx::query(
            "UPDATE consults SET status = 'abandoned', closed_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(at),
        ConsultEvent::Accepted { call_id, clinician } => sqlx::query(
            "UPDATE consults SET status = 'in_call', call_id = $2, clinician_id = $3, clinician_name = $4, accepted_at = $5 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(call_id.0 as i64)
        .bind(clinician.user_id.0)
        .bind(clinician.display_name.clone())
        .bind(at),
        ConsultEvent::MediaConnected { side, both, .. } => sqlx::query(match side {
            signalling::Side::Station => {
                "UPDATE consults SET station_media_at = COALESCE(station_media_at, $2), \
                 connected_at = CASE WHEN $3 = 1 THEN COALESCE(connected_at, $2) ELSE connected_at END \
                 WHERE id = $1"
            }
            signalling::Side::Clinician => {
                "UPDATE consults SET clinician_media_at = COALESCE(clinician_media_at, $2), \
                 connected_at = CASE WHEN $3 = 1 THEN COALESCE(connected_at, $2) ELSE connected_at END \
                 WHERE id = $1"
            }
        })
        .bind(id)
        .bind(at)
        .bind(i64::from(*both)),
        ConsultEvent::CallEnded { reason, .. } => sqlx::query(
            "UPDATE consults SET ended_at = $2, end_reason = $3, \
             status = CASE WHEN outcome IS NULL THEN 'ended' ELSE 'completed' END WHERE id = $1",
        )
        .bind(id)
        .bind(at)
        .bind(reason.as_str()),
        ConsultEvent::OutcomeRecorded { outcome, note, .. } => sqlx::query(
            "UPDATE consults SET outcome = $2, outcome_note = $3, outcome_at = $4, \
             status = CASE WHEN ended_at IS NULL THEN status ELSE 'completed' END WHERE id = $1",
        )
        .bind(id)
        .bind(outcome.as_str())
        .bind(note.clone())
        .bind(at),
    };
    let done = query.execute(&mut **tx).await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Invalid(format!(
            "log event {} for consult {id} matched {} rows; expected one",
            event.kind(),
            done.rows_affected()
        )));
    }
    Ok(())
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
        format!("SELECT {CONSULT_COLUMNS} FROM consults WHERE 1 = 1")
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

fn user_from_row(r: &AnyRow) -> Result<UserRecord> {
    let role: String = r.try_get("role")?;
    let role = Role::parse(&role)
        .ok_or_else(|| StoreError::Invalid(format!("unknown role {role:?} in the users table")))?;
    Ok(UserRecord {
        id: UserId(r.try_get("id")?),
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        role,
        site: r.try_get("site")?,
        password_hash: r.try_get("password_hash")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        demo: r.try_get::<i64, _>("demo")? != 0,
        escalation_duty: r.try_get::<i64, _>("escalation_duty")? != 0,
        monitoring: r.try_get::<i64, _>("monitoring")? != 0,
        must_change_password: r.try_get::<i64, _>("must_change_password")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

fn json_column(r: &AnyRow, name: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = r.try_get(name)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

fn consult_from_row(r: &AnyRow) -> Result<ConsultRecord> {
    let requested_at: i64 = r.try_get("requested_at")?;
    let accepted_at: Option<i64> = r.try_get("accepted_at")?;
    let connected_at: Option<i64> = r.try_get("connected_at")?;
    let ended_at: Option<i64> = r.try_get("ended_at")?;
    Ok(ConsultRecord {
        id: r.try_get("id")?,
        station: r.try_get("station_name")?,
        site: r.try_get("site")?,
        urgency: r.try_get("urgency")?,
        reason: r.try_get("reason")?,
        patient_ref: r.try_get("patient_ref")?,
        status: r.try_get("status")?,
        requested_at,
        first_rung_at: r.try_get("first_rung_at")?,
        rung_count: r.try_get("rung_count")?,
        closed_at: r.try_get("closed_at")?,
        call_id: r.try_get("call_id")?,
        clinician: r.try_get("clinician_name")?,
        accepted_at,
        connected_at,
        ended_at,
        end_reason: r.try_get("end_reason")?,
        outcome: r.try_get("outcome")?,
        outcome_note: r.try_get("outcome_note")?,
        outcome_at: r.try_get("outcome_at")?,
        realerted_at: r.try_get("realerted_at")?,
        escalated_at: r.try_get("escalated_at")?,
        station_quality: json_column(r, "station_quality")?,
        clinician_quality: json_column(r, "clinician_quality")?,
        wait_ms: accepted_at.map(|a| a - requested_at),
        connect_ms: accepted_at.zip(connected_at).map(|(a, c)| c - a),
        duration_ms: ended_at
            .zip(connected_at.or(accepted_at))
            .map(|(e, s)| e - s),
        synthetic: r.try_get::<i64, _>("synthetic")? != 0,
        test_call: r.try_get::<i64, _>("test_call")? != 0,
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
        let mut line = fields
            .iter()
            .map(|f| csv_text(f))
            .collect::<Vec<_>>()
            .join(",");
        line.push_str("\r\n");
        line
    }
}

/// A CSV cell holding text a user typed: quoted as RFC 4180 asks, and
/// prefixed with an apostrophe if a spreadsheet would run it as a formula.
/// (No number this module writes starts with one of those characters.)
pub fn csv_text(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_text("plain"), "plain");
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_text("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_text("-5"), "'-5");
    }
}
