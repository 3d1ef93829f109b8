//! The call's milestones per side (ICE, DTLS, first video, data-channel
//! round trips), turned into the report's timed steps.

use super::*;

/// The call's milestones, per side.
#[derive(Default)]
pub(super) struct CallMarks {
    ice: [Option<Instant>; 2],
    dtls: [Option<Instant>; 2],
    video: [Option<Instant>; 2],
    rtt: Option<Result<Vec<f64>, String>>,
}

pub(super) fn idx(side: Side) -> usize {
    match side {
        Side::Station => 0,
        Side::Clinician => 1,
    }
}

impl CallMarks {
    pub(super) fn record(&mut self, side: Side, mark: Mark, run: &mut Run) {
        let i = idx(side);
        fn seen(run: &mut Run, side: Side) -> &mut VideoSeen {
            match side {
                Side::Station => run.video_at_station.get_or_insert_with(VideoSeen::default),
                Side::Clinician => run
                    .video_at_clinician
                    .get_or_insert_with(VideoSeen::default),
            }
        }
        match mark {
            Mark::CallStart { call_id } => run.call_id = Some(call_id.0),
            Mark::IceConnected(at) => self.ice[i] = Some(at),
            Mark::DtlsConnected(at) => self.dtls[i] = Some(at),
            Mark::FirstVideo(at, size) => {
                self.video[i] = Some(at);
                let v = seen(run, side);
                v.packets = v.packets.max(1);
                v.first_key_frame = size.map(|(w, h)| format!("{w}x{h}"));
            }
            Mark::VideoPackets(n) => {
                let v = seen(run, side);
                v.packets = v.packets.max(n);
            }
            Mark::Rtt(samples) => self.rtt = Some(Ok(samples)),
            // A measured round trip wins over the other side's "none came".
            Mark::RttUnavailable(why) if !matches!(self.rtt, Some(Ok(_))) => {
                self.rtt = Some(Err(why));
            }
            Mark::Note(n) => run.notes.push(n),
            _ => {}
        }
    }

    /// Everything measured (both sides, or the probe's one side).
    pub(super) fn complete(&self, both: bool) -> bool {
        let have = |a: &[Option<Instant>; 2]| {
            if both {
                a.iter().all(Option::is_some)
            } else {
                a.iter().any(Option::is_some)
            }
        };
        have(&self.ice) && have(&self.dtls) && have(&self.video) && self.rtt.is_some()
    }

    pub(super) fn report(&self, rec: &mut Recorder, accepted: Instant, both: bool, failed: bool) {
        let why_missing = if failed {
            "did not happen before the call failed"
        } else {
            "did not happen"
        };
        for (step, marks) in [
            (Step::AcceptToIceConnected, &self.ice),
            (Step::AcceptToDtlsConnected, &self.dtls),
            (Step::AcceptToFirstVideo, &self.video),
        ] {
            let present: Vec<(usize, Instant)> = marks
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.map(|t| (i, t)))
                .collect();
            let needed = if both { 2 } else { 1 };
            if present.len() < needed {
                rec.failed(step, why_missing);
                continue;
            }
            let latest = present.iter().map(|(_, t)| *t).max().unwrap_or(accepted);
            let detail = if both {
                present
                    .iter()
                    .map(|(i, t)| {
                        let who = if *i == 0 {
                            if step == Step::AcceptToFirstVideo {
                                "at station"
                            } else {
                                "station"
                            }
                        } else if step == Step::AcceptToFirstVideo {
                            "at clinician"
                        } else {
                            "clinician"
                        };
                        format!("{who} {:.0} ms", ms(t.saturating_duration_since(accepted)))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                String::new()
            };
            rec.measured(step, ms(latest.saturating_duration_since(accepted)), detail);
        }
        match &self.rtt {
            Some(Ok(samples)) if !samples.is_empty() => {
                let mut s = samples.clone();
                s.sort_by(f64::total_cmp);
                let median = s[s.len() / 2];
                rec.measured(
                    Step::DataChannelRtt,
                    median,
                    format!("median of {} round trips", s.len()),
                );
            }
            Some(Err(why)) if !both => rec.skipped(Step::DataChannelRtt, why.clone()),
            Some(Err(why)) => rec.failed(Step::DataChannelRtt, why.clone()),
            _ => rec.failed(Step::DataChannelRtt, why_missing),
        }
        if !rec.has(Step::HangupLogged) {
            rec.failed(Step::HangupLogged, "the end of the call was not confirmed");
        }
    }
}
