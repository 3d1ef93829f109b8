//! The audit trail: an append-only table of who did what, when and from
//! where (sign-ins, sign-outs, account changes, log reads and exports,
//! server start and stop). The database refuses to change or delete a row
//! (triggers in migration 0015); nothing in MIU Link tries.

use super::{Result, Store};
use signalling::UserId;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::net::IpAddr;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in account.
    Account { id: UserId, username: String },
    /// Someone at the server's command line (the OS user, when known).
    CommandLine(Option<String>),
    /// The server itself (start, stop, expiry, retention).
    System,
    /// Nobody known: a failed sign-in with an unknown username.
    Anonymous,
}

impl Actor {
    pub fn account(id: UserId, username: &str) -> Actor {
        Actor::Account {
            id,
            username: username.to_owned(),
        }
    }

    /// The person at this command line: `$SUDO_USER`, else `$USER`.
    pub fn command_line() -> Actor {
        let who = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .ok()
            .filter(|u| !u.is_empty());
        Actor::CommandLine(who)
    }

    fn id(&self) -> Option<i64> {
        match self {
            Actor::Account { id, .. } => Some(id.0),
            _ => None,
        }
    }

    /// As stored in the `actor` column.
    pub fn name(&self) -> String {
        match self {
            Actor::Account { username, .. } => username.clone(),
            Actor::CommandLine(Some(user)) => format!("command line ({user})"),
            Actor::CommandLine(None) => "command line".to_owned(),
            Actor::System => "system".to_owned(),
            Actor::Anonymous => "unknown".to_owned(),
        }
    }
}

/// One entry to write.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub at: i64,
    pub actor: Actor,
    /// What happened, e.g. `login_succeeded`, `account_disabled`,
    /// `log_exported` (see README, "Audit trail").
    pub action: &'static str,
    /// The account (username) or thing acted on.
    pub target: Option<String>,
    /// Anything else worth keeping (a filter, a row count, a reason).
    pub detail: serde_json::Value,
    /// The client's address, for requests over HTTP.
    pub client: Option<IpAddr>,
}

impl NewAudit {
    pub fn new(at: i64, actor: Actor, action: &'static str) -> NewAudit {
        NewAudit {
            at,
            actor,
            action,
            target: None,
            detail: serde_json::json!({}),
            client: None,
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> NewAudit {
        self.target = Some(target.into());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> NewAudit {
        self.detail = detail;
        self
    }

    pub fn client(mut self, client: IpAddr) -> NewAudit {
        self.client = Some(client);
        self
    }
}

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub actor_id: Option<i64>,
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
    pub client: Option<String>,
}

/// Which entries to read back; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// At or after (ms).
    pub from: Option<i64>,
    /// Before (ms).
    pub to: Option<i64>,
    /// Entries by this actor (a username, "system", ...).
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Entries about this account or thing.
    pub target: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

const COLUMNS: &str = "id, at, actor_id, actor, action, target, detail, client";

/// Writes one entry with whatever executor: the pool, or the transaction
/// of the change it records (so that the two are durable together).
pub(super) async fn insert<'e, E>(executor: E, entry: &NewAudit) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, actor, action, target, detail, client) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.at)
    .bind(entry.actor.id())
    .bind(entry.actor.name())
    .bind(entry.action)
    .bind(entry.target.as_deref())
    .bind(entry.detail.to_string())
    .bind(entry.client.map(|c| c.to_string()))
    .execute(executor)
    .await?;
    Ok(())
}

impl Store {
    /// Appends one entry.
    pub async fn audit(&self, entry: &NewAudit) -> Result<()> {
        insert(&self.pool, entry).await
    }

    /// Entries, oldest first (newest first with `newest_first`).
    pub async fn audit_entries(
        &self,
        filter: &AuditFilter,
        newest_first: bool,
    ) -> Result<Vec<AuditRecord>> {
        let (clause, binds) = where_clause(filter);
        let mut sql = format!(
            "SELECT {COLUMNS} FROM audit_log{clause} ORDER BY id{}",
            if newest_first { " DESC" } else { "" }
        );
        let mut n = binds.len();
        if filter.limit.is_some() {
            n += 1;
            sql.push_str(&format!(" LIMIT ${n}"));
            if filter.offset.is_some() {
                n += 1;
                sql.push_str(&format!(" OFFSET ${n}"));
            }
        }
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = b.bind(q);
        }
        if let Some(limit) = filter.limit {
            q = q.bind(limit);
            if let Some(offset) = filter.offset {
                q = q.bind(offset);
            }
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn audit_count(&self, filter: &AuditFilter) -> Result<i64> {
        let (clause, binds) = where_clause(filter);
        let sql = format!("SELECT COUNT(*) AS n FROM audit_log{clause}");
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = b.bind(q);
        }
        Ok(q.fetch_one(&self.pool).await?.try_get("n")?)
    }
}

enum Bind {
    Int(i64),
    Text(String),
}

impl Bind {
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            Bind::Int(v) => q.bind(*v),
            Bind::Text(v) => q.bind(v.as_str()),
        }
    }
}

fn where_clause(filter: &AuditFilter) -> (String, Vec<Bind>) {
    let mut sql = String::new();
    let mut binds = Vec::new();
    let mut push = |clause: &str, bind: Bind| {
        binds.push(bind);
        sql.push_str(if binds.len() == 1 { " WHERE " } else { " AND " });
        sql.push_str(&clause.replace("$?", &format!("${}", binds.len())));
    };
    if let Some(from) = filter.from {
        push("at >= $?", Bind::Int(from));
    }
    if let Some(to) = filter.to {
        push("at < $?", Bind::Int(to));
    }
    if let Some(actor) = &filter.actor {
        push("actor = $?", Bind::Text(actor.clone()));
    }
    if let Some(action) = &filter.action {
        push("action = $?", Bind::Text(action.clone()));
    }
    if let Some(target) = &filter.target {
        push("target = $?", Bind::Text(target.clone()));
    }
    (sql, binds)
}

fn from_row(r: &AnyRow) -> Result<AuditRecord> {
    let detail: String = r.try_get("detail")?;
    Ok(AuditRecord {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        actor_id: r.try_get("actor_id")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        client: r.try_get("client")?,
    })
}
