//! SQL of the response-time reports: the report cache (migration 0002) and
//! the narrow read of consults it is built from.
//!
//! `report_chunk_versions` is bumped by triggers on every insert, update or
//! delete of a consult, per UTC day. `report_chunks` holds the packed blob
//! of a day and the version it was built from; a blob whose version is
//! behind (or whose format is old) is stale and rebuilt on the next read.

use super::{Backend, Result, Store};
use sqlx::Row;

/// What the reports need of one consult.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsultFact {
    pub requested_at: i64,
    pub station: String,
    pub site: Option<String>,
    pub urgency: String,
    pub status: String,
    pub clinician: Option<String>,
    pub accepted_at: Option<i64>,
    pub connected_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub outcome: Option<String>,
    pub synthetic: bool,
    pub test_call: bool,
    pub realerted_at: Option<i64>,
    pub escalated_at: Option<i64>,
    /// The latest `call_quality` sample of each side, as stored (JSON).
    pub station_quality: Option<String>,
    pub clinician_quality: Option<String>,
}

/// A day of the report cache as read: its current version, and its blob if
/// that is up to date.
#[derive(Debug)]
pub struct CachedChunk {
    pub chunk: i64,
    pub version: i64,
    pub data: Option<Vec<u8>>,
}

/// A consistent read of the cache and the consults behind it (one read
/// transaction: a write that lands meanwhile is seen by the next report).
pub struct ReportSnapshot {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl Store {
    pub async fn report_snapshot(&self) -> Result<ReportSnapshot> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // One snapshot for every statement of the read, as SQLite's
            // read transaction gives (PostgreSQL's default takes a new
            // snapshot per statement).
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        Ok(ReportSnapshot { tx })
    }

    /// Stores rebuilt blobs `(chunk, version, blob)`. A blob never replaces
    /// one built from a newer version.
    pub async fn save_report_chunks(
        &self,
        format: i64,
        chunks: &[(i64, i64, Vec<u8>)],
    ) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (chunk, version, data) in chunks {
            sqlx::query(
                "INSERT INTO report_chunks (chunk, version, format, data) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (chunk) DO UPDATE SET version = excluded.version, \
                 format = excluded.format, data = excluded.data \
                 WHERE excluded.version > report_chunks.version OR report_chunks.format <> excluded.format",
            )
            .bind(chunk)
            .bind(version)
            .bind(format)
            .bind(data.as_slice())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Drops every cached blob: the next report rebuilds each day from the
    /// consults table (after a change to the packing, or to measure it).
    pub async fn clear_report_cache(&self) -> Result<()> {
        sqlx::query("DELETE FROM report_chunks")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The floor a report is measured against: one plain aggregate (count,
    /// mean and longest wait) over the consults requested in `[from, to)`,
    /// test calls left out. Returns the count.
    pub async fn plain_aggregate(&self, from: i64, to: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(AVG(accepted_at - requested_at) AS DOUBLE PRECISION) AS mean, \
             MAX(accepted_at - requested_at) AS longest \
             FROM consults WHERE test_call = 0 AND requested_at >= $1 AND requested_at < $2",
        )
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Marks the latest consult's day as changed without changing what it
    /// says (its cached blob is rebuilt on the next read).
    pub async fn touch_latest_consult(&self) -> Result<()> {
        sqlx::query(
            "UPDATE consults SET rung_count = rung_count WHERE id = (SELECT MAX(id) FROM consults)",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl ReportSnapshot {
    /// Every day in `first..=last` that has ever held a consult, with its
    /// blob when that is current and of this `format`.
    pub async fn chunks(&mut self, first: i64, last: i64, format: i64) -> Result<Vec<CachedChunk>> {
        let rows = sqlx::query(
            "SELECT v.chunk AS chunk, v.version AS version, c.data AS data \
             FROM report_chunk_versions v \
             LEFT JOIN report_chunks c ON c.chunk = v.chunk AND c.version = v.version AND c.format = $3 \
             WHERE v.chunk >= $1 AND v.chunk <= $2 ORDER BY v.chunk",
        )
        .bind(first)
        .bind(last)
        .bind(format)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CachedChunk {
                    chunk: r.try_get("chunk")?,
                    version: r.try_get("version")?,
                    data: r.try_get("data")?,
                })
            })
            .collect()
    }

    /// The consults requested in `[from, to)`, test calls included: each
    /// the summary `signalling::consult` keeps (`store/consults.rs`), as
    /// the report packs it.
    pub async fn facts(&mut self, from: i64, to: i64) -> Result<Vec<ConsultFact>> {
        let rows = sqlx::query(&format!(
            "SELECT {}, synthetic FROM consults WHERE requested_at >= $1 AND requested_at < $2",
            super::consults::columns()
        ))
        .bind(from)
        .bind(to)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| {
                let c = super::consults::from_row(r)?;
                Ok(ConsultFact {
                    requested_at: c.requested_at,
                    station: c.station_name,
                    site: c.site,
                    urgency: c.urgency.as_str().to_owned(),
                    status: c.status.as_str().to_owned(),
                    clinician: c.clinician_name,
                    accepted_at: c.accepted_at,
                    connected_at: c.connected_at,
                    ended_at: c.ended_at,
                    closed_at: c.closed_at,
                    outcome: c.outcome.map(|o| o.as_str().to_owned()),
                    synthetic: r.try_get::<i64, _>("synthetic")? != 0,
                    test_call: c.test_call,
                    realerted_at: c.realerted_at,
                    escalated_at: c.escalated_at,
                    station_quality: c.station_quality,
                    clinician_quality: c.clinician_quality,
                })
            })
            .collect()
    }

    /// Ends the read (nothing was written).
    pub async fn finish(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}
