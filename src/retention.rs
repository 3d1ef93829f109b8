//! The retention period (`--retention-days N`): once a day the leader
//! deletes consults, their events and presence records older than N days
//! (`Store::delete_older_than`), logs how many, and counts them in the
//! metrics. Open consults (waiting, in a call, owing an outcome) are never
//! deleted, whatever their age.
//!
//! The session log is not the clinical record (the consult is written in
//! the patient's notes by the MIU); how long to keep it is the trust's
//! decision under the NHS Records Management Code of Practice (README,
//! "Retention").

use crate::clock::Clock;
use crate::leader::Leadership;
use crate::metrics::ByTable;
use crate::store::{Deleted, Store};
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;
/// The first run after the server starts (or this instance starts
/// leading), then every day.
const FIRST_RUN: Duration = Duration::from_secs(1);
const EVERY: Duration = Duration::from_secs(86_400);

/// Runs the job while this instance leads, until the task is aborted.
pub fn spawn(
    store: Store,
    leader: Leadership,
    clock: Clock,
    days: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut role = leader.watch();
        loop {
            // Only the leader deletes: two instances must not race.
            if role.wait_for(|r| r.is_leader()).await.is_err() {
                return;
            }
            tokio::time::sleep(FIRST_RUN).await;
            while leader.role().is_leader() {
                run_once(&store, &leader, clock, days).await;
                tokio::time::sleep(EVERY).await;
            }
        }
    })
}

/// One pass: deletes what is older than `days` and says so.
pub async fn run_once(
    store: &Store,
    leader: &Leadership,
    clock: Clock,
    days: u32,
) -> Option<Deleted> {
    let cutoff = clock.now_ms() - i64::from(days) * DAY_MS;
    let started = std::time::Instant::now();
    match store.delete_older_than(cutoff).await {
        Ok(d) => {
            tracing::info!(
                consults = d.consults,
                consult_events = d.consult_events,
                presence_records = d.presence_log,
                report_days = d.report_days,
                before = %crate::timefmt::iso_utc(cutoff),
                took_ms = started.elapsed().as_millis() as u64,
                "retention: deleted what was older than {days} days"
            );
            let metrics = &leader.stats.metrics;
            for (table, n) in [
                ("consults", d.consults),
                ("consult_events", d.consult_events),
                ("presence_log", d.presence_log),
            ] {
                metrics
                    .retention_deleted_total
                    .get_or_create(&ByTable {
                        table: table.to_owned(),
                    })
                    .inc_by(n);
            }
            Some(d)
        }
        Err(e) => {
            tracing::error!(error = %e, "retention: could not delete old records; tried again tomorrow (or at the next start)");
            None
        }
    }
}
