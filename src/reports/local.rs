//! The trust's local time. The log stores UTC milliseconds; managers think
//! in local days and hours ("Friday evenings"), so every day and hour in a
//! report is local, daylight saving included (in Europe/London a summer
//! evening at 19:30 BST is 18:30 UTC).

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A local calendar day, counted from 1970-01-01 (local).
pub type DayNumber = i64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub tz: Tz,
}

/// The UTC offsets in force over a stretch of time: `(from_ms, offset_ms)`
/// in ascending order; each applies until the next one starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offsets(Vec<(i64, i64)>);

impl Offsets {
    /// The offset in force at `utc_ms` (which must not precede the first
    /// segment; earlier instants get the first offset).
    #[inline]
    pub fn at(&self, utc_ms: i64) -> i64 {
        let mut offset = self.0.first().map_or(0, |s| s.1);
        for &(from, o) in &self.0[1..] {
            if utc_ms >= from {
                offset = o;
            } else {
                break;
            }
        }
        offset
    }
}

impl LocalTime {
    pub fn new(tz: Tz) -> Self {
        LocalTime { tz }
    }

    /// Local time minus UTC at this instant, in milliseconds (3,600,000 in BST).
    pub fn offset_ms(&self, utc_ms: i64) -> i64 {
        match DateTime::from_timestamp_millis(utc_ms) {
            Some(t) => {
                i64::from(
                    self.tz
                        .offset_from_utc_datetime(&t.naive_utc())
                        .fix()
                        .local_minus_utc(),
                ) * 1000
            }
            None => 0,
        }
    }

    /// The offsets in force during `[start, end)`, found by bisection, so
    /// that a whole day of records can be placed in local time with one
    /// comparison each instead of a time-zone lookup each.
    pub fn offsets(&self, start: i64, end: i64) -> Offsets {
        let mut segments = Vec::new();
        let mut from = start;
        while from < end {
            let offset = self.offset_ms(from);
            segments.push((from, offset));
            if self.offset_ms(end - 1) == offset {
                break;
            }
            // The first instant in (from, end) with a different offset.
            let (mut lo, mut hi) = (from, end - 1);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if self.offset_ms(mid) == offset {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            from = hi;
        }
        Offsets(segments)
    }

    /// The local day number of a local wall-clock time in milliseconds.
    #[inline]
    pub fn day_of_local(local_ms: i64) -> DayNumber {
        local_ms.div_euclid(DAY_MS)
    }

    /// 0 = Monday ... 6 = Sunday (1970-01-01 was a Thursday).
    #[inline]
    pub fn weekday_of_day(day: DayNumber) -> usize {
        (day + 3).rem_euclid(7) as usize
    }

    /// Local hour 0..=23 of a local wall-clock time in milliseconds.
    #[inline]
    pub fn hour_of_local(local_ms: i64) -> usize {
        (local_ms.rem_euclid(DAY_MS) / HOUR_MS) as usize
    }

    pub fn day_number(&self, utc_ms: i64) -> DayNumber {
        Self::day_of_local(utc_ms + self.offset_ms(utc_ms))
    }

    pub fn date(day: DayNumber) -> Option<NaiveDate> {
        let days = i32::try_from(day).ok()?.checked_add(EPOCH_DAYS_FROM_CE)?;
        NaiveDate::from_num_days_from_ce_opt(days)
    }

    pub fn day_of_date(date: NaiveDate) -> DayNumber {
        i64::from(date.num_days_from_ce() - EPOCH_DAYS_FROM_CE)
    }

    /// The local date of an instant.
    pub fn date_of(&self, utc_ms: i64) -> Option<NaiveDate> {
        Self::date(self.day_number(utc_ms))
    }

    /// The first instant (UTC ms) of a local date: local midnight, or the
    /// first time that exists that day where a clock change skips midnight.
    pub fn start_of(&self, date: NaiveDate) -> Option<i64> {
        let midnight = date.and_hms_opt(0, 0, 0)?;
        for step in 0..=24 * 4 {
            let local = midnight + chrono::Duration::minutes(15 * step);
            match self.tz.from_local_datetime(&local) {
                LocalResult::Single(t) => return Some(t.timestamp_millis()),
                LocalResult::Ambiguous(first, _) => return Some(first.timestamp_millis()),
                LocalResult::None => continue,
            }
        }
        None
    }

    /// The first day of the calendar quarter holding `date` (quarters start
    /// in January, April, July and October: the NHS financial quarters).
    pub fn quarter_start(date: NaiveDate) -> Option<NaiveDate> {
        let month = (date.month0() / 3) * 3 + 1;
        NaiveDate::from_ymd_opt(date.year(), month, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> LocalTime {
        LocalTime::new(chrono_tz::Europe::London)
    }

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn london_summer_evening_is_an_hour_ahead_of_utc() {
        let t = ms("2026-07-03T18:30:00Z");
        let local = t + london().offset_ms(t);
        assert_eq!(LocalTime::hour_of_local(local), 19);
        // 23:30 UTC on Sunday 5 July is 00:30 BST on Monday 6 July.
        let late = ms("2026-07-05T23:30:00Z");
        let day = london().day_number(late);
        assert_eq!(LocalTime::date(day), NaiveDate::from_ymd_opt(2026, 7, 6));
        assert_eq!(LocalTime::weekday_of_day(day), 0, "Monday");
        // In winter London is on UTC.
        let winter = ms("2026-12-01T18:30:00Z");
        assert_eq!(
            LocalTime::hour_of_local(winter + london().offset_ms(winter)),
            18
        );
    }

    #[test]
    fn offsets_find_the_clock_changes() {
        let lt = london();
        // Clocks go forward at 01:00 UTC on Sunday 29 March 2026.
        let day = ms("2026-03-29T00:00:00Z");
        let o = lt.offsets(day, day + DAY_MS);
        assert_eq!(
            o,
            Offsets(vec![(day, 0), (ms("2026-03-29T01:00:00Z"), HOUR_MS)])
        );
        assert_eq!(o.at(ms("2026-03-29T00:59:59.999Z")), 0);
        assert_eq!(o.at(ms("2026-03-29T01:00:00Z")), HOUR_MS);
        // ... and back at 01:00 UTC on Sunday 25 October 2026.
        let day = ms("2026-10-25T00:00:00Z");
        let o = lt.offsets(day, day + DAY_MS);
        assert_eq!(
            o,
            Offsets(vec![(day, HOUR_MS), (ms("2026-10-25T01:00:00Z"), 0)])
        );
        // An ordinary day has one segment.
        let day = ms("2026-11-23T00:00:00Z");
        assert_eq!(lt.offsets(day, day + DAY_MS).0.len(), 1);
    }

    #[test]
    fn local_days_start_at_local_midnight() {
        let lt = london();
        let d = NaiveDate::from_ymd_opt(2026, 7, 6).unwrap();
        assert_eq!(lt.start_of(d), Some(ms("2026-07-05T23:00:00Z")));
        let d = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(lt.start_of(d), Some(ms("2026-12-01T00:00:00Z")));
        // The day the clocks go forward is 23 hours long.
        let a = lt
            .start_of(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap())
            .unwrap();
        let b = lt
            .start_of(NaiveDate::from_ymd_opt(2026, 3, 30).unwrap())
            .unwrap();
        assert_eq!(b - a, 23 * HOUR_MS);
        // A zone whose clocks skip midnight: Santiago, 6 September 2026
        // (00:00 becomes 01:00); the day starts at 01:00 local.
        let santiago = LocalTime::new(chrono_tz::America::Santiago);
        let start = santiago
            .start_of(NaiveDate::from_ymd_opt(2026, 9, 6).unwrap())
            .unwrap();
        assert_eq!(santiago.date_of(start), NaiveDate::from_ymd_opt(2026, 9, 6));
        assert_eq!(
            santiago.date_of(start - 1),
            NaiveDate::from_ymd_opt(2026, 9, 5)
        );
    }

    #[test]
    fn day_numbers_round_trip_and_quarters() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(LocalTime::date(LocalTime::day_of_date(d)), Some(d));
        assert_eq!(
            LocalTime::day_of_date(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()),
            0
        );
        assert_eq!(
            LocalTime::weekday_of_day(LocalTime::day_of_date(d)),
            0,
            "a Monday"
        );
        assert_eq!(
            LocalTime::quarter_start(d),
            NaiveDate::from_ymd_opt(2026, 10, 1)
        );
        assert_eq!(
            LocalTime::quarter_start(NaiveDate::from_ymd_opt(2026, 3, 31).unwrap()),
            NaiveDate::from_ymd_opt(2026, 1, 1)
        );
    }
}
