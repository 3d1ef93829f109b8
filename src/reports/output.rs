//! The report as `GET /api/reports` answers it: every type here is part of
//! the JSON (other tools read it), so field names and meanings stay put.
//! The figures are worked out in [`super::compute`]; their definitions are
//! in its notes.

use serde::Serialize;

/// The heat map's rows, Monday first.
pub const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
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

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Escalations {
    /// Requests re-alerted to every available clinician.
    pub realerted: u64,
    /// Requests escalated to duty holders (also counted in `realerted`).
    pub escalated: u64,
    /// escalated / requests.
    pub escalated_share: Option<f64>,
}

/// A round trip over this makes a link poor: the rule the call screen's
/// badge uses too (`signalling::POOR_LINK_RTT_MS`, sent in `welcome`).
pub const POOR_RTT_MS: u16 = {
    assert!(signalling::POOR_LINK_RTT_MS <= u16::MAX as u32);
    signalling::POOR_LINK_RTT_MS as u16
};
/// Loss over this (percent) makes a link poor.
pub const POOR_LOSS_PCT: f64 = signalling::POOR_LINK_LOSS_PCT;

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
