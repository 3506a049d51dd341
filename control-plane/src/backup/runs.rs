//! The `backup_runs` table: one row per attempt, inserted before the job starts (a scheduled
//! attempt's unique `slot` is its claim) and completed when it ends.

use serde::Serialize;
use sqlx::Row;

use crate::api::pagination::Page;
use crate::store::{self, Store};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(RunStatus::Running),
            "succeeded" => Some(RunStatus::Succeeded),
            "failed" => Some(RunStatus::Failed),
            _ => None,
        }
    }
}

/// One backup attempt.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BackupRun {
    pub id: String,
    /// `scheduled`, `manual` (API) or `cli` (`medgate backup now`).
    pub kind: String,
    /// Scheduled runs: `<slot start>#<attempt>`; null otherwise.
    pub slot: Option<String>,
    pub status: RunStatus,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Directory the backup was written to.
    pub directory: String,
    /// File name within `directory` (set once the backup is written).
    pub file_name: Option<String>,
    pub size_bytes: Option<i64>,
    pub duration_ms: Option<i64>,
    /// Old backups deleted by retention after this one.
    pub pruned: i64,
    /// Why the run failed (or a retention problem after a successful one).
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Subject of the caller (manual runs), `cli` or `scheduler`.
    pub started_by: Option<String>,
}

const COLUMNS: &str = "id, kind, slot, status, backend, directory, file_name, size_bytes, \
                       duration_ms, pruned, error, started_at, finished_at, started_by";

fn run_of(row: &sqlx::any::AnyRow) -> Result<BackupRun, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(BackupRun {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        slot: row.try_get("slot")?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        backend: row.try_get("backend")?,
        directory: row.try_get("directory")?,
        file_name: row.try_get("file_name")?,
        size_bytes: row.try_get("size_bytes")?,
        duration_ms: row.try_get("duration_ms")?,
        pruned: row.try_get("pruned")?,
        error: row.try_get("error")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        started_by: row.try_get("started_by")?,
    })
}

/// Inserts a `running` row. With a slot that another attempt already holds, this fails with
/// a unique violation ([`store::is_unique_violation`]).
pub(crate) async fn start(store: &Store, run: &BackupRun) -> Result<(), sqlx::Error> {
    let mut tx = store.begin().await?;
    sqlx::query(&format!(
        "INSERT INTO backup_runs ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(run.id.clone())
    .bind(run.kind.clone())
    .bind(run.slot.clone())
    .bind(run.status.as_str())
    .bind(run.backend.clone())
    .bind(run.directory.clone())
    .bind(run.file_name.clone())
    .bind(run.size_bytes)
    .bind(run.duration_ms)
    .bind(run.pruned)
    .bind(run.error.clone())
    .bind(run.started_at.clone())
    .bind(run.finished_at.clone())
    .bind(run.started_by.clone())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Records the outcome of a run.
pub(crate) async fn finish(store: &Store, run: &BackupRun) -> Result<(), sqlx::Error> {
    let mut tx = store.begin().await?;
    sqlx::query(
        "UPDATE backup_runs SET status = $1, file_name = $2, size_bytes = $3, \
         duration_ms = $4, pruned = $5, error = $6, finished_at = $7 WHERE id = $8",
    )
    .bind(run.status.as_str())
    .bind(run.file_name.clone())
    .bind(run.size_bytes)
    .bind(run.duration_ms)
    .bind(run.pruned)
    .bind(run.error.clone())
    .bind(run.finished_at.clone())
    .bind(run.id.clone())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Marks a run that never finished (its process died) as failed.
pub(crate) async fn mark_interrupted(
    store: &Store,
    id: &str,
    message: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = store.begin().await?;
    sqlx::query(
        "UPDATE backup_runs SET status = 'failed', error = $1, finished_at = $2 \
         WHERE id = $3 AND status = 'running'",
    )
    .bind(message.to_owned())
    .bind(store::now())
    .bind(id.to_owned())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Runs, newest first, optionally of one status.
pub async fn list_runs(
    store: &Store,
    status: Option<RunStatus>,
    page: u32,
    page_size: u32,
) -> Result<Page<BackupRun>, sqlx::Error> {
    let filter = if status.is_some() {
        " WHERE status = $1"
    } else {
        ""
    };
    let count_sql = format!("SELECT COUNT(*) FROM backup_runs{filter}");
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
    if let Some(s) = status {
        count = count.bind(s.as_str());
    }
    let total = count.fetch_one(store.reader()).await?;
    let n = if status.is_some() { 2 } else { 1 };
    let sql = format!(
        "SELECT {COLUMNS} FROM backup_runs{filter} ORDER BY started_at DESC, id DESC \
         LIMIT ${n} OFFSET ${}",
        n + 1
    );
    let mut query = sqlx::query(&sql);
    if let Some(s) = status {
        query = query.bind(s.as_str());
    }
    let rows = query
        .bind(i64::from(page_size))
        .bind(i64::from(page.saturating_sub(1)) * i64::from(page_size))
        .fetch_all(store.reader())
        .await?;
    Ok(Page {
        items: rows.iter().map(run_of).collect::<Result<_, _>>()?,
        total: u64::try_from(total).unwrap_or_default(),
        page,
        page_size,
    })
}

/// The latest run (any status).
pub async fn last_run(store: &Store) -> Result<Option<BackupRun>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM backup_runs ORDER BY started_at DESC, id DESC LIMIT 1"
    ))
    .fetch_optional(store.reader())
    .await?;
    row.as_ref().map(run_of).transpose()
}

/// Whether a run succeeded that started at or after `since` (a stored timestamp).
pub(crate) async fn succeeded_since(store: &Store, since: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM backup_runs WHERE status = 'succeeded' AND started_at >= $1",
    )
    .bind(since.to_owned())
    .fetch_one(store.reader())
    .await?;
    Ok(n > 0)
}

/// The attempts of one schedule slot (slot keys `<prefix>#<n>`), oldest first.
pub(crate) async fn slot_attempts(
    store: &Store,
    prefix: &str,
) -> Result<Vec<BackupRun>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM backup_runs WHERE slot LIKE $1 ORDER BY started_at, id"
    ))
    .bind(format!("{prefix}#%"))
    .fetch_all(store.reader())
    .await?;
    rows.iter().map(run_of).collect()
}

/// Whether the `backup_runs` table exists (a database not migrated to this version has
/// none; `medgate backup now` then backs up without recording).
pub async fn table_exists(store: &Store) -> bool {
    sqlx::query("SELECT COUNT(*) FROM backup_runs")
        .fetch_one(store.reader())
        .await
        .is_ok()
}
