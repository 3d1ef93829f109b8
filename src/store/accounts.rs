//! Accounts and their sessions: every statement about who may sign in.

use super::audit::NewAudit;
use super::{placeholders, Result, Store, StoreError};
use signalling::{Role, UserId};
use sqlx::any::AnyRow;
use sqlx::Row;

pub(super) const USER_COLUMNS: &str =
    "id, username, display_name, role, site, password_hash, disabled, \
    demo, escalation_duty, monitoring, must_change_password, created_at, break_glass, \
    oidc_issuer, oidc_subject";

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
    /// An admin who may sign in with a password even when `--local-login`
    /// allows only stations (the identity provider is down).
    pub break_glass: bool,
    /// Signed in through OpenID Connect: the provider's issuer and the
    /// person's subject there.
    pub oidc_issuer: Option<String>,
    #[serde(skip)]
    pub oidc_subject: Option<String>,
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
    /// The password was set for the person (generated, or reset by an
    /// admin): they must choose their own at the next sign-in.
    pub must_change_password: bool,
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
    /// An admin allowed a password whatever `--local-login` says.
    pub break_glass: bool,
}

impl Store {
    // -- accounts ---------------------------------------------------------

    pub async fn create_user(&self, new: NewUser<'_>) -> Result<UserId> {
        insert_user(&self.pool, &new).await
    }

    /// Creates an account and its audit entry in one transaction.
    pub async fn create_user_audited(&self, new: NewUser<'_>, audit: &NewAudit) -> Result<UserId> {
        let mut tx = self.pool.begin().await?;
        let id = insert_user(&mut *tx, &new).await?;
        super::audit::insert(&mut *tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Changes an account and writes its audit entry in one transaction;
    /// ends every session of the account when the change calls for it
    /// (disabled, new password). The account as it is now, or `None` if
    /// there is no such account (nothing is written then).
    pub async fn change_account(
        &self,
        username: &str,
        change: &AccountChange,
        audit: &NewAudit,
    ) -> Result<Option<UserRecord>> {
        let mut tx = self.pool.begin().await?;
        let (sql, end_sessions) = match change {
            AccountChange::Disabled(true) => ("UPDATE users SET disabled = 1 WHERE username = $1", true),
            AccountChange::Disabled(false) => ("UPDATE users SET disabled = 0 WHERE username = $1", false),
            AccountChange::EscalationDuty(_) => ("UPDATE users SET escalation_duty = $2 WHERE username = $1", false),
            AccountChange::Monitoring(_) => ("UPDATE users SET monitoring = $2 WHERE username = $1", false),
            AccountChange::Site(_) => ("UPDATE users SET site = $2 WHERE username = $1", false),
            AccountChange::DisplayName(_) => ("UPDATE users SET display_name = $2 WHERE username = $1", false),
            AccountChange::Password { .. } => (
                "UPDATE users SET password_hash = $2, must_change_password = $3 WHERE username = $1",
                true,
            ),
        };
        let mut q = sqlx::query(sql).bind(username);
        q = match change {
            AccountChange::Disabled(_) => q,
            AccountChange::EscalationDuty(on) | AccountChange::Monitoring(on) => {
                q.bind(i64::from(*on))
            }
            AccountChange::Site(site) => q.bind(site.clone()),
            AccountChange::DisplayName(name) => q.bind(name.clone()),
            AccountChange::Password { hash, must_change } => {
                q.bind(hash.clone()).bind(i64::from(*must_change))
            }
        };
        if q.execute(&mut *tx).await?.rows_affected() == 0 {
            return Ok(None);
        }
        if end_sessions {
            sqlx::query(
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE username = $1)",
            )
            .bind(username)
            .execute(&mut *tx)
            .await?;
        }
        super::audit::insert(&mut *tx, audit).await?;
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        user_from_row(&row).map(Some)
    }

    /// The account linked to this OpenID Connect identity, if any.
    pub async fn user_by_oidc(&self, issuer: &str, subject: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2"
        ))
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    /// Links an account to an OpenID Connect identity (its first sign-in
    /// through the provider), or refreshes the name and role the provider
    /// gave; with the audit entry, in one transaction.
    pub async fn link_oidc(
        &self,
        id: UserId,
        link: &OidcLink<'_>,
        audit: &NewAudit,
    ) -> Result<UserRecord> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET oidc_issuer = $2, oidc_subject = $3, display_name = $4, role = $5 \
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(link.issuer)
        .bind(link.subject)
        .bind(link.display_name)
        .bind(link.role.as_str())
        .execute(&mut *tx)
        .await?;
        super::audit::insert(&mut *tx, audit).await?;
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        user_from_row(&row)
    }
}

/// What an OpenID Connect sign-in says of an account.
#[derive(Debug, Clone, Copy)]
pub struct OidcLink<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub display_name: &'a str,
    pub role: Role,
}

/// A live session and its account ([`Store::live_session_list`]).
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub token_hash: String,
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// `password` or `oidc`.
    pub via: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// A session just ended by its user ([`Store::take_session`]).
#[derive(Debug, Clone)]
pub struct EndedSession {
    pub user_id: UserId,
    pub username: String,
    /// `password` or `oidc`.
    pub via: String,
    pub id_token: Option<String>,
}

/// One change to an account ([`Store::change_account`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    Disabled(bool),
    EscalationDuty(bool),
    Monitoring(bool),
    Site(Option<String>),
    DisplayName(String),
    /// A new password hash; `must_change`: the person must choose their own
    /// at the next sign-in (a password reset by an admin).
    Password {
        hash: String,
        must_change: bool,
    },
}

async fn insert_user<'e, E>(executor: E, new: &NewUser<'_>) -> Result<UserId>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    {
        let result = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (username, display_name, role, site, password_hash, demo, escalation_duty, \
             monitoring, break_glass, must_change_password, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(new.username)
        .bind(new.display_name)
        .bind(new.role.as_str())
        .bind(new.site)
        .bind(new.password_hash)
        .bind(i64::from(new.flags.demo))
        .bind(i64::from(new.flags.escalation_duty))
        .bind(i64::from(new.flags.monitoring))
        .bind(i64::from(new.flags.break_glass))
        .bind(i64::from(new.must_change_password))
        .bind(new.now)
        .fetch_one(executor)
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
}

impl Store {
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

    /// One account change by the server itself (tests and tools; people's
    /// changes go through `crate::accounts`, which names who made them),
    /// audited like any other. False if there is no such account.
    async fn change_by_system(
        &self,
        username: &str,
        change: AccountChange,
        action: &'static str,
    ) -> Result<bool> {
        let now = crate::clock::Clock::new().now_ms();
        let audit = NewAudit::new(now, super::audit::Actor::System, action).target(username);
        Ok(self
            .change_account(username, &change, &audit)
            .await?
            .is_some())
    }

    /// Stops (or allows) an account's sign-ins; disabling ends its sessions.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool> {
        let action = if disabled {
            "account_disabled"
        } else {
            "account_enabled"
        };
        self.change_by_system(username, AccountChange::Disabled(disabled), action)
            .await
    }

    pub async fn set_escalation_duty(&self, username: &str, duty: bool) -> Result<bool> {
        self.change_by_system(
            username,
            AccountChange::EscalationDuty(duty),
            "escalation_duty_changed",
        )
        .await
    }

    /// Marks an account as a monitoring probe's (or not).
    pub async fn set_monitoring(&self, username: &str, monitoring: bool) -> Result<bool> {
        self.change_by_system(
            username,
            AccountChange::Monitoring(monitoring),
            "monitoring_changed",
        )
        .await
    }

    /// A new password hash; the account's sessions end.
    pub async fn set_password_hash(&self, username: &str, hash: &str) -> Result<bool> {
        self.change_by_system(
            username,
            AccountChange::Password {
                hash: hash.to_owned(),
                must_change: false,
            },
            "password_reset",
        )
        .await
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

    /// Marks a new session as made through the identity provider, keeping
    /// its ID token for the provider's sign-out (`id_token_hint`).
    pub async fn set_session_oidc(&self, token_hash: &str, id_token: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET via = 'oidc', id_token = $2 WHERE token_hash = $1")
            .bind(token_hash)
            .bind(id_token)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a session (sign-out): what it was, if it existed.
    pub async fn take_session(&self, token_hash: &str) -> Result<Option<EndedSession>> {
        let row = sqlx::query(
            "SELECT s.user_id, u.username, s.via, s.id_token \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        self.delete_session(token_hash).await?;
        row.map(|r| {
            Ok(EndedSession {
                user_id: UserId(r.try_get("user_id")?),
                username: r.try_get("username")?,
                via: r.try_get("via")?,
                id_token: r.try_get("id_token")?,
            })
        })
        .transpose()
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

    /// Every live session (not expired, used since `idle_cutoff`), with its
    /// account: for the admin console's "who is on line".
    pub async fn live_session_list(&self, now: i64, idle_cutoff: i64) -> Result<Vec<LiveSession>> {
        let rows = sqlx::query(
            "SELECT s.token_hash, s.created_at, s.last_seen_at, s.via, u.id AS user_id, \
             u.username, u.display_name, u.role \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.expires_at > $1 AND s.last_seen_at > $2 AND u.disabled = 0 \
             ORDER BY s.created_at",
        )
        .bind(now)
        .bind(idle_cutoff)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok(LiveSession {
                    token_hash: r.try_get("token_hash")?,
                    user_id: UserId(r.try_get("user_id")?),
                    username: r.try_get("username")?,
                    display_name: r.try_get("display_name")?,
                    role: Role::parse(&role).ok_or_else(|| {
                        StoreError::Invalid(format!("unknown role {role:?} in the users table"))
                    })?,
                    via: r.try_get("via")?,
                    created_at: r.try_get("created_at")?,
                    last_seen_at: r.try_get("last_seen_at")?,
                })
            })
            .collect()
    }

    /// Ends the session whose id (the first 16 hex digits of its token's
    /// hash) this is, with its audit entry (the session's account as the
    /// target); its token hash and username, or `None` if there is none.
    pub async fn end_session_by_id(
        &self,
        id: &str,
        audit: &NewAudit,
        client: Option<std::net::IpAddr>,
    ) -> Result<Option<(String, String)>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT s.token_hash, u.username FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE substr(s.token_hash, 1, 16) = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let hash: String = row.try_get("token_hash")?;
        let username: String = row.try_get("username")?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        let mut entry = audit.clone().target(username.clone());
        entry.client = client;
        super::audit::insert(&mut *tx, &entry).await?;
        tx.commit().await?;
        Ok(Some((hash, username)))
    }

    /// Deletes sessions past their expiry or idle too long, each with an
    /// audit entry (`session_expired`, the reason in its detail), in one
    /// transaction. How many.
    pub async fn expire_sessions(&self, now: i64, idle_cutoff: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT s.token_hash, s.expires_at, u.id AS user_id, u.username \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.expires_at <= $1 OR s.last_seen_at <= $2",
        )
        .bind(now)
        .bind(idle_cutoff)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let expires_at: i64 = r.try_get("expires_at")?;
            let username: String = r.try_get("username")?;
            let hash: String = r.try_get("token_hash")?;
            let entry = NewAudit::new(now, super::audit::Actor::System, "session_expired")
                .target(username)
                .detail(serde_json::json!({
                    "reason": if expires_at <= now { "expired" } else { "idle" },
                    "session_id": hash.chars().take(16).collect::<String>(),
                }));
            super::audit::insert(&mut *tx, &entry).await?;
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    pub async fn delete_expired_sessions(&self, now: i64, idle_cutoff: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(idle_cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

pub(super) fn user_from_row(r: &AnyRow) -> Result<UserRecord> {
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
        break_glass: r.try_get::<i64, _>("break_glass")? != 0,
        oidc_issuer: r.try_get("oidc_issuer")?,
        oidc_subject: r.try_get("oidc_subject")?,
    })
}
