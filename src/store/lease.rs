//! The leader's lease (PostgreSQL only; migration 0013).
//!
//! One row names the instance that owns the switchboard, until when (by the
//! database's clock), and the epoch of its leadership. A standby takes the
//! lease only once it has expired, and takes it with the next epoch. The
//! leader's [`Fence`] makes every session-log transaction begin by reading
//! the row `FOR KEY SHARE` and checking that this leadership is still the
//! live one: a deposed leader's write fails with [`StoreError::Deposed`],
//! and a new leader's takeover (which raises `epoch`, a key column since
//! migration 0014) waits for a write already under way to commit, so the
//! new leader's read of the log sees it. The leader's own renewal changes
//! only `expires_at` and never waits for its writes (with `FOR SHARE` it
//! did, and a writer that commits back to back starved it). No event is
//! ever acknowledged by two leaders.

use super::{Backend, Result, Store, StoreError};

/// What a leader's writes are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub holder: String,
    pub epoch: i64,
}

impl Store {
    /// A handle whose session-log writes succeed only while `fence` is the
    /// live lease.
    pub fn fenced(&self, fence: Fence) -> Store {
        Store {
            fence: Some(std::sync::Arc::new(fence)),
            ..self.clone()
        }
    }

    /// Takes the lease for `holder` if nobody holds a live one; the new
    /// epoch, or `None` while another instance leads.
    pub async fn try_acquire_lease(&self, holder: &str, lease_ms: i64) -> Result<Option<i64>> {
        self.postgres_only("a leader's lease")?;
        let epoch = sqlx::query_scalar::<_, i64>(
            "INSERT INTO leader_lease (id, holder, epoch, expires_at) \
             VALUES (1, $1, 1, clock_timestamp() + make_interval(secs => $2::double precision / 1000)) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, \
               epoch = leader_lease.epoch + 1, expires_at = excluded.expires_at \
             WHERE leader_lease.expires_at < clock_timestamp() \
             RETURNING epoch",
        )
        .bind(holder)
        .bind(lease_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(epoch)
    }

    /// Extends a live lease; false if it is no longer this leadership's
    /// (expired, or taken by another instance).
    pub async fn renew_lease(&self, fence: &Fence, lease_ms: i64) -> Result<bool> {
        self.postgres_only("a leader's lease")?;
        let renewed = sqlx::query_scalar::<_, i64>(
            "UPDATE leader_lease SET expires_at = clock_timestamp() + make_interval(secs => $3::double precision / 1000) \
             WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp() \
             RETURNING epoch",
        )
        .bind(&fence.holder)
        .bind(fence.epoch)
        .bind(lease_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(renewed.is_some())
    }

    /// Ends a lease at once (a leader shutting down), so a standby need not
    /// wait for it to expire.
    pub async fn release_lease(&self, fence: &Fence) -> Result<()> {
        self.postgres_only("a leader's lease")?;
        sqlx::query(
            "UPDATE leader_lease SET expires_at = clock_timestamp() - interval '1 millisecond' \
             WHERE id = 1 AND holder = $1 AND epoch = $2",
        )
        .bind(&fence.holder)
        .bind(fence.epoch)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Begins a session-log transaction: checked against the fence, and
    /// holding the lease row until it ends (see [`Store::check_fence`]).
    /// Public so that tests can hold one open.
    #[doc(hidden)]
    pub async fn begin_log_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.pool.begin().await?;
        self.check_fence(&mut tx).await?;
        Ok(tx)
    }

    /// Inside a session-log transaction: fails with
    /// [`StoreError::Deposed`] unless this store's fence is the live lease,
    /// and holds the lease row (key share lock) until the transaction ends:
    /// a takeover, which raises the key column `epoch`, waits for it; the
    /// leader's own renewal, which changes only `expires_at`, does not
    /// (migrations/postgres/0014).
    pub(super) async fn check_fence(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<()> {
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let live = sqlx::query_scalar::<_, i64>(
            "SELECT epoch FROM leader_lease \
             WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp() \
             FOR KEY SHARE",
        )
        .bind(&fence.holder)
        .bind(fence.epoch)
        .fetch_optional(&mut **tx)
        .await?;
        match live {
            Some(_) => Ok(()),
            None => Err(StoreError::Deposed(fence.epoch)),
        }
    }

    fn postgres_only(&self, what: &str) -> Result<()> {
        match self.backend {
            Backend::Postgres => Ok(()),
            Backend::Sqlite => Err(StoreError::Invalid(format!(
                "{what} needs PostgreSQL; SQLite runs one instance"
            ))),
        }
    }
}
