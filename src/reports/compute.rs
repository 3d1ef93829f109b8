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
//! * Days and hours are in the configured local time zone.

use super::local::{LocalTime, DAY_MS};
use super::packed::{
    Chunk, Fact, NONE16, NONE32, OUTCOMES, OUTCOME_MANAGED_LOCALLY, OUTCOME_NONE, STATUS_ABANDONED,
    STATUS_CANCELLED, STATUS_WAITING, URGENCIES,
};
use super::settings::ReportSettings;
use super::stats::{share, Samples};
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
    pub headline: Headline,
    pub by_urgency: Vec<UrgencyRow>,
    pub outcomes: Outcomes,
    pub daily: Vec<DayRow>,
    pub wait_distribution: Distribution,
    pub heatmap: Heatmap,
    pub clinicians: Vec<ClinicianRow>,
    pub stations: Vec<StationRow>,
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

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct WithinTarget {
    pub met: u64,
    pub missed: u64,
    /// met / (met + missed), null when there is neither.
    pub share: Option<f64>,
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
    /// Not recorded yet: null until escalation is logged (see README).
    pub escalations: Option<u64>,
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

/// Counts and waits of a group of requests.
#[derive(Default)]
struct Acc {
    requests: u64,
    answered: u64,
    cancelled: u64,
    abandoned: u64,
    waiting: u64,
    met: u64,
    missed: u64,
    waits: Samples,
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
            self.waits.push(f.wait_ms);
        }
        match judged {
            Judged::Met => self.met += 1,
            Judged::Missed => self.missed += 1,
            Judged::Neither => {}
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

    fn spread(&mut self) -> Spread {
        let p = self.waits.percentiles(&[0.5, 0.9, 0.95, 1.0]);
        Spread {
            count: self.waits.len() as u64,
            median_ms: p[0],
            p90_ms: p[1],
            p95_ms: p[2],
            longest_ms: p[3],
        }
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

#[derive(Default)]
struct DayAcc {
    requests: u64,
    answered: u64,
    met: u64,
    missed: u64,
    waits: Samples,
}

#[derive(Default)]
struct CellAcc {
    requests: u64,
    answered: u64,
    waits: Samples,
}

#[derive(Default)]
struct ClinicianAcc {
    answered: u64,
    waits: Samples,
    calls: Samples,
}

struct StationAcc {
    name: String,
    site: Option<String>,
    acc: Acc,
    journeys_avoided: u64,
}

pub fn compute(chunks: &[Chunk], q: &ReportQuery, settings: &ReportSettings, now: i64) -> Report {
    let lt = LocalTime::new(settings.timezone);
    let targets = settings.targets_ms;
    let from = q.from.unwrap_or(i64::MIN);
    let to = q.to.unwrap_or(i64::MAX);

    let mut edges: Vec<i64> = WAIT_EDGES_MS.to_vec();
    edges.extend(targets);
    edges.sort_unstable();
    edges.dedup();

    let mut all = Acc::default();
    let mut connect = Samples::default();
    let mut duration = Samples::default();
    let mut by_urgency: [Acc; 3] = Default::default();
    let mut dist = vec![vec![0u64; edges.len() + 1]; 3];
    let mut unanswered_over = [0u64; 3];
    let mut unanswered_within = [0u64; 3];
    let mut outcomes = [0u64; 8];
    let mut synthetic = 0u64;
    let mut test_calls_left_out = 0u64;

    let mut stations: Vec<StationAcc> = Vec::new();
    let mut station_ix: HashMap<(String, Option<String>), usize> = HashMap::new();
    let mut clinicians: Vec<(String, ClinicianAcc)> = Vec::new();
    let mut clinician_ix: HashMap<String, usize> = HashMap::new();
    // Every station seen in the period (for the filter menus).
    let mut seen: BTreeMap<(String, Option<String>), ()> = BTreeMap::new();

    // Days are counted from `base` (the first possible local day).
    let base = match q.from {
        Some(f) => lt.day_number(f),
        None => chunks.first().map_or(0, |c| c.index - 1),
    };
    let mut days: Vec<DayAcc> = Vec::new();
    let mut observed: Option<(i64, i64)> = None;
    let mut cells: Vec<CellAcc> = (0..7 * 24).map(|_| CellAcc::default()).collect();

    for chunk in chunks {
        let start = chunk.start_ms();
        if start + DAY_MS <= from || start >= to {
            continue;
        }
        // This day's stations and clinicians, in the report's numbering;
        // `None` for a station the site or station filter leaves out.
        let station_map: Vec<Option<usize>> = chunk
            .stations
            .iter()
            .map(|(name, site)| {
                let passes = q.site.as_ref().is_none_or(|s| site.as_ref() == Some(s))
                    && q.station.as_ref().is_none_or(|s| s == name);
                if !passes {
                    return None;
                }
                let key = (name.clone(), site.clone());
                Some(*station_ix.entry(key).or_insert_with(|| {
                    stations.push(StationAcc {
                        name: name.clone(),
                        site: site.clone(),
                        acc: Acc::default(),
                        journeys_avoided: 0,
                    });
                    stations.len() - 1
                }))
            })
            .collect();
        let clinician_map: Vec<usize> = chunk
            .clinicians
            .iter()
            .map(|name| {
                *clinician_ix.entry(name.clone()).or_insert_with(|| {
                    clinicians.push((name.clone(), ClinicianAcc::default()));
                    clinicians.len() - 1
                })
            })
            .collect();
        let mut seen_here = vec![false; chunk.stations.len()];
        let offsets = lt.offsets(start, start + DAY_MS);

        for f in chunk.facts() {
            if f.requested_at < from || f.requested_at >= to {
                continue;
            }
            if f.test_call && !q.include_test_calls {
                test_calls_left_out += 1;
                continue;
            }
            seen_here[usize::from(f.station)] = true;
            let Some(st) = station_map[usize::from(f.station)] else {
                continue;
            };
            let u = usize::from(f.urgency);
            let judged = judge(&f, targets[u], now);
            all.add(&f, judged);
            by_urgency[u].add(&f, judged);
            stations[st].acc.add(&f, judged);
            if f.synthetic {
                synthetic += 1;
            }

            let local = f.requested_at + offsets.at(f.requested_at);
            let day = LocalTime::day_of_local(local);
            observed = Some(observed.map_or((day, day), |(a, b)| (a.min(day), b.max(day))));
            let di = usize::try_from(day - base).unwrap_or(0);
            if di >= days.len() {
                days.resize_with(di + 1, DayAcc::default);
            }
            let d = &mut days[di];
            d.requests += 1;
            match judged {
                Judged::Met => d.met += 1,
                Judged::Missed => d.missed += 1,
                Judged::Neither => {}
            }
            let cell =
                &mut cells[LocalTime::weekday_of_day(day) * 24 + LocalTime::hour_of_local(local)];
            cell.requests += 1;

            if f.answered {
                d.answered += 1;
                d.waits.push(f.wait_ms);
                cell.answered += 1;
                cell.waits.push(f.wait_ms);
                let wait = i64::from(f.wait_ms);
                let b = edges.partition_point(|&e| e < wait);
                dist[u][b] += 1;
                if f.connect_ms != NONE32 {
                    connect.push(f.connect_ms);
                }
                if f.clinician != NONE16 {
                    let c = &mut clinicians[clinician_map[usize::from(f.clinician)]].1;
                    c.answered += 1;
                    c.waits.push(f.wait_ms);
                    if f.duration_ms != NONE32 {
                        c.calls.push(f.duration_ms);
                    }
                }
                if f.duration_ms != NONE32 {
                    duration.push(f.duration_ms);
                }
                outcomes[usize::from(f.outcome)] += 1;
                if f.outcome == OUTCOME_MANAGED_LOCALLY {
                    stations[st].journeys_avoided += 1;
                }
            } else if judged == Judged::Missed {
                unanswered_over[u] += 1;
            } else if f.status != STATUS_WAITING {
                unanswered_within[u] += 1;
            }
        }
        for (i, s) in chunk.stations.iter().enumerate() {
            if seen_here[i] {
                seen.insert(s.clone(), ());
            }
        }
    }

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
            let acc = usize::try_from(day - base)
                .ok()
                .and_then(|i| days.get_mut(i));
            daily.push(match acc {
                Some(d) => DayRow {
                    date,
                    weekday,
                    requests: d.requests,
                    answered: d.answered,
                    median_wait_ms: d.waits.median(),
                    within_target: WithinTarget {
                        met: d.met,
                        missed: d.missed,
                        share: share(d.met, d.met + d.missed),
                    },
                },
                None => DayRow {
                    date,
                    weekday,
                    requests: 0,
                    answered: 0,
                    median_wait_ms: None,
                    within_target: WithinTarget::default(),
                },
            });
        }
    }

    let mut heat_requests = vec![vec![0u64; 24]; 7];
    let mut heat_answered = vec![vec![0u64; 24]; 7];
    let mut heat_median = vec![vec![None; 24]; 7];
    for (i, c) in cells.iter_mut().enumerate() {
        heat_requests[i / 24][i % 24] = c.requests;
        heat_answered[i / 24][i % 24] = c.answered;
        heat_median[i / 24][i % 24] = c.waits.median();
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
    for s in &stations {
        if s.journeys_avoided > 0 {
            *per_site.entry(s.site.clone()).or_default() += s.journeys_avoided;
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

    let mut clinician_rows: Vec<ClinicianRow> = clinicians
        .into_iter()
        .filter(|(_, c)| c.answered > 0)
        .map(|(name, mut c)| {
            let p = c.waits.percentiles(&[0.5, 0.9]);
            ClinicianRow {
                name,
                answered: c.answered,
                median_wait_ms: p[0],
                p90_wait_ms: p[1],
                median_call_ms: c.calls.median(),
            }
        })
        .collect();
    clinician_rows.sort_by(|a, b| b.answered.cmp(&a.answered).then(a.name.cmp(&b.name)));

    let mut station_rows: Vec<StationRow> = stations
        .into_iter()
        .filter(|s| s.acc.requests > 0)
        .map(|mut s| {
            let p = s.acc.waits.percentiles(&[0.5, 0.9]);
            StationRow {
                answer_rate: s.acc.answer_rate(),
                within_target: s.acc.within_target(),
                name: s.name,
                site: s.site,
                requests: s.acc.requests,
                answered: s.acc.answered,
                cancelled: s.acc.cancelled,
                abandoned: s.acc.abandoned,
                median_wait_ms: p[0],
                p90_wait_ms: p[1],
                journeys_avoided: s.journeys_avoided,
            }
        })
        .collect();
    station_rows.sort_by(|a, b| (&a.site, &a.name).cmp(&(&b.site, &b.name)));

    let urgency_rows: Vec<UrgencyRow> = by_urgency
        .iter_mut()
        .enumerate()
        .map(|(u, acc)| UrgencyRow {
            urgency: URGENCIES[u],
            target_ms: targets[u],
            requests: acc.requests,
            answered: acc.answered,
            cancelled: acc.cancelled,
            abandoned: acc.abandoned,
            time_to_answer: acc.spread(),
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

    let mut sites: Vec<String> = seen.keys().filter_map(|(_, s)| s.clone()).collect();
    sites.sort();
    sites.dedup();
    let choice_stations = seen
        .into_keys()
        .map(|(name, site)| StationChoice { name, site })
        .collect();

    let connect_median = connect.median();
    let duration_median = duration.median();
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
        headline: Headline {
            requests: all.requests,
            answered: all.answered,
            cancelled: all.cancelled,
            abandoned: all.abandoned,
            still_waiting: all.waiting,
            answer_rate: all.answer_rate(),
            within_target: all.within_target(),
            time_to_answer: all.spread(),
            answer_to_connected: Middle {
                count: connect.len() as u64,
                median_ms: connect_median,
            },
            call_duration: Middle {
                count: duration.len() as u64,
                median_ms: duration_median,
            },
            escalations: None,
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
        choices: Choices {
            sites,
            stations: choice_stations,
        },
    }
}
