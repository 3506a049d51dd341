//! Scheduled backups.
//!
//! Time is cut into slots of `interval_hours`, anchored at `at` (UTC) on 1970-01-01. A slot
//! is covered once any backup (scheduled, manual or CLI) succeeded after it started. An
//! uncovered slot is due: the scheduler claims attempt `n` of it by inserting a run with the
//! unique slot key `<slot start>#<n>` before it starts, so two control planes checking at
//! the same moment cannot both run it (the loser's insert fails and it does nothing). A
//! failed attempt is retried after [`RETRY_AFTER`], at most [`MAX_ATTEMPTS`] times per slot;
//! an attempt still `running` after [`STALE_AFTER`] (its process died) is marked failed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::job::{self, BackupError, Job, Trigger};
use super::runs::{self, BackupRun, RunStatus};
use super::{load_settings, sqlite_path, BackupSettings};
use crate::state::AppState;
use crate::store::{self, Backend};

/// How often the scheduler checks whether a backup is due.
pub const SCHEDULER_INTERVAL: Duration = Duration::from_secs(60);
/// Attempts per slot.
pub const MAX_ATTEMPTS: usize = 3;
/// Wait after a failed attempt before the next one.
pub const RETRY_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
/// A run `running` for longer than this is taken as interrupted.
pub const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(6);

/// What one scheduler check did.
#[derive(Debug)]
pub enum Tick {
    /// Scheduled backups are off.
    Disabled,
    /// A backup succeeded in the current slot.
    Covered,
    /// An attempt of this slot is running (here or on another control plane).
    InProgress,
    /// The last attempt failed less than [`RETRY_AFTER`] ago.
    RetryLater,
    /// [`MAX_ATTEMPTS`] attempts failed; the next slot will try again.
    GaveUp,
    /// Another control plane claimed the attempt first, or a backup is running here.
    Skipped,
    /// This check ran a backup (succeeded or failed).
    Ran(Box<BackupRun>),
}

/// Start of the slot `now` is in.
pub fn slot_start(settings: &BackupSettings, now: DateTime<Utc>) -> DateTime<Utc> {
    let period = i64::from(settings.interval_hours.max(1)) * 3600;
    let anchor = i64::from(settings.at_minutes()) * 60;
    let t = now.timestamp();
    let start = anchor + (t - anchor).div_euclid(period) * period;
    DateTime::from_timestamp(start, 0).unwrap_or(now)
}

fn slot_key(start: DateTime<Utc>) -> String {
    start.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// When the next scheduled backup is expected: `now` when the current slot is not covered
/// yet (the scheduler runs it within a minute), else the start of the next slot. None while
/// scheduled backups are off.
pub async fn next_run_at(
    store: &store::Store,
    settings: &BackupSettings,
    now: DateTime<Utc>,
) -> Result<Option<String>, sqlx::Error> {
    if !settings.enabled {
        return Ok(None);
    }
    let start = slot_start(settings, now);
    if runs::succeeded_since(store, &store::timestamp(start)).await? {
        let next = start + chrono::TimeDelta::hours(i64::from(settings.interval_hours));
        Ok(Some(store::timestamp(next)))
    } else {
        Ok(Some(store::timestamp(now)))
    }
}

/// One scheduler check at `now`: runs a backup when one is due.
pub async fn tick_at(state: &AppState, now: DateTime<Utc>) -> Result<Tick, sqlx::Error> {
    let store = state.store();
    let settings = load_settings(store).await?;
    if !settings.enabled || settings.validate().is_err() {
        return Ok(Tick::Disabled);
    }
    let start = slot_start(&settings, now);
    if runs::succeeded_since(store, &store::timestamp(start)).await? {
        return Ok(Tick::Covered);
    }
    let prefix = slot_key(start);
    let attempts = runs::slot_attempts(store, &prefix).await?;
    if attempts.iter().any(|a| a.status == RunStatus::Succeeded) {
        return Ok(Tick::Covered);
    }
    if let Some(last) = attempts.last() {
        let since = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| now.signed_duration_since(t.with_timezone(&Utc)))
                .unwrap_or(chrono::TimeDelta::MAX)
        };
        match last.status {
            RunStatus::Running if since(&last.started_at) < STALE_AFTER => {
                return Ok(Tick::InProgress)
            }
            RunStatus::Running => {
                runs::mark_interrupted(store, &last.id, &interrupted_message()).await?;
            }
            RunStatus::Failed
                if since(last.finished_at.as_deref().unwrap_or(&last.started_at)) < RETRY_AFTER =>
            {
                return Ok(Tick::RetryLater)
            }
            _ => {}
        }
        if attempts.len() >= MAX_ATTEMPTS {
            return Ok(Tick::GaveUp);
        }
    }
    let slot = format!("{prefix}#{}", attempts.len() + 1);
    let url = state.settings().effective_database_url();
    let job = Job {
        store,
        database_url: &url,
        data_dir: &state.settings().data_dir,
        record: true,
    };
    match job::run(&job, &settings, Trigger::Scheduled { slot, at: now }, None).await {
        Ok(run) => Ok(Tick::Ran(Box::new(run))),
        Err(BackupError::Busy | BackupError::SlotTaken(_)) => Ok(Tick::Skipped),
        Err(BackupError::Db(e)) => Err(e),
    }
}

fn interrupted_message() -> String {
    format!(
        "interrupted: no result after {} hours (the control plane running it stopped)",
        STALE_AFTER.num_hours()
    )
}

/// Marks runs `running` for longer than [`STALE_AFTER`] as failed (their process died).
async fn sweep_interrupted(state: &AppState, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let cutoff = store::timestamp(now - STALE_AFTER);
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM backup_runs WHERE status = 'running' AND started_at < $1",
    )
    .bind(cutoff)
    .fetch_all(state.store().reader())
    .await?;
    for id in ids {
        runs::mark_interrupted(state.store(), &id, &interrupted_message()).await?;
    }
    Ok(())
}

/// One scheduler tick with the real clock: marks interrupted runs, then runs a backup when
/// one is due. Logs instead of failing (a cluster-wide singleton runner can call it as is).
pub async fn check_once(state: AppState) {
    let now = Utc::now();
    if let Err(e) = sweep_interrupted(&state, now).await {
        tracing::warn!(error = %e, "backup scheduler: cannot sweep interrupted runs");
    }
    match tick_at(&state, now).await {
        Ok(Tick::Ran(run)) => tracing::info!(
            run = %run.id,
            status = run.status.as_str(),
            "scheduled backup finished"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "backup scheduler check failed"),
    }
}

/// Calls [`check_once`] every [`SCHEDULER_INTERVAL`] (first one interval after the start)
/// until the task is aborted.
///
/// On SQLite the task also keeps one connection open for as long as it runs, so the
/// database is visibly in use: `medgate backup restore` refuses to replace it under a
/// running server (the pools close idle connections, which would hide the server). A
/// replacement of this loop must keep holding [`hold_sqlite`] on every SQLite server.
pub fn spawn_backup_scheduler(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _sentinel = hold_sqlite(&state).await;
        // Once cluster-wide (the slot keys make a second run impossible anyway).
        let mut lease = crate::cluster::JobLease::new("backup.schedule", SCHEDULER_INTERVAL);
        let mut ticks =
            tokio::time::interval_at(Instant::now() + SCHEDULER_INTERVAL, SCHEDULER_INTERVAL);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if lease.held(&state).await {
                check_once(state.clone()).await;
            }
        }
    })
}

/// An open connection to the SQLite database that has read from it (so it holds a shared
/// lock on the file), or None on PostgreSQL / when it cannot be opened.
pub async fn hold_sqlite(state: &AppState) -> Option<sqlx::SqliteConnection> {
    use sqlx::Connection;
    use std::str::FromStr;

    if state.store().backend() != Backend::Sqlite {
        return None;
    }
    let url = state.settings().effective_database_url();
    sqlite_path(&url)?;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .ok()?
        .busy_timeout(Duration::from_secs(10));
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.ok()?;
    sqlx::query("SELECT COUNT(*) FROM sqlite_master")
        .execute(&mut conn)
        .await
        .ok()?;
    Some(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn settings(interval_hours: u32, at: &str) -> BackupSettings {
        BackupSettings {
            interval_hours,
            at: at.into(),
            ..BackupSettings::default()
        }
    }

    #[test]
    fn slots_are_anchored_at_the_time_of_day() {
        let s = settings(6, "02:30");
        assert_eq!(
            slot_start(&s, at("2026-05-01T10:00:00Z")),
            at("2026-05-01T08:30:00Z")
        );
        assert_eq!(
            slot_start(&s, at("2026-05-01T02:29:59Z")),
            at("2026-04-30T20:30:00Z")
        );
        assert_eq!(
            slot_start(&s, at("2026-05-01T02:30:00Z")),
            at("2026-05-01T02:30:00Z")
        );
        let daily = settings(24, "02:00");
        assert_eq!(
            slot_start(&daily, at("2026-05-01T01:59:00Z")),
            at("2026-04-30T02:00:00Z")
        );
        let hourly = settings(1, "00:15");
        assert_eq!(
            slot_start(&hourly, at("2026-05-01T10:14:00Z")),
            at("2026-05-01T09:15:00Z")
        );
        assert_eq!(slot_key(at("2026-05-01T09:15:00Z")), "2026-05-01T09:15:00Z");
    }
}
