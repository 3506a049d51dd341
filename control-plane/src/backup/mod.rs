//! Backups of the store (API §9, backup settings).
//!
//! - [`BackupSettings`]: the `backup` settings section (schedule, directory, retention,
//!   `pg_dump` path), validated by [`BackupSettings::validate`] and
//!   [`check_directory`].
//! - `job`: one backup. SQLite: `VACUUM INTO` a temporary file (a consistent copy taken
//!   while the server runs, under WAL), then linked to its final name
//!   `medgate-YYYYMMDDTHHMMSSZ.sqlite`. PostgreSQL: `pg_dump --format=custom` into
//!   `medgate-YYYYMMDDTHHMMSSZ.dump`. Then retention deletes the oldest of our own files
//!   beyond `retention_count` (never a file that does not match our naming pattern).
//! - `runs`: the `backup_runs` table: every attempt is recorded before it starts and
//!   completed when it ends, failures included.
//! - `schedule`: slots (every `interval_hours`, anchored at `at` UTC), the due check and the
//!   background scheduler ([`spawn_backup_scheduler`]).
//! - `restore`: what `medgate backup restore` does (SQLite file swap; `pg_restore`).

mod job;
pub mod restore;
mod runs;
mod schedule;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{Backend, Store};

pub use job::{file_extension, parse_backup_name, run, BackupError, Job, Trigger};
pub use runs::{last_run, list_runs, table_exists as runs_table_exists, BackupRun, RunStatus};
pub use schedule::{
    check_once, hold_sqlite, next_run_at, slot_start, spawn_backup_scheduler, tick_at, Tick,
    SCHEDULER_INTERVAL,
};

/// Name of the settings section.
pub const SECTION: &str = "backup";

/// `interval_hours` values accepted: divisors of a day, or whole days up to a week, so slots
/// fall on the same times every day (or every N days).
pub const INTERVALS: &[u32] = &[1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 96, 120, 144, 168];

/// Bounds of `retention_count`.
pub const MAX_RETENTION: u32 = 365;

/// The `backup` settings section as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct BackupSettings {
    /// Whether scheduled backups run (manual runs work either way).
    pub enabled: bool,
    /// Hours between scheduled backups: 1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 96, 120, 144 or 168.
    pub interval_hours: u32,
    /// Time of day (UTC, `HH:MM`) the schedule is anchored at: with `interval_hours` 6 and
    /// `at` 02:30, backups run at 02:30, 08:30, 14:30 and 20:30 UTC; with 48, every other day
    /// at 02:30 (days counted from 1970-01-01).
    pub at: String,
    /// Absolute directory the backups are written to; `null` means `<data_dir>/backups` of
    /// the control plane that runs the backup.
    pub directory: Option<String>,
    /// Number of backups kept (1 to 365); older files of ours in the directory are deleted.
    pub retention_count: u32,
    /// Absolute path of a file named `pg_dump` (PostgreSQL only); `null` looks it up on
    /// `PATH`. `pg_restore` is looked up next to it.
    pub pg_dump_path: Option<String>,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_hours: 24,
            at: "02:00".into(),
            directory: None,
            retention_count: 7,
            pg_dump_path: None,
        }
    }
}

/// A settings value that breaks a rule: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl BackupSettings {
    /// Checks every field that needs no file system access (see [`check_directory`] and
    /// [`check_executable`] for the others).
    pub fn validate(&self) -> Result<(), Invalid> {
        if !INTERVALS.contains(&self.interval_hours) {
            return Err(Invalid::new(
                "interval_hours",
                format!("must be one of {INTERVALS:?}"),
            ));
        }
        parse_at(&self.at)?;
        if !(1..=MAX_RETENTION).contains(&self.retention_count) {
            return Err(Invalid::new(
                "retention_count",
                format!("must be between 1 and {MAX_RETENTION}"),
            ));
        }
        if let Some(dir) = &self.directory {
            check_path_text("directory", dir)?;
        }
        if let Some(path) = &self.pg_dump_path {
            check_path_text("pg_dump_path", path)?;
            // Only a program named pg_dump: this setting must not run arbitrary executables.
            if Path::new(path).file_name() != Some(std::ffi::OsStr::new("pg_dump")) {
                return Err(Invalid::new(
                    "pg_dump_path",
                    "must name a file called pg_dump, e.g. /usr/lib/postgresql/16/bin/pg_dump",
                ));
            }
        }
        Ok(())
    }

    /// Minutes after midnight UTC of `at` (valid settings only; 0 otherwise).
    pub fn at_minutes(&self) -> u32 {
        parse_at(&self.at).unwrap_or(0)
    }

    /// The directory backups go to: the configured one, or `<data_dir>/backups`.
    pub fn effective_directory(&self, data_dir: &Path) -> PathBuf {
        match &self.directory {
            Some(d) => PathBuf::from(d),
            None => data_dir.join("backups"),
        }
    }
}

/// `HH:MM` (24-hour, UTC) into minutes after midnight.
fn parse_at(text: &str) -> Result<u32, Invalid> {
    let bad = || Invalid::new("at", "must be a UTC time of day as HH:MM, e.g. 02:30");
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(bad());
    }
    let (h, m) = (&text[..2], &text[3..]);
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn check_path_text(field: &'static str, text: &str) -> Result<(), Invalid> {
    if text.is_empty() || text.len() > 4096 || text.contains('\0') {
        return Err(Invalid::new(
            field,
            "must be an absolute path of 1 to 4096 characters",
        ));
    }
    if !Path::new(text).is_absolute() {
        return Err(Invalid::new(
            field,
            format!("must be an absolute path (got {text:?})"),
        ));
    }
    Ok(())
}

/// Makes sure `dir` exists (creating it) and that this process can write files in it.
pub fn check_directory(dir: &Path) -> Result<(), String> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Err(format!("cannot create directory {}: {e}", dir.display()));
    }
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let probe = dir.join(format!(
        ".medgate-write-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    match std::fs::write(&probe, b"medgate") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("cannot write in {}: {e}", dir.display())),
    }
}

/// Makes sure `path` is an executable file.
pub fn check_executable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("{} is not executable", path.display()));
        }
    }
    Ok(())
}

/// The stored settings (defaults when never written).
pub async fn load_settings(store: &Store) -> Result<BackupSettings, sqlx::Error> {
    crate::settings::store::load(store, SECTION).await
}

/// `sqlite` or `postgres`, as recorded in runs.
pub fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// The file of an SQLite database URL (`sqlite://path?mode=rwc`, `sqlite:path`,
/// `sqlite:///abs/path`); None for an in-memory database or another scheme.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || rest.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// A libpq connection URI without its password, and the password (percent-decoded), so the
/// password goes to `pg_dump`/`pg_restore` through `PGPASSWORD` rather than the process list.
pub fn split_pg_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_owned(), None);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return (url.to_owned(), None);
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return (url.to_owned(), None);
    };
    let stripped = format!(
        "{}{}@{}{}",
        &url[..scheme_end + 3],
        &userinfo[..colon],
        &authority[at + 1..],
        &rest[authority_end..]
    );
    (stripped, Some(percent_decode(&userinfo[colon + 1..])))
}

fn percent_decode(text: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_parses_strictly() {
        assert_eq!(parse_at("00:00"), Ok(0));
        assert_eq!(parse_at("23:59"), Ok(23 * 60 + 59));
        for bad in [
            "24:00", "2:30", "02:60", "0230", "ab:cd", "+1:00", "02:3 ", "",
        ] {
            assert!(parse_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/medgate/medgate.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/medgate/medgate.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:data/m.db"),
            Some(PathBuf::from("data/m.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }

    #[test]
    fn pg_password_is_split_off() {
        assert_eq!(
            split_pg_password("postgres://u:p%40ss@h:5432/db?sslmode=require"),
            (
                "postgres://u@h:5432/db?sslmode=require".to_owned(),
                Some("p@ss".to_owned())
            )
        );
        assert_eq!(
            split_pg_password("postgres://u@h/db"),
            ("postgres://u@h/db".to_owned(), None)
        );
        assert_eq!(
            split_pg_password("postgres://h/db"),
            ("postgres://h/db".to_owned(), None)
        );
    }
}
