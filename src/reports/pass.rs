//! The one pass over the period's packed consults: every count and every
//! sample the report needs, added up day by day ([`Pass`]), over several
//! threads when the period is big ([`run_passes`]). What the counts become
//! is [`super::stages`]' business.

use super::local::{LocalTime, Offsets, DAY_MS};
use super::output::{Escalations, LinkQuality, WithinTarget, POOR_LOSS_PCT, POOR_RTT_MS};
use super::packed::{
    Chunk, Fact, ESCALATION_ESCALATED, ESCALATION_REALERTED, LINK_AUDIO_ONLY, LINK_MEASURED,
    LINK_RELAYED, NONE16, NONE32, NONE8, OUTCOME_MANAGED_LOCALLY, STATUS_ABANDONED,
    STATUS_CANCELLED, STATUS_WAITING,
};
use super::stats::{share, Grouped, Samples, NO_GROUP};

/// Counts of a group of requests (their waits go to [`Grouped`]).
#[derive(Default)]
pub(super) struct Acc {
    pub(super) requests: u64,
    pub(super) answered: u64,
    pub(super) cancelled: u64,
    pub(super) abandoned: u64,
    pub(super) waiting: u64,
    met: u64,
    missed: u64,
    realerted: u64,
    pub(super) escalated: u64,
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

    pub(super) fn escalations(&self) -> Escalations {
        Escalations {
            realerted: self.realerted,
            escalated: self.escalated,
            escalated_share: share(self.escalated, self.requests),
        }
    }

    pub(super) fn within_target(&self) -> WithinTarget {
        within_target(self.met, self.missed)
    }

    pub(super) fn answer_rate(&self) -> Option<f64> {
        share(self.answered, self.requests - self.waiting)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Judged {
    Met,
    Missed,
    Neither,
}

/// Against the target for its urgency (see the notes of [`super::compute`]).
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
pub(super) struct LinkAcc {
    pub(super) measured: u64,
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

    pub(super) fn merge(&mut self, o: LinkAcc) {
        self.measured += o.measured;
        self.poor += o.poor;
        self.relayed += o.relayed;
        self.audio_only += o.audio_only;
        self.rtt.append(o.rtt);
        self.loss.append(o.loss);
    }

    pub(super) fn summary(&mut self) -> LinkQuality {
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
pub(super) struct DayAcc {
    pub(super) requests: u64,
    pub(super) answered: u64,
    met: u64,
    missed: u64,
}

impl DayAcc {
    pub(super) fn within_target(&self) -> WithinTarget {
        within_target(self.met, self.missed)
    }
}

/// Met, missed and the share met (see the notes of [`super::compute`]).
fn within_target(met: u64, missed: u64) -> WithinTarget {
    WithinTarget {
        met,
        missed,
        share: share(met, met + missed),
    }
}

#[derive(Default, Clone, Copy)]
pub(super) struct CellAcc {
    pub(super) requests: u64,
    pub(super) answered: u64,
}

/// The waits' dimensions in [`Grouped`]: all, urgency, station, clinician,
/// day, weekday-hour cell.
pub(super) const W_ALL: usize = 0;
pub(super) const W_URGENCY: usize = 1;
pub(super) const W_STATION: usize = 2;
pub(super) const W_CLINICIAN: usize = 3;
pub(super) const W_DAY: usize = 4;
pub(super) const W_CELL: usize = 5;

/// A group index for [`Grouped`] (groups past its range count in none).
fn group(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(NO_GROUP)
}

pub(super) fn groups_of(n: usize) -> usize {
    n.min(usize::from(NO_GROUP))
}

/// Everything one pass over some days' consults adds up; passes over
/// different days run on different threads and are merged.
pub(super) struct Pass {
    pub(super) all: Acc,
    pub(super) by_urgency: [Acc; 3],
    /// By global station index.
    pub(super) stations: Vec<Acc>,
    pub(super) journeys_avoided: Vec<u64>,
    /// Stations with a request in the period, filtered out or not.
    pub(super) seen: Vec<bool>,
    pub(super) clinician_answered: Vec<u64>,
    pub(super) days: Vec<DayAcc>,
    pub(super) cells: [CellAcc; 7 * 24],
    pub(super) dist: [Vec<u64>; 3],
    pub(super) unanswered_over: [u64; 3],
    pub(super) unanswered_within: [u64; 3],
    pub(super) outcomes: [u64; 8],
    pub(super) synthetic: u64,
    pub(super) test_calls_left_out: u64,
    pub(super) observed: Option<(i64, i64)>,
    /// Waits of answered requests by [all, urgency, station, clinician, day, cell].
    pub(super) waits: Grouped<6>,
    /// Call lengths by [all, clinician].
    pub(super) calls: Grouped<2>,
    pub(super) connect: Samples,
    /// Link quality, over all and by global station index.
    pub(super) link_all: LinkAcc,
    pub(super) links: Vec<LinkAcc>,
}

/// What every pass shares: the query, and the report's numbering of
/// stations, clinicians and days.
pub(super) struct Frame<'a> {
    pub(super) from: i64,
    pub(super) to: i64,
    pub(super) include_test_calls: bool,
    pub(super) targets: [i64; 3],
    pub(super) edges: &'a [i64],
    pub(super) now: i64,
    pub(super) lt: LocalTime,
    pub(super) base: i64,
    pub(super) days: usize,
    /// Per chunk: its stations' global indices, and its clinicians'.
    pub(super) station_maps: &'a [Vec<usize>],
    pub(super) clinician_maps: &'a [Vec<usize>],
    /// By global station index: passes the site and station filter.
    pub(super) passes: &'a [bool],
    pub(super) clinicians: usize,
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
        offsets: &Offsets,
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
pub(super) fn run_passes(frame: &Frame, chunks: &[&Chunk], threads: usize) -> Pass {
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
