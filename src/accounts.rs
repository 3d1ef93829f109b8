//! Managing accounts: the one set of rules behind both the command line
//! (`miulink user ...`) and the admin console (`/admin`, `/api/admin/...`).
//! Every change is checked here, written with its audit entry in one
//! transaction, and says what went wrong in words an administrator can
//! act on.

use crate::auth;
use crate::store::{
    AccountChange, AccountFlags, Actor, NewAudit, NewUser, Store, StoreError, UserRecord,
};
use signalling::Role;
use std::net::IpAddr;

/// Who is making a change, and from where: goes into the audit trail.
#[derive(Debug, Clone)]
pub struct ChangedBy {
    pub actor: Actor,
    pub client: Option<IpAddr>,
    pub now: i64,
}

impl ChangedBy {
    fn audit(&self, action: &'static str, target: &str) -> NewAudit {
        let mut entry = NewAudit::new(self.now, self.actor.clone(), action).target(target);
        entry.client = self.client;
        entry
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Bad input: the message says what to change.
    #[error("{0}")]
    Invalid(String),
    #[error("no account named {0:?}")]
    NoSuchAccount(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// A new account, as an administrator describes it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub username: String,
    pub display_name: String,
    pub role: String,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub escalation_duty: bool,
    #[serde(default)]
    pub monitoring: bool,
    /// Admins only: may sign in with a password whatever `--local-login`
    /// allows (the identity provider is down).
    #[serde(default)]
    pub break_glass: bool,
    /// A chosen password (the command line's `--password-stdin`); none:
    /// one is generated and shown once.
    #[serde(skip)]
    pub password: Option<String>,
}

/// The limits on what an account may hold, shared with the pages.
pub const MAX_DISPLAY_NAME: usize = 100;
pub const MAX_SITE: usize = 64;

fn clean_text(what: &str, text: &str, max: usize) -> Result<String, AccountError> {
    let text = text.trim();
    if text.chars().count() > max {
        return Err(AccountError::Invalid(format!(
            "{what} is {} characters; at most {max}",
            text.chars().count()
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(AccountError::Invalid(format!(
            "{what} holds control characters"
        )));
    }
    Ok(text.to_owned())
}

fn clean_site(site: Option<&str>) -> Result<Option<String>, AccountError> {
    match site.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Ok(Some(clean_text("the site", s, MAX_SITE)?)),
        None => Ok(None),
    }
}

/// Hashes a password off the async threads (Argon2 takes a while).
async fn hash(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| AccountError::Internal(format!("password hashing failed: {e}")))?
        .map_err(AccountError::Internal)
}

/// Creates an account. With no password given, one is generated and
/// returned (to be shown once); the person must then choose their own at
/// the first sign-in (except stations, whose password is the device's).
pub async fn add(
    store: &Store,
    by: &ChangedBy,
    new: NewAccount,
) -> Result<(UserRecord, Option<String>), AccountError> {
    let username = new.username.trim().to_owned();
    auth::check_username(&username).map_err(AccountError::Invalid)?;
    let role = Role::parse(new.role.trim()).ok_or_else(|| {
        AccountError::Invalid(format!(
            "role {:?}: choose station, clinician, manager or admin",
            new.role
        ))
    })?;
    let display_name = clean_text("the display name", &new.display_name, MAX_DISPLAY_NAME)?;
    if display_name.is_empty() {
        return Err(AccountError::Invalid(
            "give a display name (what others see, e.g. \"Millom MIU Room 2\" or \"Dr Asha Patel\")"
                .into(),
        ));
    }
    let site = clean_site(new.site.as_deref())?;
    if role == Role::Station && site.is_none() {
        return Err(AccountError::Invalid(
            "a station needs a site (e.g. Millom)".into(),
        ));
    }
    if new.escalation_duty && role != Role::Clinician {
        return Err(AccountError::Invalid(
            "only a clinician can hold the escalation duty".into(),
        ));
    }
    if new.monitoring && !matches!(role, Role::Station | Role::Clinician) {
        return Err(AccountError::Invalid(
            "only a station or a clinician account can be a monitoring probe's".into(),
        ));
    }
    if new.break_glass && role != Role::Admin {
        return Err(AccountError::Invalid(
            "only an admin account can be a break-glass account".into(),
        ));
    }
    let (password, generated) = match new.password {
        Some(p) => {
            auth::check_password_policy(&p).map_err(AccountError::Invalid)?;
            (p, false)
        }
        None => (auth::random_password(), true),
    };
    let hashed = hash(password.clone()).await?;
    let audit = by
        .audit("account_created", &username)
        .detail(serde_json::json!({
            "role": role.as_str(),
            "site": site,
            "escalation_duty": new.escalation_duty,
            "monitoring": new.monitoring,
            "break_glass": new.break_glass,
        }));
    store
        .create_user_audited(
            NewUser {
                username: &username,
                display_name: &display_name,
                role,
                site: site.as_deref(),
                password_hash: &hashed,
                flags: AccountFlags {
                    escalation_duty: new.escalation_duty,
                    monitoring: new.monitoring,
                    break_glass: new.break_glass,
                    ..AccountFlags::default()
                },
                // A person given a generated password chooses their own; a
                // station's password belongs to the device.
                must_change_password: generated && role != Role::Station && !new.monitoring,
                now: by.now,
            },
            &audit,
        )
        .await?;
    let user = store
        .user_by_username(&username)
        .await?
        .ok_or_else(|| AccountError::NoSuchAccount(username.clone()))?;
    Ok((user, generated.then_some(password)))
}

async fn change(
    store: &Store,
    by: &ChangedBy,
    username: &str,
    change: AccountChange,
    audit: NewAudit,
) -> Result<UserRecord, AccountError> {
    store
        .change_account(username, &change, &audit)
        .await?
        .ok_or_else(|| AccountError::NoSuchAccount(username.to_owned()))
        .inspect(|_| {
            tracing::info!(actor = %by.actor.name(), action = audit.action, target = %username, "account changed")
        })
}

/// Stops (or allows again) an account's sign-ins; disabling ends its
/// sessions (the caller closes its live sockets).
pub async fn set_disabled(
    store: &Store,
    by: &ChangedBy,
    username: &str,
    disabled: bool,
) -> Result<UserRecord, AccountError> {
    let action = if disabled {
        "account_disabled"
    } else {
        "account_enabled"
    };
    change(
        store,
        by,
        username,
        AccountChange::Disabled(disabled),
        by.audit(action, username),
    )
    .await
}

/// A new password: the given one, or a generated one (returned, to show
/// once; the person then chooses their own at the next sign-in). Ends the
/// account's sessions.
pub async fn reset_password(
    store: &Store,
    by: &ChangedBy,
    username: &str,
    password: Option<String>,
) -> Result<(UserRecord, Option<String>), AccountError> {
    let current = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| AccountError::NoSuchAccount(username.to_owned()))?;
    if current.oidc_subject.is_some() && current.role != Role::Station {
        return Err(AccountError::Invalid(format!(
            "{username:?} signs in through the identity provider; its password is set there"
        )));
    }
    let (password, generated) = match password {
        Some(p) => {
            auth::check_password_policy(&p).map_err(AccountError::Invalid)?;
            (p, false)
        }
        None => (auth::random_password(), true),
    };
    let hashed = hash(password.clone()).await?;
    let must_change = generated && current.role != Role::Station && !current.monitoring;
    let user = change(
        store,
        by,
        username,
        AccountChange::Password {
            hash: hashed,
            must_change,
        },
        by.audit("password_reset", username)
            .detail(serde_json::json!({ "generated": generated })),
    )
    .await?;
    Ok((user, generated.then_some(password)))
}

pub async fn set_escalation_duty(
    store: &Store,
    by: &ChangedBy,
    username: &str,
    duty: bool,
) -> Result<UserRecord, AccountError> {
    let current = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| AccountError::NoSuchAccount(username.to_owned()))?;
    if duty && current.role != Role::Clinician {
        return Err(AccountError::Invalid(format!(
            "{username:?} is a {} account; only a clinician can hold the escalation duty",
            current.role.as_str()
        )));
    }
    change(
        store,
        by,
        username,
        AccountChange::EscalationDuty(duty),
        by.audit("escalation_duty_changed", username)
            .detail(serde_json::json!({ "escalation_duty": duty })),
    )
    .await
}

pub async fn set_monitoring(
    store: &Store,
    by: &ChangedBy,
    username: &str,
    monitoring: bool,
) -> Result<UserRecord, AccountError> {
    let current = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| AccountError::NoSuchAccount(username.to_owned()))?;
    if monitoring && !matches!(current.role, Role::Station | Role::Clinician) {
        return Err(AccountError::Invalid(
            "only a station or a clinician account can be a monitoring probe's".into(),
        ));
    }
    change(
        store,
        by,
        username,
        AccountChange::Monitoring(monitoring),
        by.audit("monitoring_changed", username)
            .detail(serde_json::json!({ "monitoring": monitoring })),
    )
    .await
}

pub async fn set_site(
    store: &Store,
    by: &ChangedBy,
    username: &str,
    site: Option<&str>,
) -> Result<UserRecord, AccountError> {
    let site = clean_site(site)?;
    let current = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| AccountError::NoSuchAccount(username.to_owned()))?;
    if current.role == Role::Station && site.is_none() {
        return Err(AccountError::Invalid(
            "a station needs a site (e.g. Millom)".into(),
        ));
    }
    change(
        store,
        by,
        username,
        AccountChange::Site(site.clone()),
        by.audit("site_changed", username)
            .detail(serde_json::json!({ "site": site })),
    )
    .await
}
