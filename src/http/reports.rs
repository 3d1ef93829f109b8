//! `GET /api/reports`: the response-time dashboard as JSON, for managers
//! and admins. See `crate::reports` for how each figure is worked out.

use super::consults::READERS;
use super::session::AuthUser;
use super::{ApiError, AppState};
use crate::reports::local::LocalTime;
use crate::reports::{self, Bound, Preset, Report, ReportError, ReportQuery};
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
pub struct ReportParams {
    /// `today`, `last_7_days`, `last_30_days` or `this_quarter`.
    pub period: Option<String>,
    /// A local date (`2026-11-01`), RFC 3339 time or milliseconds.
    pub from: Option<String>,
    /// Inclusive for a date (`to=2026-11-30` includes the 30th); exclusive
    /// for a time or milliseconds.
    pub to: Option<String>,
    pub site: Option<String>,
    pub station: Option<String>,
    #[serde(default)]
    pub include_test_calls: bool,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl ReportParams {
    pub fn resolve(&self, lt: &LocalTime, now: i64) -> Result<ReportQuery, ApiError> {
        let period = nonempty(&self.period);
        let (from, to) = (nonempty(&self.from), nonempty(&self.to));
        let (from, to, preset) = match period {
            Some(p) => {
                if from.is_some() || to.is_some() {
                    return Err(ApiError::BadRequest(
                        "give either `period` or `from`/`to`, not both".into(),
                    ));
                }
                let preset = Preset::parse(&p).ok_or_else(|| {
                    let names: Vec<&str> = Preset::ALL.iter().map(|p| p.as_str()).collect();
                    ApiError::BadRequest(format!(
                        "unknown period {p:?}; use one of {}, or from/to",
                        names.join(", ")
                    ))
                })?;
                let (f, t) = preset.range(lt, now).ok_or_else(|| {
                    ApiError::Internal("the server clock is outside the calendar".into())
                })?;
                (Some(f), Some(t), Some(preset))
            }
            None => {
                let time = |v: &Option<String>, b| {
                    v.as_deref()
                        .map(|s| reports::parse_time(s, b, lt))
                        .transpose()
                        .map_err(ApiError::BadRequest)
                };
                (time(&from, Bound::Start)?, time(&to, Bound::End)?, None)
            }
        };
        Ok(ReportQuery {
            from,
            to,
            site: nonempty(&self.site),
            station: nonempty(&self.station),
            include_test_calls: self.include_test_calls,
            preset,
        })
    }
}

pub async fn report(
    State(state): State<AppState>,
    who: AuthUser,
    Query(params): Query<ReportParams>,
) -> Result<Json<Report>, ApiError> {
    who.require(READERS)?;
    let settings = &state.settings.reports;
    let now = state.clock.now_ms();
    let query = params.resolve(&LocalTime::new(settings.timezone), now)?;
    match reports::build(&state.store, settings, &query, now).await {
        Ok(report) => Ok(Json(report)),
        Err(ReportError::BadRequest(m)) => Err(ApiError::BadRequest(m)),
        Err(ReportError::Store(e)) => Err(ApiError::Store(e)),
        Err(ReportError::Task(e)) => Err(ApiError::Internal(e)),
    }
}
