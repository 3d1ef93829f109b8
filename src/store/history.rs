//! Writing whole consults at once: generated history (`miulink seed`, the
//! demo) and hand-built logs in tests. Live consults never come this way:
//! they are written event by event by [`Store::record`].

use super::{Backend, Result, Store, StoreError};
use signalling::ConsultEvent;

/// A finished (or open) consult with every column and its events.
#[derive(Debug, Clone, Default)]
pub struct HistoricConsult {
    pub id: i64,
    pub station_id: i64,
    pub station_name: String,
    pub site: Option<String>,
    pub urgency: String,
    pub reason: String,
    pub patient_ref: Option<String>,
    pub requested_at: i64,
    pub status: String,
    pub first_rung_at: Option<i64>,
    pub rung_count: i64,
    pub closed_at: Option<i64>,
    pub call_id: Option<i64>,
    pub clinician_id: Option<i64>,
    pub clinician_name: Option<String>,
    pub accepted_at: Option<i64>,
    pub station_media_at: Option<i64>,
    pub clinician_media_at: Option<i64>,
    pub connected_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub outcome: Option<String>,
    pub outcome_note: Option<String>,
    pub outcome_at: Option<i64>,
    pub synthetic: bool,
    pub test_call: bool,
    pub realerted_at: Option<i64>,
    pub escalated_at: Option<i64>,
    /// The last `call_quality` sample of each side (JSON).
    pub station_quality: Option<String>,
    pub clinician_quality: Option<String>,
    /// `(at, event)` in order, as the switchboard would have logged them.
    pub events: Vec<(i64, ConsultEvent)>,
}

/// SQLite allows 32,766 bound values per statement, PostgreSQL 65,535.
const CONSULTS_PER_STATEMENT: usize = 400;
const EVENTS_PER_STATEMENT: usize = 4_000;

/// `(?, ?), (?, ?)` (SQLite) or `($1, $2), ($3, $4)` (PostgreSQL) for
/// `rows` rows of `columns` values. SQLite gets plain `?`: sqlx looks each
/// numbered parameter up by name, and SQLite's lookup walks the whole list,
/// so thousands of `$n` in one statement cost the square of their number
/// (a million consults seeded in minutes instead of seconds).
pub(super) fn value_rows(backend: Backend, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=columns)
                .map(|c| match backend {
                    Backend::Sqlite => "?".to_owned(),
                    Backend::Postgres => format!("${}", r * columns + c),
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Writes these consults and their events in one transaction.
    pub async fn insert_history(&self, consults: &[HistoricConsult]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        const CONSULT_COLUMNS: usize = 30;
        for batch in consults.chunks(CONSULTS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO consults (id, station_id, station_name, site, urgency, reason, patient_ref, \
                 requested_at, status, first_rung_at, rung_count, closed_at, call_id, clinician_id, \
                 clinician_name, accepted_at, station_media_at, clinician_media_at, connected_at, \
                 ended_at, end_reason, outcome, outcome_note, outcome_at, synthetic, test_call, \
                 realerted_at, escalated_at, station_quality, clinician_quality) VALUES {}",
                value_rows(self.backend, batch.len(), CONSULT_COLUMNS)
            );
            let mut q = sqlx::query(&sql);
            for c in batch {
                q = q
                    .bind(c.id)
                    .bind(c.station_id)
                    .bind(&c.station_name)
                    .bind(&c.site)
                    .bind(&c.urgency)
                    .bind(&c.reason)
                    .bind(&c.patient_ref)
                    .bind(c.requested_at)
                    .bind(&c.status)
                    .bind(c.first_rung_at)
                    .bind(c.rung_count)
                    .bind(c.closed_at)
                    .bind(c.call_id)
                    .bind(c.clinician_id)
                    .bind(&c.clinician_name)
                    .bind(c.accepted_at)
                    .bind(c.station_media_at)
                    .bind(c.clinician_media_at)
                    .bind(c.connected_at)
                    .bind(c.ended_at)
                    .bind(&c.end_reason)
                    .bind(&c.outcome)
                    .bind(&c.outcome_note)
                    .bind(c.outcome_at)
                    .bind(i64::from(c.synthetic))
                    .bind(i64::from(c.test_call))
                    .bind(c.realerted_at)
                    .bind(c.escalated_at)
                    .bind(&c.station_quality)
                    .bind(&c.clinician_quality);
            }
            q.execute(&mut *tx).await.map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Invalid(
                    "a consult or call id is already in the log; \
                     add history only while the server is stopped"
                        .into(),
                ),
                other => other.into(),
            })?;
        }
        let mut events = Vec::new();
        for c in consults {
            for (at, event) in &c.events {
                let detail = serde_json::to_string(event).map_err(|e| {
                    StoreError::Invalid(format!("cannot encode event for the log: {e}"))
                })?;
                events.push((c.id, *at, event.kind(), detail));
            }
        }
        for batch in events.chunks(EVENTS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO consult_events (consult_id, at, kind, detail) VALUES {}",
                value_rows(self.backend, batch.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for (id, at, kind, detail) in batch {
                q = q.bind(*id).bind(*at).bind(*kind).bind(detail.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
