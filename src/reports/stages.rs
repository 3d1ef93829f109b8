//! The stages that turn one merged [`Pass`] into the parts of the
//! [`super::output::Report`], in the order [`super::compute::compute_on`]
//! runs them: the percentiles first (all groups' at once, the bulk of the
//! work), then headline and verdict, per urgency, outcomes, daily,
//! distribution, heat map, people (clinicians and stations), link quality
//! by site and the filter menus.

use super::local::LocalTime;
use super::output::{
    Bucket, Choices, ClinicianRow, DayRow, Distribution, DistributionRow, Filters, Headline,
    Heatmap, Middle, OutcomeCount, Outcomes, Period, SiteLink, SiteTravel, Spread, StationChoice,
    StationRow, Target, UrgencyRow, Verdict, WEEKDAYS,
};
use super::packed::{OUTCOMES, OUTCOME_MANAGED_LOCALLY, OUTCOME_NONE, OUTCOME_OTHER, URGENCIES};
use super::pass::{
    groups_of, Acc, CellAcc, LinkAcc, Pass, W_ALL, W_CELL, W_CLINICIAN, W_DAY, W_STATION, W_URGENCY,
};
use super::settings::ReportSettings;
use super::{ReportQuery, MAX_DAYS};
use std::collections::BTreeMap;

/// A station's name and site: the report's station numbering.
pub(super) type StationKey = (String, Option<String>);

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

/// The percentiles of the pass's samples: waits by [all, urgency, station,
/// clinician, day, cell], call lengths by [all, clinician], and the median
/// answer to video connected.
pub(super) struct Percentiles {
    wait: [Vec<Vec<Option<i64>>>; 6],
    call: [Vec<Vec<Option<i64>>>; 2],
    call_count: u64,
    connect_count: u64,
    connect_median: Option<i64>,
}

impl Percentiles {
    /// Takes the samples out of `pass`; `stations` and `clinicians` are
    /// how many the report numbers.
    pub(super) fn of(pass: &mut Pass, stations: usize, clinicians: usize, threads: usize) -> Self {
        let waits = std::mem::take(&mut pass.waits);
        let calls = std::mem::take(&mut pass.calls);
        let connect = &mut pass.connect;
        let call_count = calls.len() as u64;
        let connect_count = connect.len() as u64;
        let wait_sizes = [
            1,
            3,
            groups_of(stations),
            groups_of(clinicians),
            groups_of(pass.days.len()),
            7 * 24,
        ];
        let wait_ps = [SPREAD, SPREAD, MEDIAN_P90, MEDIAN_P90, MEDIAN, MEDIAN];
        let call_sizes = [1, groups_of(clinicians)];
        // The waits' percentiles are most of the work: on a thread of their
        // own when the report is big enough to be worth one.
        let (wait, call, connect_median) = if threads > 1 {
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
        Percentiles {
            wait,
            call,
            call_count,
            connect_count,
            connect_median,
        }
    }

    /// The `n` wait percentiles of group `g` of dimension `d`.
    fn wait_of(&self, d: usize, g: usize, n: usize) -> Vec<Option<i64>> {
        self.wait[d]
            .get(g)
            .cloned()
            .unwrap_or_else(|| vec![None; n])
    }
}

/// The headline figures over every request of the report.
pub(super) fn headline(pass: &mut Pass, p: &Percentiles) -> Headline {
    let all = &pass.all;
    Headline {
        requests: all.requests,
        answered: all.answered,
        cancelled: all.cancelled,
        abandoned: all.abandoned,
        still_waiting: all.waiting,
        answer_rate: all.answer_rate(),
        within_target: all.within_target(),
        time_to_answer: spread(all.answered, &p.wait_of(W_ALL, 0, 4)),
        answer_to_connected: Middle {
            count: p.connect_count,
            median_ms: p.connect_median,
        },
        call_duration: Middle {
            count: p.call_count,
            median_ms: p.call[0].first().and_then(|c| c[0]),
        },
        escalations: all.escalations(),
        link_quality: pass.link_all.summary(),
        synthetic_requests: pass.synthetic,
        test_calls_left_out: pass.test_calls_left_out,
    }
}

/// The share within target against the trust's aim.
pub(super) fn verdict(all: &Acc, settings: &ReportSettings) -> Verdict {
    let share = all.within_target().share;
    Verdict {
        target_share: settings.target_share,
        share,
        meeting_target: share.map(|s| s + 1e-9 >= settings.target_share),
    }
}

/// The answer target of each urgency.
pub(super) fn targets(targets: [i64; 3]) -> Vec<Target> {
    URGENCIES
        .iter()
        .zip(targets)
        .map(|(u, t)| Target {
            urgency: u,
            target_ms: t,
        })
        .collect()
}

/// Per urgency: counts, time to answer and the share within target.
pub(super) fn by_urgency(
    by_urgency: &[Acc; 3],
    p: &Percentiles,
    targets: [i64; 3],
) -> Vec<UrgencyRow> {
    by_urgency
        .iter()
        .enumerate()
        .map(|(u, acc)| UrgencyRow {
            urgency: URGENCIES[u],
            target_ms: targets[u],
            requests: acc.requests,
            answered: acc.answered,
            cancelled: acc.cancelled,
            abandoned: acc.abandoned,
            time_to_answer: spread(acc.answered, &p.wait_of(W_URGENCY, u, 4)),
            within_target: acc.within_target(),
        })
        .collect()
}

/// Outcomes recorded, journeys avoided and travel time saved, per site.
pub(super) fn outcomes(
    pass: &Pass,
    station_keys: &[StationKey],
    settings: &ReportSettings,
) -> Outcomes {
    let outcomes = &pass.outcomes;
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
    let other = outcomes[usize::from(OUTCOME_OTHER)];
    if other > 0 {
        counts.push(OutcomeCount {
            outcome: "other",
            count: other,
        });
    }

    let mut per_site: BTreeMap<Option<String>, u64> = BTreeMap::new();
    for (i, &journeys) in pass.journeys_avoided.iter().enumerate() {
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
    Outcomes {
        counts,
        journeys_avoided: outcomes[usize::from(OUTCOME_MANAGED_LOCALLY)],
        travel_minutes_saved,
        by_site,
        sites_without_travel_time,
    }
}

/// The daily series: every day of the period up to today, zeros included.
/// `base` is the local day the pass's day slots count from.
pub(super) fn daily(
    pass: &Pass,
    p: &Percentiles,
    q: &ReportQuery,
    lt: &LocalTime,
    now: i64,
    base: i64,
) -> Vec<DayRow> {
    let observed = pass.observed;
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
    if let (Some(first), Some(last)) = (first_day, last_day) {
        let first = first.max(last - (MAX_DAYS - 1));
        for day in first..=last {
            let date = LocalTime::date(day)
                .map(|d| d.to_string())
                .unwrap_or_default();
            let weekday = WEEKDAYS[LocalTime::weekday_of_day(day)];
            let index = usize::try_from(day - base).ok();
            let acc = index
                .and_then(|i| pass.days.get(i))
                .cloned()
                .unwrap_or_default();
            daily.push(DayRow {
                date,
                weekday,
                requests: acc.requests,
                answered: acc.answered,
                median_wait_ms: index.and_then(|i| p.wait_of(W_DAY, i, 1)[0]),
                within_target: acc.within_target(),
            });
        }
    }
    daily
}

/// The period as asked for, and the days the daily series covers.
pub(super) fn period(q: &ReportQuery, daily: &[DayRow]) -> Period {
    Period {
        from: q.from,
        to: q.to,
        preset: q.preset.map(|p| p.as_str()),
        days: daily.len(),
        first_day: daily.first().map(|d| d.date.clone()),
        last_day: daily.last().map(|d| d.date.clone()),
    }
}

/// The site and station filters as asked for.
pub(super) fn filters(q: &ReportQuery) -> Filters {
    Filters {
        site: q.site.clone(),
        station: q.station.clone(),
        include_test_calls: q.include_test_calls,
    }
}

/// The wait distribution: answered requests per bar, by urgency, and the
/// unanswered either side of the target. `edges` are the bars' upper edges.
pub(super) fn distribution(pass: &Pass, edges: &[i64], targets: [i64; 3]) -> Distribution {
    let mut buckets = Vec::with_capacity(edges.len() + 1);
    let mut lower = 0;
    for &e in edges {
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
    Distribution {
        buckets,
        by_urgency: (0..3)
            .map(|u| DistributionRow {
                urgency: URGENCIES[u],
                target_ms: targets[u],
                answered: pass.dist[u].clone(),
                unanswered_over_target: pass.unanswered_over[u],
                unanswered_within_target: pass.unanswered_within[u],
            })
            .collect(),
    }
}

/// Requests, answers and the median wait by weekday and hour.
pub(super) fn heatmap(cells: &[CellAcc; 7 * 24], p: &Percentiles) -> Heatmap {
    let mut heat_requests = vec![vec![0u64; 24]; 7];
    let mut heat_answered = vec![vec![0u64; 24]; 7];
    let mut heat_median = vec![vec![None; 24]; 7];
    for (i, c) in cells.iter().enumerate() {
        heat_requests[i / 24][i % 24] = c.requests;
        heat_answered[i / 24][i % 24] = c.answered;
        heat_median[i / 24][i % 24] = p.wait_of(W_CELL, i, 1)[0];
    }
    Heatmap {
        weekdays: WEEKDAYS,
        requests: heat_requests,
        answered: heat_answered,
        median_wait_ms: heat_median,
    }
}

/// Clinicians who answered, most answers first.
pub(super) fn clinicians(
    names: Vec<String>,
    answered: &[u64],
    p: &Percentiles,
) -> Vec<ClinicianRow> {
    let mut rows: Vec<ClinicianRow> = names
        .into_iter()
        .zip(answered.iter().copied())
        .enumerate()
        .filter(|(_, (_, answered))| *answered > 0)
        .map(|(i, (name, answered))| {
            let w = p.wait_of(W_CLINICIAN, i, 2);
            ClinicianRow {
                name,
                answered,
                median_wait_ms: w[0],
                p90_wait_ms: w[1],
                median_call_ms: p.call[1].get(i).and_then(|c| c[0]),
            }
        })
        .collect();
    rows.sort_by(|a, b| b.answered.cmp(&a.answered).then(a.name.cmp(&b.name)));
    rows
}

/// Stations with a request, by site and name.
pub(super) fn stations(
    pass: &mut Pass,
    station_keys: &[StationKey],
    p: &Percentiles,
) -> Vec<StationRow> {
    let mut rows: Vec<StationRow> = station_keys
        .iter()
        .zip(&pass.stations)
        .zip(&mut pass.links)
        .enumerate()
        .filter(|(_, ((_, acc), _))| acc.requests > 0)
        .map(|(i, (((name, site), acc), link))| {
            let w = p.wait_of(W_STATION, i, 2);
            StationRow {
                escalated: acc.escalated,
                link: link.summary(),
                answer_rate: acc.answer_rate(),
                within_target: acc.within_target(),
                name: name.clone(),
                site: site.clone(),
                requests: acc.requests,
                answered: acc.answered,
                cancelled: acc.cancelled,
                abandoned: acc.abandoned,
                median_wait_ms: w[0],
                p90_wait_ms: w[1],
                journeys_avoided: pass.journeys_avoided[i],
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.site, &a.name).cmp(&(&b.site, &b.name)));
    rows
}

/// Link quality per site (its stations' samples pooled), worst first.
pub(super) fn link_by_site(links: &[LinkAcc], station_keys: &[StationKey]) -> Vec<SiteLink> {
    let mut site_links: BTreeMap<Option<String>, LinkAcc> = BTreeMap::new();
    for (i, link) in links.iter().enumerate() {
        if link.measured > 0 {
            let site = station_keys[i].1.clone();
            site_links.entry(site).or_default().merge(link.clone());
        }
    }
    let mut rows: Vec<SiteLink> = site_links
        .into_iter()
        .map(|(site, mut acc)| SiteLink {
            site,
            link: acc.summary(),
        })
        .filter(|s| s.link.measured_calls > 0)
        .collect();
    rows.sort_by(|a, b| {
        b.link
            .poor_share
            .unwrap_or(0.0)
            .total_cmp(&a.link.poor_share.unwrap_or(0.0))
            .then_with(|| a.site.cmp(&b.site))
    });
    rows
}

/// The filter menus: every station with a request in the period, whatever
/// the current filter, and their sites.
pub(super) fn choices(station_keys: &[StationKey], seen: &[bool]) -> Choices {
    let mut seen_stations: Vec<&StationKey> = station_keys
        .iter()
        .zip(seen)
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
    let stations = seen_stations
        .into_iter()
        .map(|(name, site)| StationChoice {
            name: name.clone(),
            site: site.clone(),
        })
        .collect();
    Choices { sites, stations }
}
