//! Keeping the database for years: backups of a running server, putting a
//! backup back, deleting what is past its retention period, and files
//! only their owner can read.

use super::{Backend, Result, Store, StoreError};
use sqlx::{Connection, Executor};
use std::path::{Path, PathBuf};

/// The SQLite file behind a `sqlite://` URL (`None` for PostgreSQL or an
/// in-memory database).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && !p.starts_with(':'))
        .map(PathBuf::from)
}

/// The files SQLite keeps beside a database in WAL mode.
pub fn sqlite_companions(db: &Path) -> [PathBuf; 2] {
    ["-wal", "-shm"].map(|suffix| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Creates the database file with owner-only permissions before SQLite
/// does (SQLite gives its `-wal` and `-shm` files the database's mode), and
/// takes group and other access away from one made earlier.
pub fn private_sqlite_file(url: &str) -> std::io::Result<()> {
    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        "the database file was readable by others (mode {mode:o}); made it owner-only (0600)"
                    );
                    for file in std::iter::once(path.clone()).chain(sqlite_companions(&path)) {
                        if file.exists() {
                            std::fs::set_permissions(
                                &file,
                                std::fs::Permissions::from_mode(0o600),
                            )?;
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    if !dir.exists() {
                        return Err(std::io::Error::new(
                            e.kind(),
                            format!(
                                "the directory {} does not exist; create it (owned by the service's user, mode 0700)",
                                dir.display()
                            ),
                        ));
                    }
                }
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map(drop)
                    .or_else(|e| {
                        // Another process made it at the same moment.
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub bytes: u64,
    /// Rows per table of the log, as in [`Store::row_counts`].
    pub rows: Vec<(&'static str, i64)>,
}

/// Rows the retention job deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    pub consults: u64,
    pub consult_events: u64,
    pub presence_log: u64,
    /// Report-cache days dropped because no consult is left in them.
    pub report_days: u64,
}

impl Store {
    /// A consistent copy of the SQLite database at `to`, taken while the
    /// server runs: `VACUUM INTO` reads one snapshot (WAL mode lets the
    /// server go on writing meanwhile), so the copy holds every consult
    /// committed before it began, each whole with its events, and nothing
    /// half written. The copy is written beside `to`, checked (integrity,
    /// schema), made owner-only and only then renamed into place.
    pub async fn backup_to(&self, to: &Path) -> Result<BackupSummary> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Invalid(
                "miulink backup copies an SQLite database; for PostgreSQL use pg_dump and \
                 point-in-time recovery (deploy/README.md, \"Backups\")"
                    .into(),
            ));
        }
        if to.exists() {
            return Err(StoreError::Invalid(format!(
                "{} already exists; choose a new name (backups are never overwritten)",
                to.display()
            )));
        }
        let mut partial = to.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let _ = std::fs::remove_file(&partial);
        create_private(&partial).map_err(|e| {
            StoreError::Invalid(format!("cannot create {}: {e}", partial.display()))
        })?;
        let target = partial.to_string_lossy().into_owned();
        let copied = sqlx::query("VACUUM INTO $1")
            .bind(&target)
            .execute(&self.pool)
            .await;
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
        let checked = check_copy(&partial).await;
        let rows = match checked {
            Ok(rows) => rows,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        let file = std::fs::File::open(&partial)
            .and_then(|f| f.sync_all().map(|()| f))
            .map_err(|e| StoreError::Invalid(format!("cannot sync {}: {e}", partial.display())))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        std::fs::rename(&partial, to).map_err(|e| {
            StoreError::Invalid(format!(
                "cannot rename {} to {}: {e}",
                partial.display(),
                to.display()
            ))
        })?;
        Ok(BackupSummary {
            path: to.to_path_buf(),
            bytes,
            rows,
        })
    }

    /// Deletes consults requested before `cutoff` (ms) that are over
    /// (completed, cancelled or abandoned; never one still waiting, in a
    /// call or owing its outcome) with their events, presence records from
    /// before `cutoff`, and the report cache's days left empty.
    ///
    /// One day of consults per transaction (and presence rows in slices),
    /// so that a first run over years of history never holds the database
    /// long: the session log's writer gets its turn between them. Each day
    /// goes whole with its events, and the consults table's triggers bump
    /// the report cache's version of every day that changed, so the
    /// dashboard never shows a half-deleted day.
    pub async fn delete_older_than(&self, cutoff: i64) -> Result<Deleted> {
        const CLOSED: &str = "status IN ('completed', 'cancelled', 'abandoned')";
        const DAY_MS: i64 = 86_400_000;
        let mut deleted = Deleted::default();
        let mut from = i64::MIN;
        loop {
            let next: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT MIN(requested_at) FROM consults \
                 WHERE requested_at >= $1 AND requested_at < $2 AND {CLOSED}"
            ))
            .bind(from)
            .bind(cutoff)
            .fetch_one(&self.pool)
            .await?;
            let Some(next) = next else { break };
            let day = next.div_euclid(DAY_MS);
            let until = ((day + 1) * DAY_MS).min(cutoff);
            let mut tx = self.pool.begin().await?;
            let range = format!("requested_at >= $1 AND requested_at < $2 AND {CLOSED}");
            deleted.consult_events += sqlx::query(&format!(
                "DELETE FROM consult_events WHERE consult_id IN \
                 (SELECT id FROM consults WHERE {range})"
            ))
            .bind(next)
            .bind(until)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            deleted.consults += sqlx::query(&format!("DELETE FROM consults WHERE {range}"))
                .bind(next)
                .bind(until)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // The day's cached blob goes with its last consult (a day with
            // an open consult left keeps it, rebuilt from what remains).
            let left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM consults WHERE requested_at >= $1 AND requested_at < $2",
            )
            .bind(day * DAY_MS)
            .bind((day + 1) * DAY_MS)
            .fetch_one(&mut *tx)
            .await?;
            if left == 0 {
                deleted.report_days += sqlx::query("DELETE FROM report_chunks WHERE chunk = $1")
                    .bind(day)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM report_chunk_versions WHERE chunk = $1")
                    .bind(day)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            from = until;
            tokio::task::yield_now().await;
        }
        loop {
            let n = sqlx::query(
                "DELETE FROM presence_log WHERE id IN \
                 (SELECT id FROM presence_log WHERE at < $1 ORDER BY id LIMIT 5000)",
            )
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
            deleted.presence_log += n;
            if n == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(deleted)
    }
}

/// Creates an empty file only its owner may read (`VACUUM INTO` writes
/// into an empty file and keeps its mode).
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

/// Opens a copy read-only and checks it: SQLite's integrity check, the
/// MIU Link schema present; its rows per table.
pub async fn check_copy(path: &Path) -> Result<Vec<(&'static str, i64)>> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = sqlx::AnyConnection::connect(&url).await.map_err(|e| {
        StoreError::Invalid(format!(
            "{} cannot be opened as a database: {e}",
            path.display()
        ))
    })?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| {
            StoreError::Invalid(format!("{} is not an SQLite database: {e}", path.display()))
        })?;
    if verdict != "ok" {
        return Err(StoreError::Invalid(format!(
            "{} failed SQLite's integrity check: {verdict}",
            path.display()
        )));
    }
    let mut rows = Vec::new();
    for table in super::LOG_TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| {
                StoreError::Invalid(format!(
                    "{} is not an MIU Link database (table {table}: {e})",
                    path.display()
                ))
            })?;
        rows.push((*table, n));
    }
    let _ = conn.close().await;
    Ok(rows)
}

/// Fails unless no process has the SQLite database at `path` open (a
/// server still running on it, a backup in progress): exclusive locking
/// mode takes the file for itself, which WAL mode refuses while anyone else
/// holds it open.
pub async fn ensure_unused(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", path.display());
    let mut conn = sqlx::AnyConnection::connect(&url)
        .await
        .map_err(|e| StoreError::Invalid(format!("cannot open {}: {e}", path.display())))?;
    let taken = async {
        conn.execute("PRAGMA busy_timeout = 0").await?;
        conn.execute("PRAGMA locking_mode = EXCLUSIVE").await?;
        conn.execute("BEGIN EXCLUSIVE").await?;
        conn.execute("SELECT COUNT(*) FROM sqlite_master").await?;
        conn.execute("COMMIT").await?;
        Ok::<(), sqlx::Error>(())
    }
    .await;
    let _ = conn.close().await;
    taken.map_err(|_| {
        StoreError::Invalid(format!(
            "{} is in use (is MIU Link still running on it? stop it first: systemctl stop miulink)",
            path.display()
        ))
    })
}
