//! Restoring a backup (`medgate backup restore`), with the server stopped.
//!
//! SQLite: the file is copied next to the database and checked there (an SQLite database
//! that passes `PRAGMA quick_check` and has medgate's migrations table); the live database
//! is then opened in exclusive locking mode, which fails while any other process has it
//! open (a running control plane always does, see `spawn_backup_scheduler`); under that
//! lock its WAL is checkpointed, it is copied to `<db>.before-restore-<ts>` and the checked
//! copy is renamed over it. Leftover `-wal`/`-shm` files of the old database are removed.
//!
//! PostgreSQL: the dump must be a `pg_dump --format=custom` archive with medgate's
//! migrations table; the current database is first dumped to
//! `medgate-before-restore-<ts>.dump` next to the restored file, then
//! `pg_restore --clean --if-exists --no-owner --single-transaction` replaces the objects in
//! the archive (all or nothing).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode};
use sqlx::{Connection, SqliteConnection};

use super::job::{pg_tool, run_pg_tool};
use super::BackupSettings;

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// Where the replaced database was kept (None when there was none).
    pub previous: Option<PathBuf>,
    /// The highest migration version in the restored database (SQLite), if known.
    pub migration_version: Option<i64>,
}

/// What a backup file is, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Sqlite,
    PgCustom,
    Unknown,
}

/// Reads the first bytes of `file`.
pub fn sniff(file: &Path) -> Result<FileKind, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(format!("{}: {e}", file.display())),
        }
    }
    Ok(if &head[..n] == b"SQLite format 3\0" {
        FileKind::Sqlite
    } else if head[..n].starts_with(b"PGDMP") {
        FileKind::PgCustom
    } else {
        FileKind::Unknown
    })
}

fn stamp() -> String {
    Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Replaces the SQLite database at `db` with the backup `file` (see the module docs).
pub async fn restore_sqlite(db: &Path, file: &Path) -> Result<Restored, String> {
    match sniff(file)? {
        FileKind::Sqlite => {}
        FileKind::PgCustom => {
            return Err(format!(
                "{} is a PostgreSQL dump, but this medgate's database is SQLite ({})",
                file.display(),
                db.display()
            ))
        }
        FileKind::Unknown => return Err(format!("{} is not an SQLite database", file.display())),
    }
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let temp = dir.join(format!(
        ".{}.restore-{}",
        db.file_name().unwrap_or_default().to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = swap_in(db, file, &temp).await;
    for leftover in [
        temp.clone(),
        sibling(&temp, "-journal"),
        sibling(&temp, "-wal"),
        sibling(&temp, "-shm"),
    ] {
        let _ = std::fs::remove_file(leftover);
    }
    result
}

async fn swap_in(db: &Path, file: &Path, temp: &Path) -> Result<Restored, String> {
    std::fs::copy(file, temp)
        .map_err(|e| format!("copying {} to {}: {e}", file.display(), temp.display()))?;
    let version = check_medgate_db(temp)
        .await
        .map_err(|e| format!("{} cannot be restored: {e}", file.display()))?;
    std::fs::File::open(temp)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("syncing {}: {e}", temp.display()))?;

    let mut previous = None;
    let lock = if db.exists() {
        let mut conn = lock_exclusive(db).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await
            .map_err(|e| format!("checkpointing {}: {e}", db.display()))?;
        let base = format!(".before-restore-{}", stamp());
        let keep = (1..100)
            .map(|n| match n {
                1 => sibling(db, &base),
                n => sibling(db, &format!("{base}-{n}")),
            })
            .find(|p| !p.exists())
            .ok_or_else(|| format!("no free name for a copy of {}", db.display()))?;
        let keep_text = keep
            .to_str()
            .ok_or_else(|| format!("{} is not valid UTF-8", keep.display()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(keep_text)
            .execute(&mut conn)
            .await
            .map_err(|e| format!("keeping the current database as {}: {e}", keep.display()))?;
        previous = Some(keep);
        Some(conn)
    } else {
        None
    };
    // Under the lock, so no server can open the old file in between.
    let renamed = std::fs::rename(temp, db)
        .map_err(|e| format!("renaming {} to {}: {e}", temp.display(), db.display()));
    if let Some(conn) = lock {
        let _ = conn.close().await;
    }
    renamed?;
    // The old database's WAL and shared-memory index must not be applied to the new file.
    for stale in [sibling(db, "-wal"), sibling(db, "-shm")] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing {}: {e}", stale.display())),
        }
    }
    if let Some(parent) = db.parent() {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(Restored {
        previous,
        migration_version: version,
    })
}

/// Opens `db` in exclusive locking mode; fails (clearly) while another process has it open.
async fn lock_exclusive(db: &Path) -> Result<SqliteConnection, String> {
    let in_use = || {
        format!(
            "the database {} is in use by another process: stop medgate (serve / \
             control-plane) before restoring",
            db.display()
        )
    };
    let options = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(false)
        .locking_mode(SqliteLockingMode::Exclusive)
        .busy_timeout(Duration::from_secs(2));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| format!("opening {}: {e}", db.display()))?;
    // The first read takes the lock (and fails while others hold theirs).
    match sqlx::query("SELECT COUNT(*) FROM sqlite_master")
        .execute(&mut conn)
        .await
    {
        Ok(_) => Ok(conn),
        Err(e) if is_busy(&e) => Err(in_use()),
        Err(e) => Err(format!("opening {}: {e}", db.display())),
    }
}

fn is_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            matches!(
                db.code().as_deref(),
                Some("5") | Some("6") | Some("261") | Some("517")
            ) || db.message().contains("locked")
                || db.message().contains("busy")
        }
        _ => false,
    }
}

/// Checks that `path` is a sound SQLite database with medgate's migrations table; returns
/// its highest applied migration. Sets the copy to rollback-journal mode (the server turns
/// WAL on again when it opens it).
async fn check_medgate_db(path: &Path) -> Result<Option<i64>, String> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Delete);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| format!("not a readable SQLite database ({e})"))?;
    let result = async {
        let check: String = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| format!("not a readable SQLite database ({e})"))?;
        if check != "ok" {
            return Err(format!("the SQLite integrity check failed: {check}"));
        }
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|_| "not a medgate database (it has no _sqlx_migrations table)".to_owned())
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Refuses while medgate processes (control planes, other commands) have sessions open on
/// the database: a restore under a running control plane would leave it serving from
/// caches the restore just invalidated. Sessions of a killed process end with it.
async fn refuse_while_in_use(database_url: &str) -> Result<(), String> {
    let mut conn = sqlx::PgConnection::connect(database_url)
        .await
        .map_err(|e| format!("connecting to the database: {e}"))?;
    // Sessions that are closing (this command's own pool, a control plane that just stopped)
    // leave `pg_stat_activity` a moment after their clients hang up: give them 2 s.
    let mut clients = Vec::new();
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        clients = sqlx::query_scalar::<_, String>(
            "SELECT COALESCE(host(client_addr), 'a local socket') FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1 \
               AND pid <> pg_backend_pid()",
        )
        .bind(crate::store::PG_APPLICATION_NAME)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| format!("listing the database's sessions: {e}"))?;
        if clients.is_empty() {
            break;
        }
    }
    let _ = conn.close().await;
    if clients.is_empty() {
        return Ok(());
    }
    let sessions = clients.len();
    clients.sort();
    clients.dedup();
    Err(format!(
        "the database is in use by {sessions} medgate session(s) from {}: stop every control \
         plane (`medgate serve`, `medgate control-plane`) first",
        clients.join(", ")
    ))
}

/// Restores the `pg_dump --format=custom` archive `file` into the PostgreSQL database at
/// `database_url`, after dumping the current database into `keep_dir`.
pub async fn restore_postgres(
    database_url: &str,
    file: &Path,
    settings: &BackupSettings,
    keep_dir: &Path,
) -> Result<Restored, String> {
    match sniff(file)? {
        FileKind::PgCustom => {}
        FileKind::Sqlite => {
            return Err(format!(
                "{} is an SQLite database, but this medgate's database is PostgreSQL",
                file.display()
            ))
        }
        FileKind::Unknown => {
            return Err(format!(
                "{} is not a PostgreSQL custom-format dump (pg_dump --format=custom)",
                file.display()
            ))
        }
    }
    refuse_while_in_use(database_url).await?;
    let pg_restore = pg_tool(settings, "pg_restore");
    let file_arg = file
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", file.display()))?
        .to_owned();
    let listing = run_pg_tool(&pg_restore, &["--list".to_owned(), file_arg.clone()], None)
        .await
        .map_err(|e| format!("{} cannot be read: {e}", file.display()))?;
    if !String::from_utf8_lossy(&listing).contains("_sqlx_migrations") {
        return Err(format!(
            "{} is not a medgate dump (it has no _sqlx_migrations table)",
            file.display()
        ));
    }
    std::fs::create_dir_all(keep_dir)
        .map_err(|e| format!("creating {}: {e}", keep_dir.display()))?;
    let base = format!("medgate-before-restore-{}", stamp());
    let keep = (1..100)
        .map(|n| match n {
            1 => keep_dir.join(format!("{base}.dump")),
            n => keep_dir.join(format!("{base}-{n}.dump")),
        })
        .find(|p| !p.exists())
        .ok_or_else(|| format!("no free name for a dump in {}", keep_dir.display()))?;
    run_pg_tool(
        &pg_tool(settings, "pg_dump"),
        &[
            "--format=custom".to_owned(),
            "--no-password".to_owned(),
            format!("--file={}", keep.display()),
        ],
        Some(database_url),
    )
    .await
    .map_err(|e| format!("keeping the current database as {}: {e}", keep.display()))?;
    run_pg_tool(
        &pg_restore,
        &[
            "--clean".to_owned(),
            "--if-exists".to_owned(),
            "--no-owner".to_owned(),
            "--single-transaction".to_owned(),
            "--exit-on-error".to_owned(),
            "--no-password".to_owned(),
            file_arg,
        ],
        Some(database_url),
    )
    .await?;
    Ok(Restored {
        previous: Some(keep),
        migration_version: None,
    })
}
