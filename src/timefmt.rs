//! Times at the edges: the log stores UTC milliseconds; people type dates.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// `2026-11-23T17:41:25.123Z`
pub fn iso_utc(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Which end of a range a date-only value stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A date means its first instant.
    Start,
    /// A date means the end of that day (exclusive: the next midnight), so
    /// `to=2026-11-23` includes all of the 23rd.
    End,
}

/// Parses a time given in a query: milliseconds since the epoch,
/// `YYYY-MM-DD` (UTC day) or RFC 3339 (`2026-11-23T09:00:00Z`).
pub fn parse_time(value: &str, bound: Bound) -> Result<i64, String> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let date = match bound {
            Bound::Start => date,
            Bound::End => date.succ_opt().unwrap_or(date),
        };
        if let Some(t) = date.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp_millis());
    }
    Err(format!(
        "cannot read {value:?} as a time; use 2026-11-23, 2026-11-23T09:00:00Z or milliseconds since 1970"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            parse_time("2026-11-23", Bound::Start).unwrap(),
            1_795_392_000_000
        );
        assert_eq!(
            parse_time("2026-11-23", Bound::End).unwrap(),
            1_795_392_000_000 + 86_400_000
        );
        assert_eq!(
            parse_time("2026-11-23T00:00:00Z", Bound::End).unwrap(),
            1_795_392_000_000
        );
        assert_eq!(
            parse_time("1795392000000", Bound::Start).unwrap(),
            1_795_392_000_000
        );
        assert!(parse_time("next tuesday", Bound::Start).is_err());
    }
}
