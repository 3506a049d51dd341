//! `medgate backup now` and `medgate backup restore`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use medgate_config::settings::redact_url;
use medgate_config::Settings;
use medgate_control_plane::backup::{self, restore, BackupError, BackupSettings, Job, Trigger};
use medgate_control_plane::store::Backend;
use medgate_control_plane::Store;

/// Writes one backup (a consistent copy, also while the server runs) and prints its path.
pub async fn now(settings: &Settings, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let url = settings.effective_database_url();
    require_database(settings, &url)?;
    let store = Store::connect(&url).await?;
    let record = backup::runs_table_exists(&store).await;
    if !record {
        eprintln!(
            "note: this database predates backup history (run `medgate migrate` to record runs); \
             backing up without recording"
        );
    }
    let backup_settings = stored_settings(&store).await;
    let dir = match dir {
        Some(d) => Some(
            std::path::absolute(&d).with_context(|| format!("backup directory {}", d.display()))?,
        ),
        None => None,
    };
    let job = Job {
        store: &store,
        database_url: &url,
        data_dir: &settings.data_dir,
        record,
    };
    let outcome = backup::run(&job, &backup_settings, Trigger::Cli, dir.as_deref()).await;
    store.close().await;
    let run = match outcome {
        Ok(run) => run,
        Err(BackupError::Busy) => bail!("a backup of this database is already running"),
        Err(e) => return Err(e.into()),
    };
    match (&run.file_name, run.status) {
        (Some(name), backup::RunStatus::Succeeded) => {
            println!("{}", Path::new(&run.directory).join(name).display());
            eprintln!(
                "backup written: {} bytes in {} ms{}",
                run.size_bytes.unwrap_or_default(),
                run.duration_ms.unwrap_or_default(),
                match run.pruned {
                    0 => String::new(),
                    n => format!(", {n} old backup(s) deleted by retention"),
                }
            );
            if let Some(problem) = &run.error {
                eprintln!("warning: {problem}");
            }
            Ok(ExitCode::SUCCESS)
        }
        _ => bail!(
            "backup failed: {}",
            run.error.as_deref().unwrap_or("unknown error")
        ),
    }
}

/// Replaces the configured database with the backup `file` (the server must be stopped).
pub async fn restore(settings: &Settings, file: &Path, yes: bool) -> anyhow::Result<ExitCode> {
    let url = settings.effective_database_url();
    if !file.is_file() {
        bail!("no backup file at {}", file.display());
    }
    let backend = if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    let target = match backend {
        Backend::Sqlite => backup::sqlite_path(&url)
            .context("the configured SQLite database is in memory: nothing to restore into")?
            .display()
            .to_string(),
        Backend::Postgres => redact_url(&url),
    };
    if !yes && !confirm(&target, file)? {
        eprintln!("not restored");
        return Ok(ExitCode::from(2));
    }
    let restored = match backend {
        Backend::Sqlite => {
            let db = backup::sqlite_path(&url).context("in-memory database")?;
            restore::restore_sqlite(&db, file).await
        }
        Backend::Postgres => {
            let store = Store::connect(&url).await?;
            let backup_settings = stored_settings(&store).await;
            store.close().await;
            let keep_dir = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            restore::restore_postgres(&url, file, &backup_settings, &keep_dir).await
        }
    };
    let restored = match restored {
        Ok(r) => r,
        Err(e) => bail!("restore failed: {e}"),
    };
    println!("restored {} into {target}", file.display());
    if let Some(previous) = &restored.previous {
        println!("the replaced database was kept as {}", previous.display());
    }
    if let Some(v) = restored.migration_version {
        println!(
            "the restored database is at migration {v}; newer migrations are applied when \
             medgate starts"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on a terminal; refuses without one.
fn confirm(target: &str, file: &Path) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "restoring {} replaces the database {target}: pass --yes to confirm",
            file.display()
        );
    }
    eprint!(
        "Replace the database {target} with {}? Type yes to continue: ",
        file.display()
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim().eq_ignore_ascii_case("yes"))
}

fn require_database(settings: &Settings, url: &str) -> anyhow::Result<()> {
    if settings.database_url.is_empty() {
        let embedded = settings.data_dir.join("medgate.db");
        if !embedded.exists() {
            bail!(
                "no database at {} (check --data-dir or MEDGATE_DATABASE_URL)",
                embedded.display()
            );
        }
    } else if let Some(path) = backup::sqlite_path(url) {
        if !path.exists() {
            bail!("no database at {}", path.display());
        }
    }
    Ok(())
}

/// The stored backup settings; the defaults when the database has none (or predates them).
async fn stored_settings(store: &Store) -> BackupSettings {
    match backup::load_settings(store).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "no stored backup settings; using the defaults");
            BackupSettings::default()
        }
    }
}
