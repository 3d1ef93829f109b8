//! What a trust sets for its reports: answer targets, travel times, time zone.

use chrono_tz::Tz;
use std::collections::BTreeMap;

pub const DEFAULT_TARGET_MINUTES: [f64; 3] = [2.0, 5.0, 15.0];
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Europe::London;
/// Millom MIU to the A&E at Furness General Hospital: 50 minutes each way.
pub const DEFAULT_TRAVEL: &[(&str, u32)] = &[("Millom", 50)];

#[derive(Clone, Debug, PartialEq)]
pub struct ReportSettings {
    /// Answer targets in ms for immediate, urgent and routine requests: a
    /// request is answered within target if the wait is at most this.
    pub targets_ms: [i64; 3],
    /// Minutes each way from a site to A&E: the journey a patient treated
    /// at that site (outcome "managed locally") did not have to make.
    pub travel_minutes: BTreeMap<String, u32>,
    /// Days and hours in reports are in this zone.
    pub timezone: Tz,
    /// The share of requests the trust aims to answer within target (0 to
    /// 1): the dashboard's verdict is against this.
    pub target_share: f64,
}

/// The default share of requests to answer within target: 90 %.
pub const DEFAULT_TARGET_SHARE: f64 = 0.9;

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            targets_ms: DEFAULT_TARGET_MINUTES.map(minutes_to_ms),
            travel_minutes: DEFAULT_TRAVEL
                .iter()
                .map(|(site, m)| ((*site).to_owned(), *m))
                .collect(),
            timezone: DEFAULT_TIMEZONE,
            target_share: DEFAULT_TARGET_SHARE,
        }
    }
}

pub fn minutes_to_ms(minutes: f64) -> i64 {
    (minutes * 60_000.0).round() as i64
}

/// A target in minutes (decimals allowed: 1.5 is 90 seconds).
pub fn parse_target_minutes(s: &str) -> Result<f64, String> {
    let m: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of minutes (e.g. 2 or 1.5)"))?;
    if !(m.is_finite() && m > 0.0 && m <= 24.0 * 60.0) {
        return Err(format!(
            "a target must be more than 0 and at most 1440 minutes, not {s}"
        ));
    }
    Ok(m)
}

/// `SITE=MINUTES`, e.g. `Millom=50`.
pub fn parse_travel(s: &str) -> Result<(String, u32), String> {
    let (site, minutes) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write SITE=MINUTES, e.g. Millom=50"))?;
    let site = site.trim();
    if site.is_empty() {
        return Err(format!("{s:?}: the site name is missing (e.g. Millom=50)"));
    }
    let minutes: u32 = minutes
        .trim()
        .parse()
        .ok()
        .filter(|m| (1..=24 * 60).contains(m))
        .ok_or_else(|| format!("{s:?}: travel minutes must be a whole number from 1 to 1440"))?;
    Ok((site.to_owned(), minutes))
}

/// An IANA time zone name such as `Europe/London`.
pub fn parse_timezone(s: &str) -> Result<Tz, String> {
    s.trim()
        .parse::<Tz>()
        .map_err(|_| format!("{s:?} is not a time zone name; use one such as Europe/London"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_parsing() {
        let d = ReportSettings::default();
        assert_eq!(d.targets_ms, [120_000, 300_000, 900_000]);
        assert_eq!(d.travel_minutes.get("Millom"), Some(&50));
        assert_eq!(d.timezone, chrono_tz::Europe::London);
        assert_eq!(parse_target_minutes("1.5").map(minutes_to_ms), Ok(90_000));
        assert!(parse_target_minutes("0").is_err());
        assert!(parse_target_minutes("NaN").is_err());
        assert!(parse_target_minutes("two").is_err());
        assert_eq!(
            parse_travel(" Ulverston = 20 "),
            Ok(("Ulverston".into(), 20))
        );
        assert!(parse_travel("Millom").is_err());
        assert!(parse_travel("=5").is_err());
        assert!(parse_travel("Millom=-5").is_err());
        assert!(parse_travel("Millom=0").is_err());
        assert_eq!(
            parse_timezone("Europe/Dublin"),
            Ok(chrono_tz::Europe::Dublin)
        );
        assert!(parse_timezone("Mars/Olympus").is_err());
    }
}
