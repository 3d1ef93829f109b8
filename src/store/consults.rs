//! The `consults` table as the session log keeps it: each row is the
//! [`Consult`] summary that `signalling::consult` makes of the consult's
//! events. The store reads rows into that summary, applies a batch's events
//! to it there, and writes back the rows it returns; restore (`load_open`)
//! and the managers' log read the same summary.

use super::{history, Backend, Result, StoreError};
use signalling::{
    CallId, Consult, ConsultEvent, ConsultStatus, EndReason, Outcome, RequestId, Urgency, UserId,
};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashMap;

/// Every column of a consult's summary, in the order [`values`] gives
/// them: first what the request fixed, then what events change.
pub(super) const COLUMNS: &[&str] = &[
    "id",
    "station_id",
    "station_name",
    "site",
    "urgency",
    "reason",
    "patient_ref",
    "requested_at",
    "test_call",
    "status",
    "first_rung_at",
    "rung_count",
    "closed_at",
    "realerted_at",
    "escalated_at",
    "call_id",
    "clinician_id",
    "clinician_name",
    "accepted_at",
    "station_media_at",
    "clinician_media_at",
    "connected_at",
    "ended_at",
    "end_reason",
    "outcome",
    "outcome_note",
    "outcome_at",
    "station_quality",
    "clinician_quality",
];

/// How many of [`COLUMNS`] come first and never change after the request
/// (who asked, and what for); the rest are what events change.
const FIXED: usize = 9;

/// Consults per multi-row INSERT (29 values each).
const INSERT_ROWS: usize = 100;

pub(super) fn columns() -> String {
    COLUMNS.join(", ")
}

fn invalid(what: String) -> StoreError {
    StoreError::Invalid(what)
}

/// Reads a row of [`COLUMNS`] into its summary.
pub(super) fn from_row(r: &AnyRow) -> Result<Consult> {
    let id: i64 = r.try_get("id")?;
    let urgency: String = r.try_get("urgency")?;
    let status: String = r.try_get("status")?;
    let end_reason: Option<String> = r.try_get("end_reason")?;
    let outcome: Option<String> = r.try_get("outcome")?;
    Ok(Consult {
        id: RequestId(id as u64),
        station_id: UserId(r.try_get("station_id")?),
        station_name: r.try_get("station_name")?,
        site: r.try_get("site")?,
        urgency: Urgency::parse(&urgency)
            .ok_or_else(|| invalid(format!("consult {id} has unknown urgency {urgency:?}")))?,
        reason: r.try_get("reason")?,
        patient_ref: r.try_get("patient_ref")?,
        requested_at: r.try_get("requested_at")?,
        test_call: r.try_get::<i64, _>("test_call")? != 0,
        status: ConsultStatus::parse(&status)
            .ok_or_else(|| invalid(format!("consult {id} has unknown status {status:?}")))?,
        first_rung_at: r.try_get("first_rung_at")?,
        rung_count: u32::try_from(r.try_get::<i64, _>("rung_count")?).unwrap_or(u32::MAX),
        closed_at: r.try_get("closed_at")?,
        realerted_at: r.try_get("realerted_at")?,
        escalated_at: r.try_get("escalated_at")?,
        call_id: r
            .try_get::<Option<i64>, _>("call_id")?
            .map(|c| CallId(c as u64)),
        clinician_id: r.try_get::<Option<i64>, _>("clinician_id")?.map(UserId),
        clinician_name: r.try_get("clinician_name")?,
        accepted_at: r.try_get("accepted_at")?,
        station_media_at: r.try_get("station_media_at")?,
        clinician_media_at: r.try_get("clinician_media_at")?,
        connected_at: r.try_get("connected_at")?,
        ended_at: r.try_get("ended_at")?,
        end_reason: end_reason.as_deref().and_then(EndReason::parse),
        outcome: outcome.as_deref().and_then(Outcome::parse),
        outcome_note: r.try_get("outcome_note")?,
        outcome_at: r.try_get("outcome_at")?,
        station_quality: r.try_get("station_quality")?,
        clinician_quality: r.try_get("clinician_quality")?,
    })
}

/// One value to bind.
enum Value<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
}

/// The values of [`COLUMNS`] for `c`, in that order.
fn values(c: &Consult) -> [Value<'_>; 29] {
    use Value::{Int, Text};
    [
        Int(Some(c.id.0 as i64)),
        Int(Some(c.station_id.0)),
        Text(Some(&c.station_name)),
        Text(c.site.as_deref()),
        Text(Some(c.urgency.as_str())),
        Text(Some(&c.reason)),
        Text(c.patient_ref.as_deref()),
        Int(Some(c.requested_at)),
        Int(Some(i64::from(c.test_call))),
        Text(Some(c.status.as_str())),
        Int(c.first_rung_at),
        Int(Some(i64::from(c.rung_count))),
        Int(c.closed_at),
        Int(c.realerted_at),
        Int(c.escalated_at),
        Int(c.call_id.map(|id| id.0 as i64)),
        Int(c.clinician_id.map(|id| id.0)),
        Text(c.clinician_name.as_deref()),
        Int(c.accepted_at),
        Int(c.station_media_at),
        Int(c.clinician_media_at),
        Int(c.connected_at),
        Int(c.ended_at),
        Text(c.end_reason.map(EndReason::as_str)),
        Text(c.outcome.map(Outcome::as_str)),
        Text(c.outcome_note.as_deref()),
        Int(c.outcome_at),
        Text(c.station_quality.as_deref()),
        Text(c.clinician_quality.as_deref()),
    ]
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind<'q>(mut q: Query<'q>, values: impl IntoIterator<Item = Value<'q>>) -> Query<'q> {
    for v in values {
        q = match v {
            Value::Int(i) => q.bind(i),
            Value::Text(t) => q.bind(t),
        };
    }
    q
}

/// The consults a batch of events changes, as they were before it (read)
/// or begun by it, in the order the events came.
#[derive(Default)]
pub(super) struct Batch {
    consults: Vec<(Consult, bool)>,
    index: HashMap<u64, usize>,
}

impl Batch {
    /// The ids of consults whose first event in `events` is not the one
    /// that begins them: they must be read before the batch applies.
    pub(super) fn existing<'e>(
        events: impl Iterator<Item = (RequestId, &'e ConsultEvent)>,
    ) -> Vec<i64> {
        let mut seen = std::collections::HashSet::new();
        let mut read = Vec::new();
        for (id, event) in events {
            if seen.insert(id.0) && !matches!(event, ConsultEvent::Requested { .. }) {
                read.push(id.0 as i64);
            }
        }
        read
    }

    pub(super) fn add_read(&mut self, consult: Consult) {
        self.index.insert(consult.id.0, self.consults.len());
        self.consults.push((consult, false));
    }

    /// Applies one event, as `signalling::consult` says.
    pub(super) fn apply(&mut self, id: RequestId, at: i64, event: &ConsultEvent) -> Result<()> {
        match self.index.get(&id.0) {
            Some(&i) => self.consults[i]
                .0
                .apply(at, event)
                .map_err(|e| invalid(e.to_string())),
            None => {
                let consult = Consult::begin(id, at, event).map_err(|e| match e {
                    signalling::LifecycleError::NotRequested(..) => invalid(format!(
                        "log event {} for consult {id}, which is not in the log",
                        event.kind()
                    )),
                    other => invalid(other.to_string()),
                })?;
                self.index.insert(id.0, self.consults.len());
                self.consults.push((consult, true));
                Ok(())
            }
        }
    }

    /// Writes the batch's consults: new ones inserted, changed ones updated.
    pub(super) async fn write(
        &self,
        backend: Backend,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<()> {
        let new: Vec<&Consult> = self
            .consults
            .iter()
            .filter(|(_, new)| *new)
            .map(|(c, _)| c)
            .collect();
        for chunk in new.chunks(INSERT_ROWS) {
            let sql = format!(
                "INSERT INTO consults ({}) VALUES {}",
                columns(),
                history::value_rows(backend, chunk.len(), COLUMNS.len())
            );
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = bind(q, values(c));
            }
            q.execute(&mut **tx).await?;
        }
        let sets: Vec<String> = COLUMNS[FIXED..]
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 2))
            .collect();
        let update = format!("UPDATE consults SET {} WHERE id = $1", sets.join(", "));
        for (c, _) in self.consults.iter().filter(|(_, new)| !*new) {
            let [id, ..] = values(c);
            let changing = values(c).into_iter().skip(FIXED);
            let q = bind(sqlx::query(&update), std::iter::once(id));
            let done = bind(q, changing).execute(&mut **tx).await?;
            if done.rows_affected() != 1 {
                return Err(invalid(format!(
                    "consult {} matched {} rows on update; expected one",
                    c.id,
                    done.rows_affected()
                )));
            }
        }
        Ok(())
    }
}

/// Reads these consults' rows.
pub(super) async fn read(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ids: &[i64],
) -> Result<Vec<Consult>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT {} FROM consults WHERE id IN ({})",
            columns(),
            super::placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut **tx).await? {
            out.push(from_row(&row)?);
        }
    }
    Ok(out)
}
