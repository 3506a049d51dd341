//! One backup: write a consistent copy of the store to a temporary file in the backup
//! directory, give it its final name, then apply retention. Recorded in `backup_runs`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};

use super::runs::{self, BackupRun, RunStatus};
use super::{backend_name, check_directory, split_pg_password, BackupSettings};
use crate::store::{self, Backend, Store};

/// What a backup needs to know about the store it copies.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub store: &'a Store,
    /// The database URL (`pg_dump` connects with it; SQLite copies through the store).
    pub database_url: &'a str,
    /// Where `<data_dir>/backups` is when the settings name no directory.
    pub data_dir: &'a Path,
    /// Whether the run is recorded in `backup_runs` (false for a database whose migrations
    /// predate the table: `medgate backup now` must not migrate what it backs up).
    pub record: bool,
}

/// Why a run was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// By the scheduler's check at `at`, for this slot key (`<slot start>#<attempt>`).
    /// The run's times are counted from `at` (the check's clock, which tests set).
    Scheduled { slot: String, at: DateTime<Utc> },
    /// Through the API, by this subject.
    Manual { actor: String },
    /// By `medgate backup now`.
    Cli,
}

impl Trigger {
    fn kind(&self) -> &'static str {
        match self {
            Trigger::Scheduled { .. } => "scheduled",
            Trigger::Manual { .. } => "manual",
            Trigger::Cli => "cli",
        }
    }
}

/// Why no run was made (a run that was made and failed is a [`BackupRun`] with status
/// `failed`, not an error).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("a backup of this database is already running")]
    Busy,
    #[error("schedule slot {0} was already taken by another attempt")]
    SlotTaken(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Databases (by URL) with a backup running in this process: one at a time each.
static RUNNING: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

struct RunningGuard(String);

impl RunningGuard {
    fn acquire(key: &str) -> Option<Self> {
        let mut set = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        set.insert(key.to_owned())
            .then(|| RunningGuard(key.to_owned()))
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// The extension of backup files of `backend`.
pub fn file_extension(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "dump",
    }
}

/// Parses one of our file names, `medgate-YYYYMMDDTHHMMSSZ[-N].<ext>`, into its time stamp,
/// its sequence number (1 without a suffix) and its extension; None for any other name.
pub fn parse_backup_name(name: &str) -> Option<(&str, u32, &str)> {
    let rest = name.strip_prefix("medgate-")?;
    let (stem, ext) = rest.rsplit_once('.')?;
    if ext != "sqlite" && ext != "dump" {
        return None;
    }
    let (stamp, seq) = match stem.split_once('-') {
        Some((stamp, seq)) => {
            if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) || seq.len() > 6 {
                return None;
            }
            (stamp, seq.parse().ok()?)
        }
        None => (stem, 1),
    };
    let b = stamp.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    shape.then_some((stamp, seq, ext))
}

/// Takes one backup with `settings` (into `directory` when given instead of the settings'
/// directory), records it and applies retention.
pub async fn run(
    job: &Job<'_>,
    settings: &BackupSettings,
    trigger: Trigger,
    directory: Option<&Path>,
) -> Result<BackupRun, BackupError> {
    let _guard = RunningGuard::acquire(job.database_url).ok_or(BackupError::Busy)?;
    let directory = directory
        .map(Path::to_path_buf)
        .unwrap_or_else(|| settings.effective_directory(job.data_dir));
    let backend = job.store.backend();
    let clock = match &trigger {
        Trigger::Scheduled { at, .. } => *at,
        _ => Utc::now(),
    };
    let mut run = BackupRun {
        id: store::new_id("bkp"),
        kind: trigger.kind().to_owned(),
        slot: match &trigger {
            Trigger::Scheduled { slot, .. } => Some(slot.clone()),
            _ => None,
        },
        status: RunStatus::Running,
        backend: backend_name(backend).to_owned(),
        directory: directory.display().to_string(),
        file_name: None,
        size_bytes: None,
        duration_ms: None,
        pruned: 0,
        error: None,
        started_at: store::timestamp(clock),
        finished_at: None,
        started_by: Some(match &trigger {
            Trigger::Scheduled { .. } => "scheduler".to_owned(),
            Trigger::Manual { actor } => actor.clone(),
            Trigger::Cli => "cli".to_owned(),
        }),
    };
    if job.record {
        if let Err(e) = runs::start(job.store, &run).await {
            if store::is_unique_violation(&e) {
                return Err(BackupError::SlotTaken(run.slot.unwrap_or_default()));
            }
            return Err(e.into());
        }
    }
    let started = Instant::now();
    match produce(job, settings, &directory, &run.id).await {
        Ok(done) => {
            run.status = RunStatus::Succeeded;
            run.file_name = Some(done.file_name);
            run.size_bytes = Some(done.size_bytes);
            run.pruned = done.pruned;
            run.error = done.retention_error;
        }
        Err(message) => {
            run.status = RunStatus::Failed;
            run.error = Some(message);
        }
    }
    let elapsed = started.elapsed();
    run.duration_ms = Some(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
    let elapsed = TimeDelta::from_std(elapsed).unwrap_or(TimeDelta::zero());
    run.finished_at = Some(store::timestamp(clock + elapsed));
    match run.status {
        RunStatus::Succeeded => tracing::info!(
            file = %directory.join(run.file_name.as_deref().unwrap_or_default()).display(),
            size_bytes = run.size_bytes,
            duration_ms = run.duration_ms,
            pruned = run.pruned,
            "backup written"
        ),
        _ => tracing::error!(
            directory = %directory.display(),
            error = run.error.as_deref().unwrap_or_default(),
            "backup failed"
        ),
    }
    if job.record {
        if let Err(e) = runs::finish(job.store, &run).await {
            // The file (if any) is there; the row stays `running` until the scheduler marks
            // it interrupted. Say so in the log rather than losing the outcome.
            tracing::error!(run = %run.id, error = %e, "cannot record the backup's outcome");
        }
    }
    Ok(run)
}

/// What a successful job produced.
struct Produced {
    file_name: String,
    size_bytes: i64,
    pruned: i64,
    retention_error: Option<String>,
}

async fn produce(
    job: &Job<'_>,
    settings: &BackupSettings,
    directory: &Path,
    run_id: &str,
) -> Result<Produced, String> {
    let dir = directory.to_path_buf();
    blocking(move || check_directory(&dir)).await?;
    let backend = job.store.backend();
    let ext = file_extension(backend);
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let temp = directory.join(format!(".medgate-{stamp}-{run_id}.partial"));
    let written = match backend {
        Backend::Sqlite => vacuum_into(job.store, &temp).await,
        Backend::Postgres => pg_dump(job.database_url, settings, &temp).await,
    };
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    let dir = directory.to_path_buf();
    let (file_name, size_bytes) = blocking(move || {
        let placed = place(&temp, &dir, &stamp, ext);
        let _ = std::fs::remove_file(&temp);
        placed
    })
    .await?;
    let dir = directory.to_path_buf();
    let keep = settings.retention_count as usize;
    let (pruned, retention_error) = blocking(move || Ok(prune(&dir, ext, keep))).await?;
    Ok(Produced {
        file_name,
        size_bytes,
        pruned,
        retention_error,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("backup task failed: {e}"))?
}

/// A consistent copy of the SQLite database while the server runs (a read transaction;
/// writers go on under WAL). The copy is in rollback-journal mode.
async fn vacuum_into(store: &Store, temp: &Path) -> Result<(), String> {
    let target = temp
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", temp.display()))?;
    sqlx::query("VACUUM INTO $1")
        .bind(target.to_owned())
        .execute(store.reader())
        .await
        .map(|_| ())
        .map_err(|e| format!("VACUUM INTO {}: {e}", temp.display()))
}

/// The `pg_dump` of the settings (or `PATH`).
pub(crate) fn pg_tool(settings: &BackupSettings, tool: &str) -> PathBuf {
    match &settings.pg_dump_path {
        None => PathBuf::from(tool),
        Some(dump) if tool == "pg_dump" => PathBuf::from(dump),
        Some(dump) => {
            let sibling = Path::new(dump).with_file_name(tool);
            if sibling.exists() {
                sibling
            } else {
                PathBuf::from(tool)
            }
        }
    }
}

/// Runs a PostgreSQL client tool with the database URL (password through `PGPASSWORD`);
/// an error names the tool and carries the end of its standard error.
pub(crate) async fn run_pg_tool(
    program: &Path,
    args: &[String],
    database_url: Option<&str>,
) -> Result<Vec<u8>, String> {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(database_url) = database_url {
        let (url, password) = split_pg_password(database_url);
        command.arg(format!("--dbname={url}"));
        if let Some(pw) = password {
            command.env("PGPASSWORD", pw);
        }
    }
    let name = program.display();
    let output = command.output().await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{name} not found: install the PostgreSQL client tools (the server's major \
                 version or newer) or set pg_dump_path in the backup settings"
            )
        } else {
            format!("cannot run {name}: {e}")
        }
    })?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!(
            "{name} failed ({}): {}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr), 2000)
        ))
    }
}

async fn pg_dump(database_url: &str, settings: &BackupSettings, temp: &Path) -> Result<(), String> {
    let args = [
        "--format=custom".to_owned(),
        "--no-password".to_owned(),
        format!("--file={}", temp.display()),
    ];
    run_pg_tool(&pg_tool(settings, "pg_dump"), &args, Some(database_url))
        .await
        .map(|_| ())
}

/// The last `max` bytes of `text` (on a character boundary), trimmed.
fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

/// Makes `temp` durable and gives it its final name without ever replacing a file (a second
/// backup in the same second gets `-2`, `-3`, ...). Returns the name and the size.
fn place(temp: &Path, dir: &Path, stamp: &str, ext: &str) -> Result<(String, i64), String> {
    let file = std::fs::File::open(temp).map_err(|e| format!("{}: {e}", temp.display()))?;
    file.sync_all()
        .map_err(|e| format!("syncing {}: {e}", temp.display()))?;
    let size = file
        .metadata()
        .map(|m| i64::try_from(m.len()).unwrap_or(i64::MAX))
        .map_err(|e| format!("{}: {e}", temp.display()))?;
    drop(file);
    for seq in 1..1000 {
        let name = if seq == 1 {
            format!("medgate-{stamp}.{ext}")
        } else {
            format!("medgate-{stamp}-{seq}.{ext}")
        };
        let target = dir.join(&name);
        // A hard link fails when the name exists: no check-then-rename race.
        match std::fs::hard_link(temp, &target) {
            Ok(()) => {
                sync_dir(dir);
                return Ok((name, size));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) if !target.exists() => {
                // A file system without hard links: rename (the name was free a moment ago).
                std::fs::rename(temp, &target)
                    .map_err(|e| format!("renaming to {}: {e}", target.display()))?;
                sync_dir(dir);
                return Ok((name, size));
            }
            Err(_) => continue,
        }
    }
    Err(format!(
        "no free backup file name for {stamp} in {}",
        dir.display()
    ))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Deletes our oldest `.<ext>` backups in `dir` beyond the newest `keep`. Files not named
/// like ours are never touched. Returns how many were deleted and any problem.
fn prune(dir: &Path, ext: &str, keep: usize) -> (i64, Option<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return (
                0,
                Some(format!("retention: reading {}: {e}", dir.display())),
            )
        }
    };
    let mut ours: Vec<(String, u32, String)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (stamp, seq, file_ext) = parse_backup_name(&name)?;
            (file_ext == ext).then(|| (stamp.to_owned(), seq, name.clone()))
        })
        .collect();
    // Newest first.
    ours.sort_by(|a, b| (&b.0, b.1).cmp(&(&a.0, a.1)));
    let mut pruned = 0;
    let mut problems = Vec::new();
    for (_, _, name) in ours.iter().skip(keep) {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => pruned += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    let problem = (!problems.is_empty())
        .then(|| format!("retention could not delete {}", problems.join("; ")));
    (pruned, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse_backup_name("medgate-20260131T020000Z.sqlite"),
            Some(("20260131T020000Z", 1, "sqlite"))
        );
        assert_eq!(
            parse_backup_name("medgate-20260131T020000Z-3.dump"),
            Some(("20260131T020000Z", 3, "dump"))
        );
        for other in [
            "medgate-20260131T020000Z.db",
            "medgate-2026013T020000Z.sqlite",
            "medgate-20260131T020000Z-.sqlite",
            "medgate-20260131T020000Z-x.sqlite",
            "medgate.db",
            "notes-20260131T020000Z.sqlite",
            ".medgate-20260131T020000Z-bkp_1.partial",
        ] {
            assert_eq!(parse_backup_name(other), None, "{other}");
        }
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("  short ", 10), "short");
        let t = tail("ééééé", 3);
        assert!(t.starts_with("..."));
    }
}
