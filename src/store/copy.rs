//! Moving an installation from one database to another (`miulink
//! migrate-db`): accounts, sessions, the whole log and its events, and the
//! presence log and the audit trail, row for row with their ids. The report cache is not
//! copied: the target's triggers mark every day stale and the next report
//! rebuilds it. Works in either direction between the backends.

use super::{Backend, Result, Store, StoreError, LOG_TABLES};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
}
use Kind::{Int, Text};

/// Every column of each table of [`LOG_TABLES`], in the same order.
const COLUMNS: &[(&str, &[(&str, Kind)])] = &[
    (
        "users",
        &[
            ("id", Int),
            ("username", Text),
            ("display_name", Text),
            ("role", Text),
            ("site", Text),
            ("password_hash", Text),
            ("disabled", Int),
            ("demo", Int),
            ("created_at", Int),
            ("escalation_duty", Int),
            ("monitoring", Int),
            ("must_change_password", Int),
            ("break_glass", Int),
            ("oidc_issuer", Text),
            ("oidc_subject", Text),
        ],
    ),
    (
        "sessions",
        &[
            ("token_hash", Text),
            ("user_id", Int),
            ("created_at", Int),
            ("expires_at", Int),
            ("last_seen_at", Int),
            ("via", Text),
            ("id_token", Text),
        ],
    ),
    (
        "consults",
        &[
            ("id", Int),
            ("station_id", Int),
            ("station_name", Text),
            ("site", Text),
            ("urgency", Text),
            ("reason", Text),
            ("patient_ref", Text),
            ("requested_at", Int),
            ("status", Text),
            ("first_rung_at", Int),
            ("rung_count", Int),
            ("closed_at", Int),
            ("call_id", Int),
            ("clinician_id", Int),
            ("clinician_name", Text),
            ("accepted_at", Int),
            ("station_media_at", Int),
            ("clinician_media_at", Int),
            ("connected_at", Int),
            ("ended_at", Int),
            ("end_reason", Text),
            ("outcome", Text),
            ("outcome_note", Text),
            ("outcome_at", Int),
            ("synthetic", Int),
            ("test_call", Int),
            ("realerted_at", Int),
            ("escalated_at", Int),
            ("station_quality", Text),
            ("clinician_quality", Text),
        ],
    ),
    (
        "consult_events",
        &[
            ("id", Int),
            ("consult_id", Int),
            ("at", Int),
            ("kind", Text),
            ("detail", Text),
        ],
    ),
    (
        "presence_log",
        &[("id", Int), ("user_id", Int), ("at", Int), ("status", Text)],
    ),
    (
        "audit_log",
        &[
            ("id", Int),
            ("at", Int),
            ("actor_id", Int),
            ("actor", Text),
            ("action", Text),
            ("target", Text),
            ("detail", Text),
            ("client", Text),
        ],
    ),
];

/// Rows read and written per statement (under both backends' limits on
/// bound values).
const ROWS_PER_BATCH: usize = 500;

enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl Store {
    /// Copies everything of [`LOG_TABLES`] into `target`, which must be
    /// empty, in one transaction on the target; then checks that both hold
    /// the same number of rows of each table. The counts.
    pub async fn copy_into(&self, target: &Store) -> Result<Vec<(&'static str, i64)>> {
        let before = target.row_counts().await?;
        if let Some((table, n)) = before.iter().find(|(_, n)| *n > 0) {
            return Err(StoreError::Invalid(format!(
                "the target database is not empty ({table} has {n} rows); \
                 migrate-db writes only into a new, empty database"
            )));
        }
        let source_counts = self.row_counts().await?;
        let mut tx = target.pool.begin().await?;
        for (table, columns) in COLUMNS {
            let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
            let key = names[0];
            let mut offset = 0i64;
            loop {
                let select = format!(
                    "SELECT {} FROM {table} ORDER BY {key} LIMIT $1 OFFSET $2",
                    names.join(", ")
                );
                let rows = sqlx::query(&select)
                    .bind(ROWS_PER_BATCH as i64)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await?;
                if rows.is_empty() {
                    break;
                }
                offset += rows.len() as i64;
                let insert = format!(
                    "INSERT INTO {table} ({}) VALUES {}",
                    names.join(", "),
                    super::history::value_rows(target.backend, rows.len(), names.len())
                );
                let mut q = sqlx::query(&insert);
                for row in &rows {
                    for value in read_row(row, columns)? {
                        q = match value {
                            Value::Int(v) => q.bind(v),
                            Value::Text(v) => q.bind(v),
                        };
                    }
                }
                q.execute(&mut *tx).await?;
            }
        }
        if target.backend == Backend::Postgres {
            // Ids given explicitly do not move PostgreSQL's identity
            // counters: set them past the largest id copied.
            for table in ["users", "consult_events", "presence_log", "audit_log"] {
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                     COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        let target_counts = target.row_counts().await?;
        if target_counts != source_counts {
            return Err(StoreError::Invalid(format!(
                "row counts differ after the copy: source {source_counts:?}, target {target_counts:?}; \
                 was a server still writing to the source? Stop it, empty the target and run again"
            )));
        }
        debug_assert_eq!(LOG_TABLES.len(), COLUMNS.len());
        Ok(target_counts)
    }
}

fn read_row(row: &AnyRow, columns: &[(&str, Kind)]) -> Result<Vec<Value>> {
    columns
        .iter()
        .map(|(name, kind)| {
            Ok(match kind {
                Int => Value::Int(row.try_get(*name)?),
                Text => Value::Text(row.try_get(*name)?),
            })
        })
        .collect()
}
