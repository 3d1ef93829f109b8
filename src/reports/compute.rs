//! Every figure of the dashboard, in one pass over the period's consults.
//!
//! Definitions (also on the page, under "How these figures are worked out"):
//!
//! * **Requests**: consult requests made in the period (by request time),
//!   monitoring test calls left out unless asked for.
//! * **Answered**: a clinician accepted the request. **Cancelled**: the
//!   nurse withdrew it before an answer. **Abandoned**: never answered; the
//!   station went offline for longer than the grace period.
//! * **Answer rate** = answered / (requests - still waiting).
//! * **Time to answer** = request to a clinician accepting, over answered
//!   requests: median, 90th and 95th percentile ([`super::stats`]) and longest.
//! * **Answered within target**: a request counts as *met* when it was
//!   answered within the target for its urgency (wait <= target). It counts
//!   as *missed* when it was answered later, or was cancelled, abandoned or
//!   is still waiting after longer than the target. A request cancelled or
//!   abandoned within the target counts neither way (nobody had a chance to
//!   miss it). Share = met / (met + missed).
//! * **Answer to video connected**: accept to media flowing on both sides.
//! * **Call duration**: media connected (or answer, if media never
//!   connected) to hang-up.
//! * **Journeys to A&E avoided**: consults with outcome "managed locally".
//!   **Travel time saved** = journeys avoided x 2 x the site's travel
//!   minutes each way (sites without a configured travel time are listed
//!   and left out of the total).
//! * **Escalations**: requests whose wait reached the re-alert time (every
//!   available clinician alerted again) and the escalation time (duty
//!   holders alerted) of their urgency, by request time.
//! * **Link quality**: over calls with a quality report from either side,
//!   the worse side's last round-trip time and loss. A link is **poor** when
//!   the round trip is over [`POOR_RTT_MS`](super::output::POOR_RTT_MS),
//!   loss is over [`POOR_LOSS_PCT`](super::output::POOR_LOSS_PCT) % or the
//!   call dropped to audio only.
//! * Days and hours are in the configured local time zone.
//!
//! How: [`compute_on`] numbers the period's stations and clinicians, runs
//! the one pass over the packed days (`pass.rs`: counts and samples, on
//! several threads), then the stages (`stages.rs`: percentiles, headline,
//! verdict, per urgency, outcomes, daily, distribution, heat map, people,
//! links, filter menus), each filling its part of the [`Report`]
//! ([`super::output`]).

use super::local::{LocalTime, DAY_MS};
use super::output::Report;
use super::packed::Chunk;
use super::pass::{run_passes, Frame};
use super::settings::ReportSettings;
use super::stages::{self, Percentiles, StationKey};
use super::stats::NO_GROUP;
use super::ReportQuery;
use std::collections::HashMap;
use std::hash::Hash;

/// Upper edges (ms) of the wait distribution's bars; the targets are added
/// so that every bar is wholly within or wholly over each target.
const WAIT_EDGES_MS: [i64; 12] = [
    30_000, 60_000, 120_000, 180_000, 300_000, 420_000, 600_000, 900_000, 1_200_000, 1_800_000,
    2_700_000, 3_600_000,
];

/// Below this many consults one thread does it all.
const RECORDS_PER_THREAD: usize = 100_000;

/// The whole report, on as many threads as are worth it (one per
/// `RECORDS_PER_THREAD` consults, up to four).
pub fn compute(chunks: &[Chunk], q: &ReportQuery, settings: &ReportSettings, now: i64) -> Report {
    let records: usize = chunks.iter().map(Chunk::len).sum();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(records / RECORDS_PER_THREAD)
        .max(1);
    compute_on(chunks, q, settings, now, threads)
}

/// The whole report, its passes split over `threads` threads.
pub fn compute_on(
    chunks: &[Chunk],
    q: &ReportQuery,
    settings: &ReportSettings,
    now: i64,
    threads: usize,
) -> Report {
    let threads = threads.max(1);
    let targets = settings.targets_ms;
    let chunks = in_period(chunks, q);
    let edges = wait_edges(targets);
    let names = Names::of(&chunks, q);
    let frame = names.frame(&chunks, &edges, q, settings, now);
    let mut pass = run_passes(&frame, &chunks, threads);
    let p = Percentiles::of(
        &mut pass,
        names.stations.len(),
        names.clinicians.len(),
        threads,
    );

    let daily = stages::daily(&pass, &p, q, &frame.lt, now, frame.base);
    let link_by_site = stages::link_by_site(&pass.links, &names.stations);
    Report {
        period: stages::period(q, &daily),
        filters: stages::filters(q),
        generated_at: now,
        timezone: settings.timezone.name().to_owned(),
        targets: stages::targets(targets),
        verdict: stages::verdict(&pass.all, settings),
        headline: stages::headline(&mut pass, &p),
        by_urgency: stages::by_urgency(&pass.by_urgency, &p, targets),
        outcomes: stages::outcomes(&pass, &names.stations, settings),
        daily,
        wait_distribution: stages::distribution(&pass, &edges, targets),
        heatmap: stages::heatmap(&pass.cells, &p),
        clinicians: stages::clinicians(names.clinicians, &pass.clinician_answered, &p),
        stations: stages::stations(&mut pass, &names.stations, &p),
        link_by_site,
        choices: stages::choices(&names.stations, &pass.seen),
    }
}

/// The chunks (UTC days) that overlap the period.
fn in_period<'a>(chunks: &'a [Chunk], q: &ReportQuery) -> Vec<&'a Chunk> {
    let from = q.from.unwrap_or(i64::MIN);
    let to = q.to.unwrap_or(i64::MAX);
    chunks
        .iter()
        .filter(|c| c.start_ms() + DAY_MS > from && c.start_ms() < to)
        .collect()
}

/// The wait distribution's bar edges, the targets among them.
fn wait_edges(targets: [i64; 3]) -> Vec<i64> {
    let mut edges: Vec<i64> = WAIT_EDGES_MS.to_vec();
    edges.extend(targets);
    edges.sort_unstable();
    edges.dedup();
    edges
}

/// The report's numbering of stations and clinicians, from the days' own
/// tables (a handful of names a day).
struct Names {
    stations: Vec<StationKey>,
    clinicians: Vec<String>,
    /// Per chunk: its stations' indices in `stations`, and its clinicians'.
    station_maps: Vec<Vec<usize>>,
    clinician_maps: Vec<Vec<usize>>,
    /// By station index: passes the site and station filter.
    passes: Vec<bool>,
}

impl Names {
    fn of(chunks: &[&Chunk], q: &ReportQuery) -> Names {
        let mut stations = Numbering::default();
        let mut clinicians = Numbering::default();
        let mut station_maps = Vec::with_capacity(chunks.len());
        let mut clinician_maps = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            station_maps.push(stations.indices(&chunk.stations));
            clinician_maps.push(clinicians.indices(&chunk.clinicians));
        }
        let passes: Vec<bool> = stations
            .keys
            .iter()
            .map(|(name, site)| {
                q.site.as_ref().is_none_or(|s| site.as_ref() == Some(s))
                    && q.station.as_ref().is_none_or(|s| s == name)
            })
            .collect();
        Names {
            stations: stations.keys,
            clinicians: clinicians.keys,
            station_maps,
            clinician_maps,
            passes,
        }
    }

    /// What every pass over `chunks` (those of the period) shares.
    fn frame<'a>(
        &'a self,
        chunks: &[&Chunk],
        edges: &'a [i64],
        q: &ReportQuery,
        settings: &ReportSettings,
        now: i64,
    ) -> Frame<'a> {
        let lt = LocalTime::new(settings.timezone);
        // Days are counted from `base` (the first possible local day) up to
        // the last possible one.
        let base = match q.from {
            Some(f) => lt.day_number(f),
            None => chunks.first().map_or(0, |c| c.index - 1),
        };
        let last_possible = chunks.last().map_or(base, |c| c.index + 1);
        let day_slots = usize::try_from(last_possible - base + 1)
            .unwrap_or(0)
            .min(usize::from(NO_GROUP));
        Frame {
            from: q.from.unwrap_or(i64::MIN),
            to: q.to.unwrap_or(i64::MAX),
            include_test_calls: q.include_test_calls,
            targets: settings.targets_ms,
            edges,
            now,
            lt,
            base,
            days: day_slots,
            station_maps: &self.station_maps,
            clinician_maps: &self.clinician_maps,
            passes: &self.passes,
            clinicians: self.clinicians.len(),
        }
    }
}

/// Names numbered in the order first met.
struct Numbering<K> {
    keys: Vec<K>,
    index: HashMap<K, usize>,
}

impl<K> Default for Numbering<K> {
    fn default() -> Self {
        Numbering {
            keys: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> Numbering<K> {
    /// The numbers of `names` (one day's table), numbering the new ones.
    fn indices(&mut self, names: &[K]) -> Vec<usize> {
        names
            .iter()
            .map(|key| {
                *self.index.entry(key.clone()).or_insert_with(|| {
                    self.keys.push(key.clone());
                    self.keys.len() - 1
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::packed::{OUTCOMES, URGENCIES};
    use crate::store::ConsultFact;

    /// Pseudo-random consults over `days` UTC days from `first_day`.
    fn chunks(first_day: i64, days: i64, per_day: i64) -> Vec<Chunk> {
        let mut x: u64 = 7;
        let mut next = move |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        (first_day..first_day + days)
            .map(|day| {
                let facts: Vec<ConsultFact> = (0..per_day)
                    .map(|i| {
                        let t = day * DAY_MS + i * (DAY_MS / per_day);
                        let answered = next(10) < 8;
                        let wait = next(1_800_000) as i64;
                        let station = ["Millom MIU Room 1", "Millom MIU Room 2", "Ulverston MIU"]
                            [next(3) as usize];
                        ConsultFact {
                            requested_at: t,
                            station: station.into(),
                            site: Some(station.split(' ').next().unwrap_or("").into()),
                            urgency: URGENCIES[next(3) as usize].into(),
                            status: if answered {
                                "completed"
                            } else {
                                ["cancelled", "abandoned"][next(2) as usize]
                            }
                            .into(),
                            clinician: answered.then(|| format!("Dr {}", next(12))),
                            accepted_at: answered.then_some(t + wait),
                            connected_at: (answered && next(20) > 0).then_some(t + wait + 2_000),
                            ended_at: answered.then_some(t + wait + 400_000),
                            closed_at: (!answered).then_some(t + wait),
                            outcome: answered.then(|| OUTCOMES[next(5) as usize].into()),
                            synthetic: true,
                            test_call: next(100) == 0,
                            realerted_at: (wait > 150_000).then_some(t + 150_000),
                            escalated_at: (wait > 300_000).then_some(t + 300_000),
                            station_quality: (answered && next(3) > 0).then(|| {
                                format!(
                                    r#"{{"rtt_ms":{},"packet_loss_pct":{}}}"#,
                                    next(600),
                                    next(12)
                                )
                            }),
                            clinician_quality: None,
                        }
                    })
                    .collect();
                Chunk::build(day, &facts).expect("chunk")
            })
            .collect()
    }

    #[test]
    fn threads_change_nothing_but_the_time() {
        let days = chunks(20_600, 40, 700);
        let settings = ReportSettings::default();
        let now = 20_700 * DAY_MS;
        for q in [
            ReportQuery::default(),
            ReportQuery {
                from: Some(20_610 * DAY_MS + 3_600_000),
                to: Some(20_630 * DAY_MS),
                site: Some("Millom".into()),
                ..ReportQuery::default()
            },
        ] {
            let one = compute_on(&days, &q, &settings, now, 1);
            assert!(one.headline.answered > 1_000);
            for threads in [2, 3, 4] {
                assert_eq!(
                    compute_on(&days, &q, &settings, now, threads),
                    one,
                    "{threads} threads"
                );
            }
        }
    }
}
