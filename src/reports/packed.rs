//! The report cache's packing of one UTC day of consults into one blob.
//!
//! A dashboard over a million consults then reads about a thousand blobs
//! (one per day) instead of a million rows, and walks fixed-size records in
//! memory. The consults table stays the truth: a blob is rebuilt from it
//! whenever any consult of its day changes (see migration 0002).
//!
//! Layout (little-endian), format [`FORMAT`]:
//! ```text
//! u16 stations,   then per station:   str name, opt-str site
//! u16 clinicians, then per clinician: str name
//! u32 records,    then RECORD_BYTES per record:
//!   u32 requested_at - day start (ms)   u16 station index
//!   u16 clinician index (or NONE16)     u16 codes (see `Codes`)
//!   u32 wait (answered) or time to cancel/abandon (not answered), or NONE32
//!   u32 answer to media connected, or NONE32
//!   u32 call duration, or NONE32
//!   u16 worse round-trip time of the two sides' last quality samples (ms), or NONE16
//!   u8  worse packet loss, in half percent (0..=200), or NONE8
//!   u8  link flags: 1 measured, 2 relayed through TURN, 4 audio only
//! str = u16 byte length + UTF-8; opt-str uses length 0xFFFF for none.
//! ```

use super::local::DAY_MS;
use crate::store::ConsultFact;
use std::collections::HashMap;

/// Bump when the layout changes: blobs of another format are rebuilt.
/// 2: escalation level, link quality.
pub const FORMAT: i64 = 2;
pub const NONE8: u8 = u8::MAX;
pub const NONE16: u16 = u16::MAX;
pub const NONE32: u32 = u32::MAX;
const RECORD_BYTES: usize = 26;

pub const LINK_MEASURED: u8 = 1;
pub const LINK_RELAYED: u8 = 2;
pub const LINK_AUDIO_ONLY: u8 = 4;

/// 0 never escalated, 1 re-alerted, 2 escalated to duty holders.
pub const ESCALATION_REALERTED: u8 = 1;
pub const ESCALATION_ESCALATED: u8 = 2;

pub const URGENCIES: [&str; 3] = ["immediate", "urgent", "routine"];
pub const STATUSES: [&str; 6] = [
    "waiting",
    "in_call",
    "ended",
    "completed",
    "cancelled",
    "abandoned",
];
pub const STATUS_WAITING: u8 = 0;
pub const STATUS_CANCELLED: u8 = 4;
pub const STATUS_ABANDONED: u8 = 5;
/// Outcome codes: 0 is none recorded, then these in order, then "other"
/// for a value this version does not know.
pub const OUTCOMES: [&str; 5] = [
    "managed_locally",
    "transfer_to_ed",
    "referred_elsewhere",
    "ambulance",
    "technical_failure",
];
pub const OUTCOME_NONE: u8 = 0;
pub const OUTCOME_MANAGED_LOCALLY: u8 = 1;
pub const OUTCOME_OTHER: u8 = 7;

/// One consult, unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact {
    pub requested_at: i64,
    pub station: u16,
    pub clinician: u16,
    pub urgency: u8,
    pub status: u8,
    pub outcome: u8,
    pub answered: bool,
    pub synthetic: bool,
    pub test_call: bool,
    /// Answered: request to answer. Not answered: request to cancel or
    /// abandon (NONE32 while still waiting).
    pub wait_ms: u32,
    pub connect_ms: u32,
    pub duration_ms: u32,
    /// How far it was escalated (see [`ESCALATION_ESCALATED`]).
    pub escalation: u8,
    pub rtt_ms: u16,
    pub loss_half_pct: u8,
    pub link: u8,
}

/// The worse of the two sides' last quality samples.
fn link_of(f: &ConsultFact) -> (u16, u8, u8) {
    let samples: Vec<signalling::QualitySample> = [&f.station_quality, &f.clinician_quality]
        .into_iter()
        .flatten()
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect();
    if samples.is_empty() {
        return (NONE16, NONE8, 0);
    }
    let worst = |get: fn(&signalling::QualitySample) -> Option<f64>| {
        samples
            .iter()
            .filter_map(get)
            .fold(None, |acc: Option<f64>, v| {
                Some(acc.map_or(v, |a| a.max(v)))
            })
    };
    let rtt = worst(|q| q.rtt_ms).map_or(NONE16, |v| {
        v.round().clamp(0.0, f64::from(NONE16 - 1)) as u16
    });
    let loss =
        worst(|q| q.packet_loss_pct).map_or(NONE8, |v| (v * 2.0).round().clamp(0.0, 200.0) as u8);
    let mut flags = LINK_MEASURED;
    if samples.iter().any(|q| q.relayed) {
        flags |= LINK_RELAYED;
    }
    if samples.iter().any(|q| q.audio_only) {
        flags |= LINK_AUDIO_ONLY;
    }
    (rtt, loss, flags)
}

/// The consults of one UTC day: `index` is `requested_at / 86_400_000`.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub index: i64,
    pub stations: Vec<(String, Option<String>)>,
    pub clinicians: Vec<String>,
    /// The records are `bytes[records_at..]` (a decoded blob is kept whole
    /// rather than copied).
    bytes: Vec<u8>,
    records_at: usize,
}

impl PartialEq for Chunk {
    fn eq(&self, other: &Chunk) -> bool {
        self.index == other.index
            && self.stations == other.stations
            && self.clinicians == other.clinicians
            && self.records() == other.records()
    }
}

impl Eq for Chunk {}

fn span(from: i64, to: Option<i64>) -> u32 {
    match to {
        Some(to) => u32::try_from((to - from).max(0))
            .unwrap_or(NONE32 - 1)
            .min(NONE32 - 1),
        None => NONE32,
    }
}

fn code_of(list: &[&str], value: &str) -> Option<u8> {
    list.iter().position(|v| *v == value).map(|i| i as u8)
}

impl Chunk {
    pub fn start_ms(&self) -> i64 {
        self.index * DAY_MS
    }

    pub fn len(&self) -> usize {
        self.records().len() / RECORD_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.records().is_empty()
    }

    /// Packs one day's consults (all with `requested_at / DAY_MS == index`).
    pub fn build(index: i64, facts: &[ConsultFact]) -> Result<Chunk, String> {
        let start = index * DAY_MS;
        let mut stations: Vec<(String, Option<String>)> = Vec::new();
        let mut station_ix: HashMap<(&str, Option<&str>), u16> = HashMap::new();
        let mut clinicians: Vec<String> = Vec::new();
        let mut clinician_ix: HashMap<&str, u16> = HashMap::new();
        let mut records = Vec::with_capacity(facts.len() * RECORD_BYTES);
        for f in facts {
            let offset = f.requested_at - start;
            if !(0..DAY_MS).contains(&offset) {
                return Err(format!(
                    "consult requested at {} is not in day {index}",
                    f.requested_at
                ));
            }
            let key = (f.station.as_str(), f.site.as_deref());
            let station = match station_ix.get(&key) {
                Some(&i) => i,
                None => {
                    let i = u16::try_from(stations.len())
                        .ok()
                        .filter(|&i| i < NONE16)
                        .ok_or("more than 65,534 stations in one day")?;
                    stations.push((f.station.clone(), f.site.clone()));
                    station_ix.insert(key, i);
                    i
                }
            };
            let clinician = match f.clinician.as_deref() {
                None => NONE16,
                Some(name) => match clinician_ix.get(name) {
                    Some(&i) => i,
                    None => {
                        let i = u16::try_from(clinicians.len())
                            .ok()
                            .filter(|&i| i < NONE16)
                            .ok_or("more than 65,534 clinicians in one day")?;
                        clinicians.push(name.to_owned());
                        clinician_ix.insert(name, i);
                        i
                    }
                },
            };
            let urgency = code_of(&URGENCIES, &f.urgency)
                .ok_or_else(|| format!("unknown urgency {:?} in the log", f.urgency))?;
            let status = code_of(&STATUSES, &f.status)
                .ok_or_else(|| format!("unknown status {:?} in the log", f.status))?;
            let outcome = match f.outcome.as_deref() {
                None => OUTCOME_NONE,
                Some(o) => code_of(&OUTCOMES, o).map_or(OUTCOME_OTHER, |c| c + 1),
            };
            let answered = f.accepted_at.is_some();
            let wait = match f.accepted_at {
                Some(a) => span(f.requested_at, Some(a)),
                None => span(f.requested_at, f.closed_at),
            };
            let connect = match f.accepted_at {
                Some(a) => span(a, f.connected_at),
                None => NONE32,
            };
            let duration = match (f.connected_at.or(f.accepted_at), f.ended_at) {
                (Some(s), Some(_)) => span(s, f.ended_at),
                _ => NONE32,
            };
            let escalation = if f.escalated_at.is_some() {
                ESCALATION_ESCALATED
            } else if f.realerted_at.is_some() {
                ESCALATION_REALERTED
            } else {
                0
            };
            let codes = u16::from(urgency)
                | u16::from(status) << 2
                | u16::from(outcome) << 5
                | u16::from(f.synthetic) << 8
                | u16::from(f.test_call) << 9
                | u16::from(answered) << 10
                | u16::from(escalation) << 11;
            let (rtt, loss, link) = link_of(f);
            records.extend_from_slice(&(offset as u32).to_le_bytes());
            records.extend_from_slice(&station.to_le_bytes());
            records.extend_from_slice(&clinician.to_le_bytes());
            records.extend_from_slice(&codes.to_le_bytes());
            records.extend_from_slice(&wait.to_le_bytes());
            records.extend_from_slice(&connect.to_le_bytes());
            records.extend_from_slice(&duration.to_le_bytes());
            records.extend_from_slice(&rtt.to_le_bytes());
            records.push(loss);
            records.push(link);
        }
        Ok(Chunk {
            index,
            stations,
            clinicians,
            bytes: records,
            records_at: 0,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.records().len() + 64 * self.stations.len() + 16);
        let put_str = |out: &mut Vec<u8>, s: &str| {
            let bytes = &s.as_bytes()[..s.len().min(usize::from(NONE16 - 1))];
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        out.extend_from_slice(&(self.stations.len() as u16).to_le_bytes());
        for (name, site) in &self.stations {
            put_str(&mut out, name);
            match site {
                Some(site) => put_str(&mut out, site),
                None => out.extend_from_slice(&NONE16.to_le_bytes()),
            }
        }
        out.extend_from_slice(&(self.clinicians.len() as u16).to_le_bytes());
        for name in &self.clinicians {
            put_str(&mut out, name);
        }
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        out.extend_from_slice(self.records());
        out
    }

    /// Reads a blob back. A damaged or foreign blob is an error (the caller
    /// rebuilds it from the consults table), never a panic.
    pub fn decode(index: i64, blob: Vec<u8>) -> Result<Chunk, String> {
        let mut r = Reader { blob: &blob, at: 0 };
        let n = r.u16()?;
        let mut stations = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let name = r.string()?.ok_or("a station without a name")?;
            stations.push((name, r.string()?));
        }
        let n = r.u16()?;
        let mut clinicians = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            clinicians.push(r.string()?.ok_or("a clinician without a name")?);
        }
        let count = r.u32()? as usize;
        let records_at = r.at;
        r.take(count.checked_mul(RECORD_BYTES).ok_or("too many records")?)?;
        if r.at != blob.len() {
            return Err("trailing bytes after the records".into());
        }
        let chunk = Chunk {
            index,
            stations,
            clinicians,
            bytes: blob,
            records_at,
        };
        // Indices must point into the tables, so that readers can index freely.
        for f in chunk.facts() {
            if usize::from(f.station) >= chunk.stations.len()
                || (f.clinician != NONE16 && usize::from(f.clinician) >= chunk.clinicians.len())
                || usize::from(f.urgency) >= URGENCIES.len()
                || usize::from(f.status) >= STATUSES.len()
            {
                return Err("a record points outside its tables".into());
            }
        }
        Ok(chunk)
    }

    fn records(&self) -> &[u8] {
        self.bytes.get(self.records_at..).unwrap_or(&[])
    }

    /// The records, unpacked one at a time.
    pub fn facts(&self) -> impl Iterator<Item = Fact> + '_ {
        let start = self.start_ms();
        self.records().chunks_exact(RECORD_BYTES).map(move |r| {
            let u32_at = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
            let u16_at = |i: usize| u16::from_le_bytes([r[i], r[i + 1]]);
            let codes = u16_at(8);
            Fact {
                requested_at: start + i64::from(u32_at(0)),
                station: u16_at(4),
                clinician: u16_at(6),
                urgency: (codes & 0b11) as u8,
                status: ((codes >> 2) & 0b111) as u8,
                outcome: ((codes >> 5) & 0b111) as u8,
                synthetic: codes & (1 << 8) != 0,
                test_call: codes & (1 << 9) != 0,
                answered: codes & (1 << 10) != 0,
                wait_ms: u32_at(10),
                connect_ms: u32_at(14),
                duration_ms: u32_at(18),
                escalation: ((codes >> 11) & 0b11) as u8,
                rtt_ms: u16_at(22),
                loss_half_pct: r[24],
                link: r[25],
            }
        })
    }
}

struct Reader<'a> {
    blob: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.blob.len());
        let end = end.ok_or("the blob is cut short")?;
        let bytes = &self.blob[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<Option<String>, String> {
        let n = self.u16()?;
        if n == NONE16 {
            return Ok(None);
        }
        let bytes = self.take(usize::from(n))?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| "a name that is not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(at: i64, station: &str, clinician: Option<&str>) -> ConsultFact {
        ConsultFact {
            requested_at: at,
            station: station.into(),
            site: Some("Millom".into()),
            urgency: "urgent".into(),
            status: if clinician.is_some() {
                "completed"
            } else {
                "cancelled"
            }
            .into(),
            clinician: clinician.map(Into::into),
            accepted_at: clinician.map(|_| at + 95_000),
            connected_at: clinician.map(|_| at + 98_500),
            ended_at: clinician.map(|_| at + 500_000),
            closed_at: if clinician.is_some() {
                None
            } else {
                Some(at + 30_000)
            },
            outcome: clinician.map(|_| "managed_locally".into()),
            synthetic: true,
            test_call: false,
            realerted_at: None,
            escalated_at: None,
            station_quality: None,
            clinician_quality: None,
        }
    }

    #[test]
    fn escalation_and_link_quality_round_trip() {
        let day = 20_000;
        let start = day * DAY_MS;
        let mut a = fact(start + 5, "Millom MIU Room 1", Some("Dr A"));
        a.realerted_at = Some(start + 60_000);
        a.escalated_at = Some(start + 120_000);
        a.station_quality = Some(r#"{"rtt_ms":38.4,"packet_loss_pct":0.4,"relayed":true}"#.into());
        a.clinician_quality =
            Some(r#"{"rtt_ms":41.6,"packet_loss_pct":7.26,"audio_only":true}"#.into());
        let mut b = fact(start + 9, "Millom MIU Room 1", Some("Dr A"));
        b.realerted_at = Some(start + 60_000);
        b.station_quality = Some("not json".into());
        let chunk = Chunk::build(day, &[a, b]).unwrap();
        let got: Vec<Fact> = Chunk::decode(day, chunk.encode())
            .unwrap()
            .facts()
            .collect();
        assert_eq!(got[0].escalation, ESCALATION_ESCALATED);
        assert_eq!(got[0].rtt_ms, 42, "the worse side, rounded");
        assert_eq!(got[0].loss_half_pct, 15, "7.26 % in half percent, rounded");
        assert_eq!(got[0].link, LINK_MEASURED | LINK_RELAYED | LINK_AUDIO_ONLY);
        assert_eq!(got[1].escalation, ESCALATION_REALERTED);
        assert_eq!(
            (got[1].rtt_ms, got[1].loss_half_pct, got[1].link),
            (NONE16, NONE8, 0),
            "a bad sample is no sample"
        );
    }

    #[test]
    fn round_trips() {
        let day = 20_000;
        let start = day * DAY_MS;
        let facts = vec![
            fact(start + 5, "Millom MIU Room 1", Some("Dr A")),
            fact(start + DAY_MS - 1, "Millom MIU Room 2", None),
            fact(start + 1000, "Millom MIU Room 1", Some("Dr B")),
        ];
        let chunk = Chunk::build(day, &facts).unwrap();
        let back = Chunk::decode(day, chunk.encode()).unwrap();
        assert_eq!(back, chunk);
        let got: Vec<Fact> = back.facts().collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].requested_at, start + 5);
        assert_eq!(got[0].wait_ms, 95_000);
        assert_eq!(got[0].connect_ms, 3_500);
        assert_eq!(got[0].duration_ms, 500_000 - 98_500);
        assert_eq!(got[0].outcome, OUTCOME_MANAGED_LOCALLY);
        assert!(got[0].answered && got[0].synthetic && !got[0].test_call);
        assert_eq!(back.clinicians[usize::from(got[2].clinician)], "Dr B");
        assert_eq!(got[1].wait_ms, 30_000, "time to cancel");
        assert_eq!(got[1].status, STATUS_CANCELLED);
        assert_eq!(got[1].clinician, NONE16);
        assert_eq!(got[1].connect_ms, NONE32);
        assert_eq!(
            back.stations[usize::from(got[1].station)].0,
            "Millom MIU Room 2"
        );
    }

    #[test]
    fn refuses_foreign_or_damaged_blobs() {
        let day = 20_000;
        assert!(
            Chunk::build(day, &[fact(0, "x", None)]).is_err(),
            "wrong day"
        );
        let blob = Chunk::build(day, &[fact(day * DAY_MS, "x", Some("y"))])
            .unwrap()
            .encode();
        for cut in 0..blob.len() {
            assert!(
                Chunk::decode(day, blob[..cut].to_vec()).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(Chunk::decode(day, longer).is_err());
        // A record pointing at a station that is not in the table.
        let mut bad = blob.clone();
        let record_start = blob.len() - RECORD_BYTES;
        bad[record_start + 4] = 9;
        assert!(Chunk::decode(day, bad).is_err());
        assert!(Chunk::decode(day, Vec::new()).is_err());
    }
}
