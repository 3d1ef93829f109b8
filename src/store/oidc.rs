//! Sign-ins through the identity provider that are under way: the state
//! sent to the provider (kept as a hash), the browser it belongs to, the
//! nonce and the PKCE verifier. A row is taken (deleted) when the browser
//! comes back, so a state works once; rows older than the sign-in's time
//! limit are swept when a new sign-in starts.

use super::{Result, Store};
use sqlx::Row;

/// A sign-in under way, as taken back at the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub binding_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub created_at: i64,
}

impl Store {
    /// Remembers a sign-in sent to the provider; sweeps those begun before
    /// `stale_before`.
    pub async fn begin_oidc_login(
        &self,
        state_hash: &str,
        pending: &PendingLogin,
        stale_before: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM oidc_logins WHERE created_at < $1")
            .bind(stale_before)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO oidc_logins (state_hash, binding_hash, nonce, pkce_verifier, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(state_hash)
        .bind(&pending.binding_hash)
        .bind(&pending.nonce)
        .bind(&pending.pkce_verifier)
        .bind(pending.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes the sign-in with this state: it is gone afterwards, whatever
    /// the caller decides.
    pub async fn take_oidc_login(&self, state_hash: &str) -> Result<Option<PendingLogin>> {
        let row = sqlx::query(
            "DELETE FROM oidc_logins WHERE state_hash = $1 \
             RETURNING binding_hash, nonce, pkce_verifier, created_at",
        )
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(PendingLogin {
                binding_hash: r.try_get("binding_hash")?,
                nonce: r.try_get("nonce")?,
                pkce_verifier: r.try_get("pkce_verifier")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }
}
