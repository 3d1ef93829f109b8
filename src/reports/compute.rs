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
//!   the round trip is over [`POOR_RTT_MS`], loss is over
//!   [`POOR_LOSS_PCT`] % or the call dropped to audio only.
//! * Days and hours are in the configured local time zone.

use super::local::{LocalTime, DAY_MS};
use super::packed::{
    Chunk, Fact, ESCALATION_ESCALATED, ESCALATION_REALERTED, LINK_AUDIO_ONLY, LINK_MEASURED,
    LINK_RELAYED, NONE16, NONE32, NONE8, OUTCOMES, OUTCOME_MANAGED_LOCALLY, OUTCOME_NONE,
    STATUS_ABANDONED, STATUS_CANCELLED, STATUS_WAITING, URGENCIES,
};
use super::settings::ReportSettings;
use super::stats::{share, Grouped, Samples, NO_GROUP};
use super::{ReportQuery, MAX_DAYS};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

pub const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Upper edges (ms) of the wait distribution's bars; the targets are added
/// so that every bar is wholly within or wholly over each target.
const WAIT_EDGES_MS: [i64; 12] = [
    30_000, 60_000, 120_000, 180_000, 300_000, 420_000, 600_000, 900_000, 1_200_000, 1_800_000,
    2_700_000, 3_600_000,
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub period: Period,
    pub filters: Filters,
    pub generated_at: i64,
    pub timezone: String,
    pub targets: Vec<Target>,
    /// The first question a manager asks: are we answering in time?
    pub verdict: Verdict,
    pub headline: Headline,
    pub by_urgency: Vec<UrgencyRow>,
    pub outcomes: Outcomes,
    pub daily: Vec<DayRow>,
    pub wait_distribution: Distribution,
    pub heatmap: Heatmap,
    pub clinicians: Vec<ClinicianRow>,
    pub stations: Vec<StationRow>,
    /// Link quality per site, worst first, so poor links stand out.
    pub link_by_site: Vec<SiteLink>,
    pub choices: Choices,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Period {
    /// UTC ms, or null for the start of the log.
    pub from: Option<i64>,
    /// UTC ms (exclusive), or null for now.
    pub to: Option<i64>,
    pub preset: Option<&'static str>,
    /// Local dates of the first and last day, e.g. "2026-11-01".
    pub first_day: Option<String>,
    pub last_day: Option<String>,
    pub days: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Filters {
    pub site: Option<String>,
    pub station: Option<String>,
    pub include_test_calls: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Target {
    pub urgency: &'static str,
    pub target_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Spread {
    pub count: u64,
    pub median_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub longest_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Middle {
    pub count: u64,
    pub median_ms: Option<i64>,
}

/// The share answered within target against the trust's aim.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    /// What the trust aims for (`--target-share-percent`), 0 to 1.
    pub target_share: f64,
    /// The headline's share within target (null with nothing to judge).
    pub share: Option<f64>,
    /// share >= target_share; null when there is no share.
    pub meeting_target: Option<bool>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct WithinTarget {
    pub met: u64,
    pub missed: u64,
    /// met / (met + missed), null when there is neither.
    pub share: Option<f64>,
}

/// A round trip over this makes a link poor.
pub const POOR_RTT_MS: u16 = 400;
/// Loss over this (percent) makes a link poor.
pub const POOR_LOSS_PCT: f64 = 5.0;

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Escalations {
    /// Requests re-alerted to every available clinician.
    pub realerted: u64,
    /// Requests escalated to duty holders (also counted in `realerted`).
    pub escalated: u64,
    /// escalated / requests.
    pub escalated_share: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct LinkQuality {
    /// Calls with a quality report from either side.
    pub measured_calls: u64,
    pub median_rtt_ms: Option<i64>,
    pub median_loss_pct: Option<f64>,
    /// Round trip over 400 ms, loss over 5 % or dropped to audio only.
    pub poor_calls: u64,
    pub poor_share: Option<f64>,
    /// Calls relayed through TURN (a locked-down network).
    pub relayed_calls: u64,
    pub audio_only_calls: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SiteLink {
    pub site: Option<String>,
    #[serde(flatten)]
    pub link: LinkQuality,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Headline {
    pub requests: u64,
    pub answered: u64,
    pub cancelled: u64,
    pub abandoned: u64,
    pub still_waiting: u64,
    pub answer_rate: Option<f64>,
    pub time_to_answer: Spread,
    pub within_target: WithinTarget,
    pub answer_to_connected: Middle,
    pub call_duration: Middle,
    pub escalations: Escalations,
    pub link_quality: LinkQuality,
    /// Requests in these figures that are generated history, not patients.
    pub synthetic_requests: u64,
    /// Monitoring test calls in the period left out of these figures.
    pub test_calls_left_out: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UrgencyRow {
    pub urgency: &'static str,
    pub target_ms: i64,
    pub requests: u64,
    pub answered: u64,
    pub cancelled: u64,
    pub abandoned: u64,
    pub time_to_answer: Spread,
    pub within_target: WithinTarget,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutcomeCount {
    pub outcome: &'static str,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SiteTravel {
    pub site: Option<String>,
    pub journeys_avoided: u64,
    pub minutes_each_way: Option<u32>,
    pub minutes_saved: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outcomes {
    /// Answered consults by recorded outcome, in a fixed order, then
    /// `not_recorded` (and `other` for a value this version does not know).
    pub counts: Vec<OutcomeCount>,
    pub journeys_avoided: u64,
    /// Over sites with a configured travel time.
    pub travel_minutes_saved: u64,
    pub by_site: Vec<SiteTravel>,
    /// Sites with journeys avoided but no configured travel time.
    pub sites_without_travel_time: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DayRow {
    pub date: String,
    pub weekday: &'static str,
    pub requests: u64,
    pub answered: u64,
    pub median_wait_ms: Option<i64>,
    pub within_target: WithinTarget,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    /// Waits over `from_ms` ...
    pub from_ms: i64,
    /// ... up to and including `to_ms` (null: no upper limit).
    pub to_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DistributionRow {
    pub urgency: &'static str,
    pub target_ms: i64,
    /// Answered requests per bucket.
    pub answered: Vec<u64>,
    /// Cancelled, abandoned or still waiting after longer than the target.
    pub unanswered_over_target: u64,
    /// Cancelled or abandoned within the target (counted neither way).
    pub unanswered_within_target: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Distribution {
    pub buckets: Vec<Bucket>,
    pub by_urgency: Vec<DistributionRow>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Heatmap {
    /// Rows: Monday first.
    pub weekdays: [&'static str; 7],
    /// `[weekday][hour]`, local time of the request.
    pub requests: Vec<Vec<u64>>,
    pub answered: Vec<Vec<u64>>,
    pub median_wait_ms: Vec<Vec<Option<i64>>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClinicianRow {
    pub name: String,
    pub answered: u64,
    pub median_wait_ms: Option<i64>,
    pub p90_wait_ms: Option<i64>,
    pub median_call_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StationRow {
    pub name: String,
    pub site: Option<String>,
    pub requests: u64,
    pub answered: u64,
    pub cancelled: u64,
    pub abandoned: u64,
    pub answer_rate: Option<f64>,
    pub median_wait_ms: Option<i64>,
    pub p90_wait_ms: Option<i64>,
    pub within_target: WithinTarget,
    pub journeys_avoided: u64,
    pub escalated: u64,
    pub link: LinkQuality,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StationChoice {
    pub name: String,
    pub site: Option<String>,
}

/// What the site and station filters can be set to: everything seen in the
/// period, whatever the current filter.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Choices {
    pub sites: Vec<String>,
    pub stations: Vec<StationChoice>,
}

/// Counts of a group of requests (their waits go to [`Grouped`]).
#[derive(Default)]
struct Acc {
    requests: u64,
    answered: u64,
    cancelled: u64,
    abandoned: u64,
    waiting: u64,
    met: u64,
    missed: u64,
    realerted: u64,
    escalated: u64,
}

impl Acc {
    #[inline]
    fn add(&mut self, f: &Fact, judged: Judged) {
        self.requests += 1;
        match f.status {
            STATUS_CANCELLED => self.cancelled += 1,
            STATUS_ABANDONED => self.abandoned += 1,
            STATUS_WAITING => self.waiting += 1,
            _ => {}
        }
        if f.answered {
            self.answered += 1;
        }
        if f.escalation >= ESCALATION_REALERTED {
            self.realerted += 1;
        }
        if f.escalation >= ESCALATION_ESCALATED {
            self.escalated += 1;
        }
        match judged {
            Judged::Met => self.met += 1,
            Judged::Missed => self.missed += 1,
            Judged::Neither => {}
        }
    }

    fn merge(&mut self, o: &Acc) {
        self.requests += o.requests;
        self.answered += o.answered;
        self.cancelled += o.cancelled;
        self.abandoned += o.abandoned;
        self.waiting += o.waiting;
        self.met += o.met;
        self.missed += o.missed;
        self.realerted += o.realerted;
        self.escalated += o.escalated;
    }

    fn escalations(&self) -> Escalations {
        Escalations {
            realerted: self.realerted,
            escalated: self.escalated,
            escalated_share: share(self.escalated, self.requests),
        }
    }

    fn within_target(&self) -> WithinTarget {
        WithinTarget {
            met: self.met,
            missed: self.missed,
            share: share(self.met, self.met + self.missed),
        }
    }

    fn answer_rate(&self) -> Option<f64> {
        share(self.answered, self.requests - self.waiting)
    }
}

/// Median, p90, p95 and longest, from `SPREAD` percentiles.
const SPREAD: &[f64] = &[0.5, 0.9, 0.95, 1.0];
const MEDIAN_P90: &[f64] = &[0.5, 0.9];
const MEDIAN: &[f64] = &[0.5];

fn spread(count: u64, p: &[Option<i64>]) -> Spread {
    Spread {
        count,
        median_ms: p[0],
        p90_ms: p[1],
        p95_ms: p[2],
        longest_ms: p[3],
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Judged {
    Met,
    Missed,
    Neither,
}

/// Against the target for its urgency (see the module notes).
#[inline]
fn judge(f: &Fact, target_ms: i64, now: i64) -> Judged {
    if f.answered {
        if i64::from(f.wait_ms) <= target_ms {
            Judged::Met
        } else {
            Judged::Missed
        }
    } else if f.status == STATUS_WAITING {
        if now - f.requested_at > target_ms {
            Judged::Missed
        } else {
            Judged::Neither
        }
    } else if f.wait_ms != NONE32 && i64::from(f.wait_ms) > target_ms {
        Judged::Missed
    } else {
        Judged::Neither
    }
}

/// Link quality of a group of calls.
#[derive(Default, Clone)]
struct LinkAcc {
    measured: u64,
    poor: u64,
    relayed: u64,
    audio_only: u64,
    rtt: Samples,
    /// Loss in half percent.
    loss: Samples,
}

impl LinkAcc {
    fn add(&mut self, f: &Fact) {
        if f.link & LINK_MEASURED == 0 {
            return;
        }
        self.measured += 1;
        let audio_only = f.link & LINK_AUDIO_ONLY != 0;
        let poor = audio_only
            || (f.rtt_ms != NONE16 && f.rtt_ms > POOR_RTT_MS)
            || (f.loss_half_pct != NONE8 && f64::from(f.loss_half_pct) / 2.0 > POOR_LOSS_PCT);
        self.poor += u64::from(poor);
        self.relayed += u64::from(f.link & LINK_RELAYED != 0);
        self.audio_only += u64::from(audio_only);
        if f.rtt_ms != NONE16 {
            self.rtt.push(u32::from(f.rtt_ms));
        }
        if f.loss_half_pct != NONE8 {
            self.loss.push(u32::from(f.loss_half_pct));
        }
    }

    fn merge(&mut self, o: LinkAcc) {
        self.measured += o.measured;
        self.poor += o.poor;
        self.relayed += o.relayed;
        self.audio_only += o.audio_only;
        self.rtt.append(o.rtt);
        self.loss.append(o.loss);
    }

    fn summary(mut self) -> LinkQuality {
        LinkQuality {
            measured_calls: self.measured,
            median_rtt_ms: self.rtt.median(),
            median_loss_pct: self.loss.median().map(|h| h as f64 / 2.0),
            poor_calls: self.poor,
            poor_share: share(self.poor, self.measured),
            relayed_calls: self.relayed,
            audio_only_calls: self.audio_only,
        }
    }
}

#[derive(Default, Clone)]
struct DayAcc {
    requests: u64,
    answered: u64,
    met: u64,
    missed: u64,
}

#[derive(Default, Clone, Copy)]
struct CellAcc {
    requests: u64,
    answered: u64,
}

/// The waits' dimensions in [`Grouped`]: all, urgency, station, clinician,
/// day, weekday-hour cell.
const W_ALL: usize = 0;
const W_URGENCY: usize = 1;
const W_STATION: usize = 2;
const W_CLINICIAN: usize = 3;
const W_DAY: usize = 4;
const W_CELL: usize = 5;

/// A group index for [`Grouped`] (groups past its range count in none).
fn group(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(NO_GROUP)
}

fn groups_of(n: usize) -> usize {
    n.min(usize::from(NO_GROUP))
}

/// Everything one pass over some days' consults adds up; passes over
/// different days run on different threads and are merged.
struct Pass {
    all: Acc,
    by_urgency: [Acc; 3],
    /// By global station index.
    stations: Vec<Acc>,
    journeys_avoided: Vec<u64>,
    /// Stations with a request in the period, filtered out or not.
    seen: Vec<bool>,
    clinician_answered: Vec<u64>,
    days: Vec<DayAcc>,
    cells: [CellAcc; 7 * 24],
    dist: [Vec<u64>; 3],
    unanswered_over: [u64; 3],
    unanswered_within: [u64; 3],
    outcomes: [u64; 8],
    synthetic: u64,
    test_calls_left_out: u64,
    observed: Option<(i64, i64)>,
    /// Waits of answered requests by [all, urgency, station, clinician, day, cell].
    waits: Grouped<6>,
    /// Call lengths by [all, clinician].
    calls: Grouped<2>,
    connect: Samples,
    /// Link quality, over all and by global station index.
    link_all: LinkAcc,
    links: Vec<LinkAcc>,
}

/// What every pass shares: the query, and the report's numbering of
/// stations, clinicians and days.
struct Frame<'a> {
    from: i64,
    to: i64,
    include_test_calls: bool,
    targets: [i64; 3],
    edges: &'a [i64],
    now: i64,
    lt: LocalTime,
    base: i64,
    days: usize,
    /// Per chunk: its stations' global indices, and its clinicians'.
    station_maps: &'a [Vec<usize>],
    clinician_maps: &'a [Vec<usize>],
    /// By global station index: passes the site and station filter.
    passes: &'a [bool],
    clinicians: usize,
}

impl Pass {
    fn new(frame: &Frame, records: usize) -> Pass {
        let stations = frame.passes.len();
        Pass {
            all: Acc::default(),
            by_urgency: Default::default(),
            stations: (0..stations).map(|_| Acc::default()).collect(),
            journeys_avoided: vec![0; stations],
            seen: vec![false; stations],
            clinician_answered: vec![0; frame.clinicians],
            days: vec![DayAcc::default(); frame.days],
            cells: [CellAcc::default(); 7 * 24],
            dist: std::array::from_fn(|_| vec![0; frame.edges.len() + 1]),
            unanswered_over: [0; 3],
            unanswered_within: [0; 3],
            outcomes: [0; 8],
            synthetic: 0,
            test_calls_left_out: 0,
            observed: None,
            waits: Grouped::with_capacity(records),
            calls: Grouped::with_capacity(records),
            connect: Samples::default(),
            link_all: LinkAcc::default(),
            links: (0..stations).map(|_| LinkAcc::default()).collect(),
        }
    }

    /// One pass over `chunks` (the `first`-th onwards of the report's).
    fn run(frame: &Frame, chunks: &[&Chunk], first: usize) -> Pass {
        let records = chunks.iter().map(|c| c.len()).sum();
        let mut p = Pass::new(frame, records);
        for (n, chunk) in chunks.iter().enumerate() {
            let start = chunk.start_ms();
            if start + DAY_MS <= frame.from || start >= frame.to {
                continue;
            }
            let station_map = &frame.station_maps[first + n];
            let clinician_map = &frame.clinician_maps[first + n];
            let offsets = frame.lt.offsets(start, start + DAY_MS);
            for f in chunk.facts() {
                p.add(frame, &f, station_map, clinician_map, &offsets);
            }
        }
        p
    }

    #[inline]
    fn add(
        &mut self,
        frame: &Frame,
        f: &Fact,
        station_map: &[usize],
        clinician_map: &[usize],
        offsets: &super::local::Offsets,
    ) {
        if f.requested_at < frame.from || f.requested_at >= frame.to {
            return;
        }
        if f.test_call && !frame.include_test_calls {
            self.test_calls_left_out += 1;
            return;
        }
        // Decoding checked the indices; a bad one is skipped, never a panic.
        let Some(&st) = station_map.get(usize::from(f.station)) else {
            return;
        };
        self.seen[st] = true;
        if !frame.passes[st] {
            return;
        }
        let u = usize::from(f.urgency).min(2);
        let judged = judge(f, frame.targets[u], frame.now);
        self.all.add(f, judged);
        self.by_urgency[u].add(f, judged);
        self.stations[st].add(f, judged);
        if f.synthetic {
            self.synthetic += 1;
        }

        let local = f.requested_at + offsets.at(f.requested_at);
        let day = LocalTime::day_of_local(local);
        self.observed = Some(
            self.observed
                .map_or((day, day), |(a, b)| (a.min(day), b.max(day))),
        );
        let di = usize::try_from(day - frame.base).unwrap_or(usize::MAX);
        let ci = LocalTime::weekday_of_day(day) * 24 + LocalTime::hour_of_local(local);
        let cell = &mut self.cells[ci];
        cell.requests += 1;
        if let Some(d) = self.days.get_mut(di) {
            d.requests += 1;
            match judged {
                Judged::Met => d.met += 1,
                Judged::Missed => d.missed += 1,
                Judged::Neither => {}
            }
            if f.answered {
                d.answered += 1;
            }
        }

        if f.answered {
            cell.answered += 1;
            let clinician = clinician_map.get(usize::from(f.clinician)).copied();
            if let Some(c) = clinician {
                self.clinician_answered[c] += 1;
            }
            let c_group = clinician.map_or(NO_GROUP, group);
            self.waits.push(
                f.wait_ms,
                [0, u as u16, group(st), c_group, group(di), ci as u16],
            );
            let wait = i64::from(f.wait_ms);
            let b = frame.edges.partition_point(|&e| e < wait);
            self.dist[u][b] += 1;
            if f.connect_ms != NONE32 {
                self.connect.push(f.connect_ms);
            }
            if f.duration_ms != NONE32 {
                self.calls.push(f.duration_ms, [0, c_group]);
            }
            self.link_all.add(f);
            self.links[st].add(f);
            self.outcomes[usize::from(f.outcome)] += 1;
            if f.outcome == OUTCOME_MANAGED_LOCALLY {
                self.journeys_avoided[st] += 1;
            }
        } else if judged == Judged::Missed {
            self.unanswered_over[u] += 1;
        } else if f.status != STATUS_WAITING {
            self.unanswered_within[u] += 1;
        }
    }

    fn merge(&mut self, o: Pass) {
        self.all.merge(&o.all);
        for (a, b) in self.by_urgency.iter_mut().zip(&o.by_urgency) {
            a.merge(b);
        }
        for (a, b) in self.stations.iter_mut().zip(&o.stations) {
            a.merge(b);
        }
        add_all(&mut self.journeys_avoided, &o.journeys_avoided);
        for (a, b) in self.seen.iter_mut().zip(&o.seen) {
            *a |= *b;
        }
        add_all(&mut self.clinician_answered, &o.clinician_answered);
        for (a, b) in self.days.iter_mut().zip(&o.days) {
            a.requests += b.requests;
            a.answered += b.answered;
            a.met += b.met;
            a.missed += b.missed;
        }
        for (a, b) in self.cells.iter_mut().zip(&o.cells) {
            a.requests += b.requests;
            a.answered += b.answered;
        }
        for (a, b) in self.dist.iter_mut().zip(&o.dist) {
            add_all(a, b);
        }
        add_all(&mut self.unanswered_over, &o.unanswered_over);
        add_all(&mut self.unanswered_within, &o.unanswered_within);
        add_all(&mut self.outcomes, &o.outcomes);
        self.synthetic += o.synthetic;
        self.test_calls_left_out += o.test_calls_left_out;
        self.observed = match (self.observed, o.observed) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (x, None) | (None, x) => x,
        };
        self.waits.append(o.waits);
        self.calls.append(o.calls);
        self.connect.append(o.connect);
        self.link_all.merge(o.link_all);
        for (a, b) in self.links.iter_mut().zip(o.links) {
            a.merge(b);
        }
    }
}

fn add_all(a: &mut [u64], b: &[u64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// The passes over all the chunks, on `threads` threads, merged in order.
fn run_passes(frame: &Frame, chunks: &[&Chunk], threads: usize) -> Pass {
    if threads <= 1 {
        return Pass::run(frame, chunks, 0);
    }
    let parts = split(chunks, threads);
    let mut results: Vec<Pass> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .skip(1)
            .map(|&(first, part)| {
                (
                    first,
                    part,
                    scope.spawn(move || Pass::run(frame, part, first)),
                )
            })
            .collect();
        let mut results = vec![Pass::run(frame, parts[0].1, parts[0].0)];
        for (first, part, h) in handles {
            // A pass has no way to panic; were one to, its days are done
            // again here, so that nothing is silently left out.
            results.push(h.join().unwrap_or_else(|_| Pass::run(frame, part, first)));
        }
        results
    });
    let mut pass = results.remove(0);
    for r in results {
        pass.merge(r);
    }
    pass
}

/// Contiguous runs of chunks, one per thread, of about equal size.
fn split<'c, 'a>(chunks: &'c [&'a Chunk], parts: usize) -> Vec<(usize, &'c [&'a Chunk])> {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let mut out = Vec::with_capacity(parts);
    let (mut first, mut filled) = (0, 0);
    for (i, c) in chunks.iter().enumerate() {
        filled += c.len();
        let due = total * (out.len() + 1) / parts;
        if filled >= due && out.len() + 1 < parts {
            out.push((first, &chunks[first..=i]));
            first = i + 1;
        }
    }
    out.push((first, &chunks[first..]));
    out
}

/// Below this many consults one thread does it all.
const RECORDS_PER_THREAD: usize = 100_000;

/// The whole report, on as many threads as are worth it (one per
/// [`RECORDS_PER_THREAD`] consults, up to four).
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
    let lt = LocalTime::new(settings.timezone);
    let targets = settings.targets_ms;
    let from = q.from.unwrap_or(i64::MIN);
    let to = q.to.unwrap_or(i64::MAX);
    let chunks: Vec<&Chunk> = chunks
        .iter()
        .filter(|c| c.start_ms() + DAY_MS > from && c.start_ms() < to)
        .collect();

    let mut edges: Vec<i64> = WAIT_EDGES_MS.to_vec();
    edges.extend(targets);
    edges.sort_unstable();
    edges.dedup();

    // The report's numbering of stations and clinicians, from the days'
    // own tables (a handful of names a day).
    let mut station_keys: Vec<(String, Option<String>)> = Vec::new();
    let mut station_ix: HashMap<(String, Option<String>), usize> = HashMap::new();
    let mut clinician_names: Vec<String> = Vec::new();
    let mut clinician_ix: HashMap<String, usize> = HashMap::new();
    let mut station_maps = Vec::with_capacity(chunks.len());
    let mut clinician_maps = Vec::with_capacity(chunks.len());
    for chunk in &chunks {
        station_maps.push(
            chunk
                .stations
                .iter()
                .map(|key| {
                    *station_ix.entry(key.clone()).or_insert_with(|| {
                        station_keys.push(key.clone());
                        station_keys.len() - 1
                    })
                })
                .collect::<Vec<_>>(),
        );
        clinician_maps.push(
            chunk
                .clinicians
                .iter()
                .map(|name| {
                    *clinician_ix.entry(name.clone()).or_insert_with(|| {
                        clinician_names.push(name.clone());
                        clinician_names.len() - 1
                    })
                })
                .collect::<Vec<_>>(),
        );
    }
    let passes: Vec<bool> = station_keys
        .iter()
        .map(|(name, site)| {
            q.site.as_ref().is_none_or(|s| site.as_ref() == Some(s))
                && q.station.as_ref().is_none_or(|s| s == name)
        })
        .collect();

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
    let frame = Frame {
        from,
        to,
        include_test_calls: q.include_test_calls,
        targets,
        edges: &edges,
        now,
        lt,
        base,
        days: day_slots,
        station_maps: &station_maps,
        clinician_maps: &clinician_maps,
        passes: &passes,
        clinicians: clinician_names.len(),
    };

    let Pass {
        all,
        by_urgency,
        stations,
        journeys_avoided,
        seen,
        clinician_answered,
        days,
        cells,
        dist,
        unanswered_over,
        unanswered_within,
        outcomes,
        synthetic,
        test_calls_left_out,
        observed,
        waits,
        calls,
        mut connect,
        link_all,
        links,
    } = run_passes(&frame, &chunks, threads);

    let call_count = calls.len() as u64;
    let connect_count = connect.len() as u64;
    let wait_sizes = [
        1,
        3,
        groups_of(station_keys.len()),
        groups_of(clinician_names.len()),
        groups_of(days.len()),
        7 * 24,
    ];
    let wait_ps = [SPREAD, SPREAD, MEDIAN_P90, MEDIAN_P90, MEDIAN, MEDIAN];
    let call_sizes = [1, groups_of(clinician_names.len())];
    // The waits' percentiles are most of the work: on a thread of their
    // own when the report is big enough to be worth one.
    let (wait_p, call_p, connect_median) = if threads > 1 {
        std::thread::scope(|scope| {
            let w = scope.spawn(move || waits.percentiles(wait_sizes, wait_ps));
            let c = calls.percentiles(call_sizes, [MEDIAN, MEDIAN]);
            let m = connect.median();
            let w = w.join().unwrap_or_else(|_| {
                std::array::from_fn(|d| vec![vec![None; wait_ps[d].len()]; wait_sizes[d]])
            });
            (w, c, m)
        })
    } else {
        (
            waits.percentiles(wait_sizes, wait_ps),
            calls.percentiles(call_sizes, [MEDIAN, MEDIAN]),
            connect.median(),
        )
    };
    let none = |n: usize| vec![None; n];
    let wait_of = |d: usize, g: usize, n: usize| -> Vec<Option<i64>> {
        wait_p[d].get(g).cloned().unwrap_or_else(|| none(n))
    };

    // The daily series: every day of the period up to today, zeros included.
    let today = lt.day_number(now);
    let first_day = match q.from {
        Some(f) => Some(lt.day_number(f)),
        None => observed.map(|(a, _)| a),
    };
    let last_day = match q.to {
        Some(t) => Some(
            lt.day_number(t - 1)
                .min(today.max(observed.map_or(today, |o| o.1))),
        ),
        None => Some(today.max(observed.map_or(today, |o| o.1))),
    };
    let mut daily = Vec::new();
    let (mut period_first, mut period_last) = (None, None);
    if let (Some(first), Some(last)) = (first_day, last_day) {
        let first = first.max(last - (MAX_DAYS - 1));
        for day in first..=last {
            let date = LocalTime::date(day)
                .map(|d| d.to_string())
                .unwrap_or_default();
            if period_first.is_none() {
                period_first = Some(date.clone());
            }
            period_last = Some(date.clone());
            let weekday = WEEKDAYS[LocalTime::weekday_of_day(day)];
            let index = usize::try_from(day - base).ok();
            let acc = index.and_then(|i| days.get(i)).cloned().unwrap_or_default();
            daily.push(DayRow {
                date,
                weekday,
                requests: acc.requests,
                answered: acc.answered,
                median_wait_ms: index.and_then(|i| wait_of(W_DAY, i, 1)[0]),
                within_target: WithinTarget {
                    met: acc.met,
                    missed: acc.missed,
                    share: share(acc.met, acc.met + acc.missed),
                },
            });
        }
    }

    let mut heat_requests = vec![vec![0u64; 24]; 7];
    let mut heat_answered = vec![vec![0u64; 24]; 7];
    let mut heat_median = vec![vec![None; 24]; 7];
    for (i, c) in cells.iter().enumerate() {
        heat_requests[i / 24][i % 24] = c.requests;
        heat_answered[i / 24][i % 24] = c.answered;
        heat_median[i / 24][i % 24] = wait_of(W_CELL, i, 1)[0];
    }

    let mut counts: Vec<OutcomeCount> = OUTCOMES
        .iter()
        .enumerate()
        .map(|(i, o)| OutcomeCount {
            outcome: o,
            count: outcomes[i + 1],
        })
        .collect();
    counts.push(OutcomeCount {
        outcome: "not_recorded",
        count: outcomes[usize::from(OUTCOME_NONE)],
    });
    let other = outcomes[usize::from(super::packed::OUTCOME_OTHER)];
    if other > 0 {
        counts.push(OutcomeCount {
            outcome: "other",
            count: other,
        });
    }

    // Journeys avoided and travel time saved, per site.
    let mut per_site: BTreeMap<Option<String>, u64> = BTreeMap::new();
    for (i, &journeys) in journeys_avoided.iter().enumerate() {
        if journeys > 0 {
            *per_site.entry(station_keys[i].1.clone()).or_default() += journeys;
        }
    }
    let mut by_site = Vec::new();
    let mut sites_without_travel_time = Vec::new();
    let mut travel_minutes_saved = 0u64;
    for (site, journeys) in per_site {
        let minutes = site
            .as_ref()
            .and_then(|s| settings.travel_minutes.get(s).copied());
        let saved = minutes.map(|m| journeys * 2 * u64::from(m));
        travel_minutes_saved += saved.unwrap_or(0);
        if minutes.is_none() {
            sites_without_travel_time.push(site.clone().unwrap_or_else(|| "(no site)".into()));
        }
        by_site.push(SiteTravel {
            site,
            journeys_avoided: journeys,
            minutes_each_way: minutes,
            minutes_saved: saved,
        });
    }

    let mut clinician_rows: Vec<ClinicianRow> = clinician_names
        .into_iter()
        .zip(clinician_answered)
        .enumerate()
        .filter(|(_, (_, answered))| *answered > 0)
        .map(|(i, (name, answered))| {
            let p = wait_of(W_CLINICIAN, i, 2);
            ClinicianRow {
                name,
                answered,
                median_wait_ms: p[0],
                p90_wait_ms: p[1],
                median_call_ms: call_p[1].get(i).and_then(|c| c[0]),
            }
        })
        .collect();
    clinician_rows.sort_by(|a, b| b.answered.cmp(&a.answered).then(a.name.cmp(&b.name)));

    // Link quality per site (stations' samples pooled), worst first.
    let mut site_links: BTreeMap<Option<String>, LinkAcc> = BTreeMap::new();
    let mut station_links: Vec<LinkQuality> = Vec::with_capacity(links.len());
    for (i, link) in links.into_iter().enumerate() {
        if link.measured > 0 {
            let site = station_keys[i].1.clone();
            site_links.entry(site).or_default().merge(link.clone());
        }
        station_links.push(link.summary());
    }
    let mut link_by_site: Vec<SiteLink> = site_links
        .into_iter()
        .map(|(site, acc)| SiteLink {
            site,
            link: acc.summary(),
        })
        .filter(|s| s.link.measured_calls > 0)
        .collect();
    link_by_site.sort_by(|a, b| {
        b.link
            .poor_share
            .unwrap_or(0.0)
            .total_cmp(&a.link.poor_share.unwrap_or(0.0))
            .then_with(|| a.site.cmp(&b.site))
    });

    let mut station_rows: Vec<StationRow> = station_keys
        .iter()
        .zip(&stations)
        .enumerate()
        .filter(|(_, (_, acc))| acc.requests > 0)
        .map(|(i, ((name, site), acc))| {
            let p = wait_of(W_STATION, i, 2);
            StationRow {
                escalated: acc.escalated,
                link: station_links.get(i).cloned().unwrap_or_default(),
                answer_rate: acc.answer_rate(),
                within_target: acc.within_target(),
                name: name.clone(),
                site: site.clone(),
                requests: acc.requests,
                answered: acc.answered,
                cancelled: acc.cancelled,
                abandoned: acc.abandoned,
                median_wait_ms: p[0],
                p90_wait_ms: p[1],
                journeys_avoided: journeys_avoided[i],
            }
        })
        .collect();
    station_rows.sort_by(|a, b| (&a.site, &a.name).cmp(&(&b.site, &b.name)));

    let urgency_rows: Vec<UrgencyRow> = by_urgency
        .iter()
        .enumerate()
        .map(|(u, acc)| UrgencyRow {
            urgency: URGENCIES[u],
            target_ms: targets[u],
            requests: acc.requests,
            answered: acc.answered,
            cancelled: acc.cancelled,
            abandoned: acc.abandoned,
            time_to_answer: spread(acc.answered, &wait_of(W_URGENCY, u, 4)),
            within_target: acc.within_target(),
        })
        .collect();

    let mut buckets = Vec::with_capacity(edges.len() + 1);
    let mut lower = 0;
    for &e in &edges {
        buckets.push(Bucket {
            from_ms: lower,
            to_ms: Some(e),
        });
        lower = e;
    }
    buckets.push(Bucket {
        from_ms: lower,
        to_ms: None,
    });

    // The filter menus: every station with a request in the period.
    let mut seen_stations: Vec<&(String, Option<String>)> = station_keys
        .iter()
        .zip(&seen)
        .filter(|(_, &seen)| seen)
        .map(|(key, _)| key)
        .collect();
    seen_stations.sort();
    let mut sites: Vec<String> = seen_stations
        .iter()
        .filter_map(|(_, site)| site.clone())
        .collect();
    sites.sort();
    sites.dedup();
    let choice_stations = seen_stations
        .into_iter()
        .map(|(name, site)| StationChoice {
            name: name.clone(),
            site: site.clone(),
        })
        .collect();

    Report {
        period: Period {
            from: q.from,
            to: q.to,
            preset: q.preset.map(|p| p.as_str()),
            days: daily.len(),
            first_day: period_first,
            last_day: period_last,
        },
        filters: Filters {
            site: q.site.clone(),
            station: q.station.clone(),
            include_test_calls: q.include_test_calls,
        },
        generated_at: now,
        timezone: settings.timezone.name().to_owned(),
        targets: URGENCIES
            .iter()
            .zip(targets)
            .map(|(u, t)| Target {
                urgency: u,
                target_ms: t,
            })
            .collect(),
        verdict: {
            let share = all.within_target().share;
            Verdict {
                target_share: settings.target_share,
                share,
                meeting_target: share.map(|s| s + 1e-9 >= settings.target_share),
            }
        },
        headline: Headline {
            requests: all.requests,
            answered: all.answered,
            cancelled: all.cancelled,
            abandoned: all.abandoned,
            still_waiting: all.waiting,
            answer_rate: all.answer_rate(),
            within_target: all.within_target(),
            time_to_answer: spread(all.answered, &wait_of(W_ALL, 0, 4)),
            answer_to_connected: Middle {
                count: connect_count,
                median_ms: connect_median,
            },
            call_duration: Middle {
                count: call_count,
                median_ms: call_p[0].first().and_then(|c| c[0]),
            },
            escalations: all.escalations(),
            link_quality: link_all.summary(),
            synthetic_requests: synthetic,
            test_calls_left_out,
        },
        by_urgency: urgency_rows,
        outcomes: Outcomes {
            counts,
            journeys_avoided: outcomes[usize::from(OUTCOME_MANAGED_LOCALLY)],
            travel_minutes_saved,
            by_site,
            sites_without_travel_time,
        },
        daily,
        wait_distribution: Distribution {
            buckets,
            by_urgency: (0..3)
                .map(|u| DistributionRow {
                    urgency: URGENCIES[u],
                    target_ms: targets[u],
                    answered: dist[u].clone(),
                    unanswered_over_target: unanswered_over[u],
                    unanswered_within_target: unanswered_within[u],
                })
                .collect(),
        },
        heatmap: Heatmap {
            weekdays: WEEKDAYS,
            requests: heat_requests,
            answered: heat_answered,
            median_wait_ms: heat_median,
        },
        clinicians: clinician_rows,
        stations: station_rows,
        link_by_site,
        choices: Choices {
            sites,
            stations: choice_stations,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
