//! Synthetic consult history: `miulink seed --consults N --days D`, and a
//! modest history for `--demo` so a newcomer sees a populated dashboard.
//!
//! Every generated consult is marked `synthetic = 1`. The history is a
//! small simulation rather than independent random rows, so that the
//! dashboard shows what a real service looks like:
//!
//! * Requests arrive more in the evening and at weekends (an hourly and a
//!   weekday profile in local time, a winter peak, and day-to-day noise).
//! * A rota of clinicians is on duty (more by day than by night), sized
//!   for the volume asked for. Each request goes to the clinician who is
//!   free first, so when every clinician is on a call the queue grows and
//!   so do the waits; A&E is busier in the evening, so answering is slower.
//! * Nurses cancel when the answer is too long coming (less patient for
//!   immediate requests), a few cancel early, and a few stations drop off
//!   (abandoned). Outcomes depend on the urgency.
//! * Each consult gets the events the switchboard would have logged.
//!
//! History is written in batches of whole transactions; ids continue after
//! the log's largest, so seed while the server is stopped.

use crate::reports::local::{LocalTime, DAY_MS, HOUR_MS};
use crate::store::{HistoricConsult, Store};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use signalling::{
    CallId, ConsultEvent, EndReason, Outcome, Party, RingTrigger, Role, Side, Urgency, UserId,
};
use std::collections::HashMap;
use std::time::Instant;

/// Consults written per transaction.
const BATCH: usize = 10_000;
/// History stops this long before the end time so that no consult of it
/// is still running (and no event lies in the future).
const QUIET_END_MS: i64 = 3 * HOUR_MS;
/// The largest history one command writes.
pub const MAX_CONSULTS: u64 = 20_000_000;
pub const MAX_DAYS: u32 = 3_650;

/// The demo's history: a few months, as a single MIU network might see.
pub const DEMO_DAYS: u32 = 100;
pub const DEMO_CONSULTS: u64 = 2_400;

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub consults: u64,
    pub days: u32,
    /// History ends here (UTC ms), normally now.
    pub end: i64,
    pub rng_seed: u64,
    pub timezone: Tz,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedSummary {
    pub consults: u64,
    pub answered: u64,
    pub cancelled: u64,
    pub abandoned: u64,
    pub first_id: i64,
    pub last_id: i64,
}

/// (display name, site, share of requests)
const STATIONS: &[(&str, &str, f64)] = &[
    ("Millom MIU Room 1", "Millom", 0.32),
    ("Millom MIU Room 2", "Millom", 0.22),
    ("Ulverston MIU", "Ulverston", 0.26),
    ("Kendal UTC Room 3", "Kendal", 0.20),
];

const FIRST_NAMES: [&str; 24] = [
    "Amira", "Ben", "Chloe", "Daniel", "Eilidh", "Farhan", "Grace", "Harriet", "Iain", "Jasmine",
    "Kwame", "Laura", "Mateusz", "Niamh", "Oliver", "Priya", "Rhys", "Sofia", "Tom", "Uma",
    "Victor", "Wen", "Yusuf", "Zara",
];
const SURNAMES: [&str; 24] = [
    "Haddad",
    "Carter",
    "Evans",
    "Okafor",
    "Fraser",
    "Malik",
    "Whitfield",
    "Ng",
    "Morrison",
    "Kaur",
    "Mensah",
    "Bennett",
    "Nowak",
    "O'Brien",
    "Hughes",
    "Raman",
    "Llewellyn",
    "Rossi",
    "Ashworth",
    "Shah",
    "Adeyemi",
    "Li",
    "Demir",
    "Ahmed",
];

/// Short presentations; never a patient's name.
const REASONS: [&[&str]; 3] = [
    &[
        "Head injury, on anticoagulants",
        "Chest pain after a fall",
        "Anaphylaxis, responding to adrenaline",
        "Child, possible sepsis",
        "Reduced consciousness after a fall",
    ],
    &[
        "Suspected scaphoid fracture",
        "Dislocated shoulder",
        "Deep hand laceration, tendon check",
        "Eye injury, foreign body",
        "Burn to the hand",
        "Older person's fall, hip pain",
    ],
    &[
        "Ankle injury, X-ray review",
        "Wrist X-ray review",
        "Wound closure advice",
        "Minor head injury, advice",
        "Finger injury, X-ray review",
        "Dog bite to the forearm",
        "Rash, second opinion",
    ],
];

/// Relative requests by local hour: quiet nights, busy evenings.
const HOURLY: [f64; 24] = [
    0.25, 0.15, 0.10, 0.08, 0.08, 0.10, 0.20, 0.40, 0.70, 0.90, 1.00, 1.00, 0.95, 0.95, 1.00, 1.05,
    1.15, 1.35, 1.55, 1.60, 1.45, 1.10, 0.70, 0.45,
];
/// Relative requests by weekday, Monday first: busier weekends.
const WEEKDAY: [f64; 7] = [1.0, 0.95, 0.95, 1.0, 1.1, 1.35, 1.3];
/// How much longer a clinician takes to step away from A&E, by local hour.
const AE_BUSY: [f64; 24] = [
    1.2, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.05, 1.1, 1.15, 1.15, 1.1, 1.1, 1.2, 1.35,
    1.5, 1.55, 1.5, 1.4, 1.3, 1.25,
];
/// Day shift 08:00-22:00 local (more clinicians), night shift otherwise.
const DAY_SHIFT: std::ops::Range<usize> = 8..22;

/// Median seconds before a clinician can answer, by urgency.
const ANSWER_DELAY_S: [f64; 3] = [35.0, 70.0, 140.0];
/// Median minutes a nurse waits before giving up, by urgency.
const PATIENCE_MIN: [f64; 3] = [7.0, 14.0, 28.0];
/// Median call minutes, by urgency.
const CALL_MIN: [f64; 3] = [9.0, 7.0, 5.5];
/// Outcome weights by urgency, in `Outcome::ALL` order: managed locally,
/// to A&E, referred elsewhere, ambulance, technical failure.
const OUTCOME_WEIGHTS: [[f64; 5]; 3] = [
    [0.30, 0.35, 0.07, 0.25, 0.03],
    [0.50, 0.30, 0.10, 0.07, 0.03],
    [0.66, 0.14, 0.15, 0.02, 0.03],
];

struct Person {
    id: i64,
    name: String,
    site: Option<String>,
}

impl Person {
    fn party(&self) -> Party {
        Party {
            user_id: UserId(self.id),
            display_name: self.name.clone(),
            site: self.site.clone(),
        }
    }
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller; 1 - gen() is in (0, 1], so the log is finite.
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal duration in ms with this median, capped at `cap_ms`.
fn lognormal_ms(rng: &mut StdRng, median_ms: f64, sigma: f64, cap_ms: i64) -> i64 {
    ((median_ms * (sigma * normal(rng)).exp()) as i64).clamp(1, cap_ms)
}

fn pick(rng: &mut StdRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.gen::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Request times: `n` of them in `[start, end)`, following the hourly,
/// weekday and seasonal profile in local time, sorted.
fn arrivals(rng: &mut StdRng, n: u64, start: i64, end: i64, lt: &LocalTime) -> Vec<i64> {
    let hours = ((end - start) / HOUR_MS).max(1);
    let mut cumulative = Vec::with_capacity(hours as usize);
    let mut total = 0.0;
    let mut day_noise = HashMap::new();
    for h in 0..hours {
        let t = start + h * HOUR_MS;
        let local = t + lt.offset_ms(t);
        let day = LocalTime::day_of_local(local);
        let noise = *day_noise
            .entry(day)
            .or_insert_with(|| 0.85 + 0.3 * rng.gen::<f64>());
        // Winter is busier (peak in mid-January).
        let season = 1.0 + 0.15 * (std::f64::consts::TAU * ((day - 14) as f64 / 365.25)).cos();
        total += HOURLY[LocalTime::hour_of_local(local)]
            * WEEKDAY[LocalTime::weekday_of_day(day)]
            * season
            * noise;
        cumulative.push(total);
    }
    let mut times: Vec<i64> = (0..n)
        .map(|_| {
            let x = rng.gen::<f64>() * total;
            let h = cumulative
                .partition_point(|&c| c <= x)
                .min(cumulative.len() - 1) as i64;
            let t = start + h * HOUR_MS + rng.gen_range(0..HOUR_MS);
            t.min(end - 1)
        })
        .collect();
    times.sort_unstable();
    times
}

struct Rota {
    pool: Vec<Person>,
    free_at: Vec<i64>,
    day_count: usize,
    night_count: usize,
    /// (local day, is day shift) -> indices of the clinicians on duty.
    shifts: HashMap<(i64, bool), Vec<usize>>,
}

impl Rota {
    fn on_duty(&mut self, rng: &mut StdRng, day: i64, day_shift: bool) -> &[usize] {
        let count = if day_shift {
            self.day_count
        } else {
            self.night_count
        };
        let pool = self.pool.len();
        self.shifts.entry((day, day_shift)).or_insert_with(|| {
            let mut all: Vec<usize> = (0..pool).collect();
            for i in 0..count.min(pool) {
                let j = rng.gen_range(i..pool);
                all.swap(i, j);
            }
            all.truncate(count.min(pool));
            all
        })
    }
}

/// Writes `opts.consults` synthetic consults over `opts.days` days ending
/// three hours before `opts.end`, then brings the report cache up to date.
pub async fn seed(store: &Store, opts: &SeedOptions) -> anyhow::Result<SeedSummary> {
    if opts.consults == 0 || opts.consults > MAX_CONSULTS {
        anyhow::bail!("--consults must be 1 to {MAX_CONSULTS}");
    }
    if opts.days == 0 || opts.days > MAX_DAYS {
        anyhow::bail!("--days must be 1 to {MAX_DAYS}");
    }
    let lt = LocalTime::new(opts.timezone);
    let mut rng = StdRng::seed_from_u64(opts.rng_seed);
    let end = opts.end - QUIET_END_MS;
    let start = end - i64::from(opts.days) * DAY_MS;

    // Accounts that exist (e.g. the demo's) lend their ids and names; the
    // rest of the people are synthetic, with negative ids.
    let users = store.list_users().await?;
    let account = |name: &str, role: Role| {
        users
            .iter()
            .find(|u| u.role == role && u.display_name == name)
            .map(|u| u.id.0)
    };
    let stations: Vec<Person> = STATIONS
        .iter()
        .enumerate()
        .map(|(i, (name, site, _))| Person {
            id: account(name, Role::Station).unwrap_or(-(i as i64) - 1),
            name: (*name).to_owned(),
            site: Some((*site).to_owned()),
        })
        .collect();
    let station_weights: Vec<f64> = STATIONS.iter().map(|s| s.2).collect();

    // Size the rota for the volume: a clinician is busy about 9 minutes
    // per answered call. At the busiest hour of the week (about three times
    // the average rate by day, 1.3 times by night) the day shift runs at
    // about 90% and the night shift at about 75%, so that waits grow at the
    // peaks without the queue running away.
    let per_hour = opts.consults as f64 / (f64::from(opts.days) * 24.0);
    let erlangs = per_hour * 9.0 / 60.0;
    let day_count = ((erlangs * 3.0 / 0.9).ceil() as usize).max(2);
    let night_count = ((erlangs * 1.3 / 0.75).ceil() as usize).max(1);
    let mut pool: Vec<Person> = users
        .iter()
        .filter(|u| u.role == Role::Clinician && !u.disabled)
        .map(|u| Person {
            id: u.id.0,
            name: u.display_name.clone(),
            site: u.site.clone(),
        })
        .collect();
    let wanted = (day_count * 3).max(6);
    let mut i = 0usize;
    while pool.len() < wanted {
        let mut name = format!("Dr {} {}", FIRST_NAMES[i % 24], SURNAMES[(i / 24 + i) % 24]);
        if i >= 24 * 24 {
            name = format!("{name} {}", i / (24 * 24) + 1);
        }
        pool.push(Person {
            id: -1000 - i as i64,
            name,
            site: Some("Furness General".to_owned()),
        });
        i += 1;
    }
    let mut rota = Rota {
        free_at: vec![i64::MIN; pool.len()],
        pool,
        day_count,
        night_count,
        shifts: HashMap::new(),
    };

    let times = arrivals(&mut rng, opts.consults, start, end, &lt);
    let (next_id, next_call) = store.next_ids().await?;
    let first_id = i64::try_from(next_id)?;
    let mut call_id = i64::try_from(next_call)?;
    let mut summary = SeedSummary {
        first_id,
        ..SeedSummary::default()
    };
    let mut batch = Vec::with_capacity(BATCH);
    for (id, &t) in (first_id..).zip(&times) {
        let c = one_consult(
            &mut rng,
            &lt,
            &stations,
            &station_weights,
            &mut rota,
            t,
            id,
            &mut call_id,
        );
        summary.consults += 1;
        match c.status.as_str() {
            "cancelled" => summary.cancelled += 1,
            "abandoned" => summary.abandoned += 1,
            _ => summary.answered += 1,
        }
        summary.last_id = id;
        batch.push(c);
        if batch.len() == BATCH {
            store.insert_history(&batch).await?;
            batch.clear();
        }
    }
    store.insert_history(&batch).await?;
    crate::reports::refresh_cache(store).await?;
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn one_consult(
    rng: &mut StdRng,
    lt: &LocalTime,
    stations: &[Person],
    station_weights: &[f64],
    rota: &mut Rota,
    t: i64,
    id: i64,
    next_call: &mut i64,
) -> HistoricConsult {
    let local = t + lt.offset_ms(t);
    let hour = LocalTime::hour_of_local(local);
    let day = LocalTime::day_of_local(local);
    let urgency = Urgency::ALL[pick(rng, &[0.12, 0.38, 0.50])];
    let u = urgency as usize;
    let station = &stations[pick(rng, station_weights)];
    let reasons = REASONS[u];
    let reason = reasons[rng.gen_range(0..reasons.len())].to_owned();

    // The night shift that started yesterday evening runs past midnight.
    let day_shift = DAY_SHIFT.contains(&hour);
    let shift_day = if !day_shift && hour < DAY_SHIFT.start {
        day - 1
    } else {
        day
    };
    let on_duty = rota.on_duty(rng, shift_day, day_shift).to_vec();
    let first = on_duty
        .iter()
        .copied()
        .min_by_key(|&k| rota.free_at[k])
        .unwrap_or(0);
    let weekend = LocalTime::weekday_of_day(day) >= 5;
    let busy = AE_BUSY[hour] * if weekend { 1.15 } else { 1.0 };
    let delay = lognormal_ms(rng, ANSWER_DELAY_S[u] * 1000.0 * busy, 0.6, 40 * 60_000);
    let gap = lognormal_ms(rng, 40_000.0, 0.5, 10 * 60_000);
    let answer_at = (t + delay).max(rota.free_at[first].saturating_add(gap));

    // Does the nurse give up, or the station drop, before the answer?
    let patience = lognormal_ms(rng, PATIENCE_MIN[u] * 60_000.0, 0.5, 90 * 60_000);
    let early_cancel = (rng.gen::<f64>() < 0.03).then(|| t + rng.gen_range(20_000..240_000));
    let dropped = (rng.gen::<f64>() < 0.012).then(|| t + rng.gen_range(10_000..600_000) + 60_000);
    let mut closed: Option<(i64, &str)> = None;
    if let Some(at) = early_cancel.filter(|&at| at < answer_at) {
        closed = Some((at, "cancelled"));
    }
    if let Some(at) = dropped.filter(|&at| at < answer_at) {
        if closed.is_none_or(|(c, _)| at < c) {
            closed = Some((at, "abandoned"));
        }
    }
    if closed.is_none() && answer_at - t > patience {
        closed = Some(if rng.gen::<f64>() < 0.85 {
            (t + patience, "cancelled")
        } else {
            (t + patience + 60_000, "abandoned")
        });
    }

    let station_party = station.party();
    let mut c = HistoricConsult {
        id,
        station_id: station.id,
        station_name: station.name.clone(),
        site: station.site.clone(),
        urgency: urgency.as_str().to_owned(),
        reason: reason.clone(),
        requested_at: t,
        first_rung_at: Some(t + 40),
        synthetic: true,
        ..HistoricConsult::default()
    };
    c.events.push((
        t,
        ConsultEvent::Requested {
            station: station_party,
            urgency,
            reason,
            patient_ref: None,
            test_call: false,
        },
    ));
    let until = closed.map_or(answer_at, |(at, _)| at);
    let ring_ids: Vec<UserId> = on_duty.iter().map(|&k| UserId(rota.pool[k].id)).collect();
    // Rung on request, then again whenever a clinician came free.
    let rings = 1 + ((until - t) / 180_000).clamp(0, 3);
    for r in 0..rings {
        c.events.push((
            t + 40 + r * 180_000,
            ConsultEvent::Rung {
                clinicians: ring_ids.clone(),
                trigger: if r == 0 {
                    RingTrigger::NewRequest
                } else {
                    RingTrigger::ClinicianAvailable
                },
            },
        ));
    }
    c.rung_count = rings;

    // Nobody answered in time: the switchboard's default escalation steps.
    let policy = signalling::Config::default().escalation_for(urgency);
    if until - t >= policy.realert_after_ms {
        let at = t + policy.realert_after_ms;
        c.realerted_at = Some(at);
        c.events.push((
            at,
            ConsultEvent::Escalated {
                level: signalling::EscalationLevel::Realerted,
                notified: ring_ids.clone(),
            },
        ));
    }
    if until - t >= policy.escalate_after_ms {
        let at = t + policy.escalate_after_ms;
        c.escalated_at = Some(at);
        c.events.push((
            at,
            ConsultEvent::Escalated {
                level: signalling::EscalationLevel::Escalated,
                notified: ring_ids.clone(),
            },
        ));
    }
    c.events.sort_by_key(|(at, _)| *at);

    if let Some((at, status)) = closed {
        c.status = status.to_owned();
        c.closed_at = Some(at);
        c.events.push((
            at,
            if status == "cancelled" {
                ConsultEvent::Cancelled
            } else {
                ConsultEvent::Abandoned
            },
        ));
        return c;
    }

    let clinician = &rota.pool[first];
    let call = *next_call;
    *next_call += 1;
    let call_id = CallId(call as u64);
    c.call_id = Some(call);
    c.clinician_id = Some(clinician.id);
    c.clinician_name = Some(clinician.name.clone());
    c.accepted_at = Some(answer_at);
    c.events.push((
        answer_at,
        ConsultEvent::Accepted {
            call_id,
            clinician: clinician.party(),
        },
    ));
    let media_fails = rng.gen::<f64>() < 0.025;
    let connect = lognormal_ms(rng, 2_500.0, 0.6, 60_000);
    let call_start = if media_fails {
        answer_at
    } else {
        let station_media = answer_at + connect * 7 / 10;
        let clinician_media = answer_at + connect;
        c.station_media_at = Some(station_media);
        c.clinician_media_at = Some(clinician_media);
        c.connected_at = Some(clinician_media);
        c.events.push((
            station_media,
            ConsultEvent::MediaConnected {
                call_id,
                side: Side::Station,
                both: false,
            },
        ));
        c.events.push((
            clinician_media,
            ConsultEvent::MediaConnected {
                call_id,
                side: Side::Clinician,
                both: true,
            },
        ));
        clinician_media
    };
    let length = if media_fails {
        lognormal_ms(rng, 60_000.0, 0.5, 10 * 60_000)
    } else {
        lognormal_ms(rng, CALL_MIN[u] * 60_000.0, 0.45, 60 * 60_000)
    };
    let ended = call_start + length;
    if !media_fails {
        let sample = link_sample(rng, station.site.as_deref());
        c.events.push((
            ended,
            ConsultEvent::QualityReported {
                call_id,
                side: Side::Station,
                sample,
            },
        ));
        c.station_quality = serde_json::to_string(&sample).ok();
    }
    let reason = [
        EndReason::HungUpByClinician,
        EndReason::HungUpByStation,
        EndReason::StationDisconnected,
        EndReason::ClinicianDisconnected,
    ][pick(rng, &[0.65, 0.32, 0.02, 0.01])];
    c.ended_at = Some(ended);
    c.end_reason = Some(reason.as_str().to_owned());
    c.events
        .push((ended, ConsultEvent::CallEnded { call_id, reason }));

    let outcome = if media_fails {
        (rng.gen::<f64>() < 0.8).then_some(Outcome::TechnicalFailure)
    } else if rng.gen::<f64>() < 0.04 {
        None
    } else {
        Some(Outcome::ALL[pick(rng, &OUTCOME_WEIGHTS[u])])
    };
    let wrap_up = lognormal_ms(rng, 45_000.0, 0.5, 10 * 60_000);
    rota.free_at[first] = ended + wrap_up;
    match outcome {
        Some(outcome) => {
            let at = ended + wrap_up / 2;
            c.status = "completed".into();
            c.outcome = Some(outcome.as_str().to_owned());
            c.outcome_at = Some(at);
            c.events.push((
                at,
                ConsultEvent::OutcomeRecorded {
                    call_id,
                    outcome,
                    note: None,
                    by: UserId(clinician.id),
                },
            ));
        }
        None => c.status = "ended".into(),
    }
    c
}

/// A station's last quality report of a call. Links differ by site: the
/// Kendal unit sits behind a locked-down network (TURN relay, longer round
/// trips, more loss), so the dashboard has a poor site to show.
fn link_sample(rng: &mut impl Rng, site: Option<&str>) -> signalling::QualitySample {
    let (rtt, loss, relayed) = match site {
        Some("Kendal") => (140.0, 2.5, rng.gen::<f64>() < 0.7),
        Some("Ulverston") => (45.0, 0.6, rng.gen::<f64>() < 0.1),
        _ => (30.0, 0.3, rng.gen::<f64>() < 0.05),
    };
    let rtt_ms = (rtt * (0.6 + rng.gen::<f64>()).powi(2)).round();
    let packet_loss_pct =
        ((loss * (rng.gen::<f64>() * 2.2).powi(3)).min(40.0) * 10.0).round() / 10.0;
    let audio_only = packet_loss_pct > 8.0 && rng.gen::<f64>() < 0.5;
    signalling::QualitySample {
        rtt_ms: Some(rtt_ms),
        packet_loss_pct: Some(packet_loss_pct),
        bitrate_kbps: Some(if audio_only {
            48.0
        } else {
            (900.0 + rng.gen::<f64>() * 900.0).round()
        }),
        fps: Some(if audio_only {
            0.0
        } else {
            24.0 + (rng.gen::<f64>() * 6.0).round()
        }),
        audio_only,
        relayed,
    }
}

/// `--demo` on an empty log: a modest history so the dashboard has
/// something to show. Quick (well under a second).
pub async fn demo_history(store: &Store, timezone: Tz, now: i64) -> anyhow::Result<()> {
    let all = crate::store::ConsultFilter {
        include_test_calls: true,
        ..Default::default()
    };
    if store.consult_count(&all).await? > 0 {
        return Ok(());
    }
    let started = Instant::now();
    let summary = seed(
        store,
        &SeedOptions {
            consults: DEMO_CONSULTS,
            days: DEMO_DAYS,
            end: now,
            rng_seed: 2026,
            timezone,
        },
    )
    .await?;
    tracing::warn!(
        consults = summary.consults,
        days = DEMO_DAYS,
        ms = started.elapsed().as_millis() as u64,
        "demo: wrote synthetic consult history (marked synthetic) for the dashboard"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_follow_the_profile() {
        let lt = LocalTime::new(chrono_tz::Europe::London);
        let mut rng = StdRng::seed_from_u64(7);
        let start = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a Thursday
        let end = start + 28 * DAY_MS;
        let times = arrivals(&mut rng, 50_000, start, end, &lt);
        assert_eq!(times.len(), 50_000);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(times.iter().all(|&t| (start..end).contains(&t)));
        let mut by_hour = [0u32; 24];
        let mut by_weekday = [0u32; 7];
        for &t in &times {
            let local = t + lt.offset_ms(t);
            by_hour[LocalTime::hour_of_local(local)] += 1;
            by_weekday[LocalTime::weekday_of_day(LocalTime::day_of_local(local))] += 1;
        }
        assert!(
            by_hour[19] > 3 * by_hour[3],
            "evenings busier than nights: {by_hour:?}"
        );
        assert!(by_hour[19] > by_hour[10], "evening peak: {by_hour:?}");
        let weekend = f64::from(by_weekday[5] + by_weekday[6]) / 2.0;
        let weekday = f64::from(by_weekday[..5].iter().sum::<u32>()) / 5.0;
        assert!(weekend > 1.15 * weekday, "weekends busier: {by_weekday:?}");
    }

    #[test]
    fn lognormal_has_the_asked_median() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut v: Vec<i64> = (0..20_001)
            .map(|_| lognormal_ms(&mut rng, 60_000.0, 0.5, i64::MAX))
            .collect();
        v.sort_unstable();
        let median = v[10_000];
        assert!((55_000..65_000).contains(&median), "{median}");
    }
}
