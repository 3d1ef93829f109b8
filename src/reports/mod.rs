//! The response-time dashboard: `GET /api/reports` and the `/reports` page.
//!
//! * [`settings`]: answer targets per urgency, travel minutes per site, the
//!   trust's time zone (command line / environment).
//! * [`local`]: local days and hours, daylight saving included.
//! * [`packed`]: the report cache, one packed blob per UTC day.
//! * [`stats`]: the percentile definition.
//! * [`compute`]: every figure of the dashboard in one pass over the
//!   consults of the period (`pass.rs`), then in stages (`stages.rs`).
//! * [`output`]: the report as the JSON answer has it.
//!
//! [`build`] reads the cache (rebuilding the days whose consults changed
//! since) and computes the report off the async runtime.

pub mod compute;
pub mod local;
pub mod output;
pub mod packed;
mod pass;
pub mod settings;
mod stages;
pub mod stats;

pub use output::Report;
pub use settings::ReportSettings;

use crate::store::{Store, StoreError};
use chrono::{DateTime, NaiveDate};
use local::{LocalTime, DAY_MS};
use packed::{Chunk, FORMAT};

/// The longest period a report covers (so that a typo such as year 1026
/// cannot ask for a million days).
pub const MAX_DAYS: i64 = 3_700;

/// What to report on, resolved to instants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportQuery {
    /// Requested at or after (UTC ms); `None` = from the start of the log.
    pub from: Option<i64>,
    /// Requested before (UTC ms); `None` = up to now.
    pub to: Option<i64>,
    pub site: Option<String>,
    pub station: Option<String>,
    /// Monitoring test calls are left out of managers' figures by default.
    pub include_test_calls: bool,
    /// The preset the period came from, echoed back (e.g. `last_7_days`).
    pub preset: Option<Preset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Today,
    Last7Days,
    Last30Days,
    ThisQuarter,
}

impl Preset {
    pub const ALL: [Preset; 4] = [
        Preset::Today,
        Preset::Last7Days,
        Preset::Last30Days,
        Preset::ThisQuarter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Today => "today",
            Preset::Last7Days => "last_7_days",
            Preset::Last30Days => "last_30_days",
            Preset::ThisQuarter => "this_quarter",
        }
    }

    pub fn parse(s: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// `[from, to)`: whole local days, up to the end of today.
    pub fn range(self, lt: &LocalTime, now: i64) -> Option<(i64, i64)> {
        let today = lt.date_of(now)?;
        let first = match self {
            Preset::Today => today,
            Preset::Last7Days => today - chrono::Duration::days(6),
            Preset::Last30Days => today - chrono::Duration::days(29),
            Preset::ThisQuarter => LocalTime::quarter_start(today)?,
        };
        Some((lt.start_of(first)?, lt.start_of(today.succ_opt()?)?))
    }
}

/// Which end of a period a date stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `2026-11-23` means local midnight starting the 23rd.
    Start,
    /// `2026-11-23` means the end of the 23rd (the next local midnight),
    /// so `to=2026-11-23` includes all of that day.
    End,
}

/// Reads a time given in a query: `2026-11-23` (a day in the trust's local
/// time), `2026-11-23T09:00:00Z` (RFC 3339) or milliseconds since 1970.
pub fn parse_time(value: &str, bound: Bound, lt: &LocalTime) -> Result<i64, String> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let date = match bound {
            Bound::Start => Some(date),
            Bound::End => date.succ_opt(),
        };
        if let Some(t) = date.and_then(|d| lt.start_of(d)) {
            return Ok(t);
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp_millis());
    }
    Err(format!(
        "cannot read {value:?} as a time; use a date such as 2026-11-23 (local time), \
         2026-11-23T09:00:00Z or milliseconds since 1970"
    ))
}

/// The UTC days (cache chunks) that can hold consults requested in the period.
fn chunk_span(from: Option<i64>, to: Option<i64>) -> (i64, i64) {
    // Same rounding as SQLite's integer division in the triggers (times
    // before 1970 do not occur in the log).
    let first = from.map_or(0, |f| f.max(0) / DAY_MS);
    let last = to.map_or(i64::MAX, |t| (t - 1).max(0) / DAY_MS);
    (first, last)
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    BadRequest(String),
    #[error("report task failed: {0}")]
    Task(String),
}

/// How a report saves the days it had to rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Save {
    /// In the background: the report does not wait for the disk.
    Background,
    /// Before returning (bringing the cache up to date is the point).
    Wait,
}

/// Every day of the period from the cache, rebuilding stale days from the
/// consults table (and saving them, in the background, for next time).
pub async fn load_chunks(
    store: &Store,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Vec<Chunk>, ReportError> {
    load(store, from, to, Save::Background).await
}

async fn load(
    store: &Store,
    from: Option<i64>,
    to: Option<i64>,
    save: Save,
) -> Result<Vec<Chunk>, ReportError> {
    let (first, last) = chunk_span(from, to);
    let mut snapshot = store.report_snapshot().await?;
    let cached = snapshot.chunks(first, last, FORMAT).await?;
    let blobs: Vec<(i64, i64, Option<Vec<u8>>)> = cached
        .into_iter()
        .map(|c| (c.chunk, c.version, c.data))
        .collect();
    // Unpacking a million records is CPU work: keep it off the runtime.
    let decoded = tokio::task::spawn_blocking(move || {
        blobs
            .into_iter()
            .map(|(chunk, version, data)| {
                let decoded = data.map(|d| Chunk::decode(chunk, d));
                (chunk, version, decoded)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ReportError::Task(e.to_string()))?;
    let mut chunks = Vec::with_capacity(decoded.len());
    let mut rebuilt = Vec::new();
    for (index, version, decoded) in decoded {
        match decoded {
            Some(Ok(chunk)) => chunks.push(chunk),
            other => {
                if let Some(Err(e)) = other {
                    tracing::warn!(chunk = index, error = %e, "report cache blob unreadable; rebuilding it");
                }
                let start = index * DAY_MS;
                let facts = snapshot.facts(start, start + DAY_MS).await?;
                let chunk = Chunk::build(index, &facts).map_err(StoreError::Invalid)?;
                rebuilt.push((index, version, chunk.encode()));
                chunks.push(chunk);
            }
        }
    }
    snapshot.finish().await?;
    if !rebuilt.is_empty() {
        // The figures of this report are right either way; a failed save
        // only means the next report rebuilds these days again.
        let store = store.clone();
        let saving = async move {
            match store.save_report_chunks(FORMAT, &rebuilt).await {
                Ok(()) => tracing::debug!(days = rebuilt.len(), "report cache: saved rebuilt days"),
                Err(e) => {
                    tracing::warn!(error = %e, days = rebuilt.len(), "could not save the report cache")
                }
            }
        };
        match save {
            Save::Background => {
                tokio::spawn(saving);
            }
            Save::Wait => saving.await,
        }
    }
    Ok(chunks)
}

/// Brings the whole report cache up to date (after seeding history, so the
/// first dashboard is quick). Returns the number of days in the log.
pub async fn refresh_cache(store: &Store) -> Result<usize, ReportError> {
    Ok(load(store, None, None, Save::Wait).await?.len())
}

/// The whole dashboard for one query.
pub async fn build(
    store: &Store,
    settings: &ReportSettings,
    query: &ReportQuery,
    now: i64,
) -> Result<Report, ReportError> {
    if let (Some(f), Some(t)) = (query.from, query.to) {
        if f > t {
            return Err(ReportError::BadRequest(
                "`from` is after `to`; swap them".into(),
            ));
        }
    }
    if let Some(f) = query.from {
        if query.to.unwrap_or(now).saturating_sub(f) > MAX_DAYS * DAY_MS {
            return Err(ReportError::BadRequest(format!(
                "that period is over {MAX_DAYS} days; choose a shorter one"
            )));
        }
    }
    let chunks = load_chunks(store, query.from, query.to).await?;
    let settings = settings.clone();
    let query = query.clone();
    tokio::task::spawn_blocking(move || compute::compute(&chunks, &query, &settings, now))
        .await
        .map_err(|e| ReportError::Task(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_whole_local_days() {
        let lt = LocalTime::new(chrono_tz::Europe::London);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
        // Monday 6 July 2026, 10:00 BST.
        let now = at("2026-07-06T09:00:00Z");
        assert_eq!(
            Preset::Today.range(&lt, now),
            Some((at("2026-07-05T23:00:00Z"), at("2026-07-06T23:00:00Z")))
        );
        assert_eq!(
            Preset::Last7Days.range(&lt, now),
            Some((at("2026-06-29T23:00:00Z"), at("2026-07-06T23:00:00Z")))
        );
        assert_eq!(
            Preset::Last30Days.range(&lt, now).map(|r| r.0),
            Some(at("2026-06-06T23:00:00Z"))
        );
        assert_eq!(
            Preset::ThisQuarter.range(&lt, now).map(|r| r.0),
            Some(at("2026-06-30T23:00:00Z"))
        );
        // Spanning the clocks going back: 25 October 2026 is 25 hours long.
        let now = at("2026-10-27T12:00:00Z");
        let (from, to) = Preset::Last7Days.range(&lt, now).unwrap();
        assert_eq!(to - from, 7 * DAY_MS + 3_600_000);
    }

    #[test]
    fn times_in_queries() {
        let lt = LocalTime::new(chrono_tz::Europe::London);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
        assert_eq!(
            parse_time("2026-07-06", Bound::Start, &lt),
            Ok(at("2026-07-05T23:00:00Z"))
        );
        assert_eq!(
            parse_time("2026-07-06", Bound::End, &lt),
            Ok(at("2026-07-06T23:00:00Z"))
        );
        assert_eq!(
            parse_time("2026-12-01", Bound::Start, &lt),
            Ok(at("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            parse_time("2026-07-06T10:00:00+01:00", Bound::Start, &lt),
            Ok(at("2026-07-06T09:00:00Z"))
        );
        assert_eq!(parse_time(" 1234 ", Bound::End, &lt), Ok(1234));
        assert!(parse_time("yesterday", Bound::Start, &lt).is_err());
        assert!(parse_time("2026-02-30", Bound::Start, &lt).is_err());
    }

    #[test]
    fn chunk_spans_cover_the_period() {
        assert_eq!(chunk_span(None, None), (0, i64::MAX));
        assert_eq!(chunk_span(Some(DAY_MS), Some(2 * DAY_MS)), (1, 1));
        assert_eq!(chunk_span(Some(DAY_MS - 1), Some(2 * DAY_MS + 1)), (0, 2));
    }
}
