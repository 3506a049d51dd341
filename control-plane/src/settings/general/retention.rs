//! Retention: deletes what the general settings say is expired, in batches.
//!
//! * **Access logs** older than their retention: the platform's
//!   `access_log_retention_days`, or a tenant's own `access_log_retention_days` (tenant
//!   config) for its rows when that is shorter. The platform value is a ceiling: no access
//!   log is kept longer, whatever a tenant asked for.
//! * **Usage rows** (`usage_events`) older than `usage_retention_days`, and only those that
//!   nothing needs any more: billed by an invoice that is paid, void or uncollectible (its
//!   lines are frozen; drafts and open invoices keep their rows, as do unbilled rows, which a
//!   future invoice will bill), and carrying no balance debit (`debit_minor = 0`). Rows with a
//!   debit are the usage side of the balance reconciliation (`billing::ledger::drift` sums
//!   them against the cached balance), so they are kept until the books can roll purged
//!   debits up; deleting them would make every balance look wrong.
//!
//! Each batch is its own short transaction (SQLite has one writer). [`spawn_purger`] runs it
//! once cluster-wide (under a lease); running it on several control planes at once would
//! still be harmless: a row is deleted once, the others find it gone.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::task::JoinHandle;

use super::GeneralSettings;
use crate::error::ApiResult;
use crate::resource;
use crate::state::AppState;
use crate::store::{self, Store};
use crate::tenants::Tenant;

/// How often the background purge runs.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// Rows deleted per statement (and transaction).
pub const BATCH: i64 = 1000;

/// What one purge deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub access_logs: u64,
    pub usage_events: u64,
}

/// Purges what is expired now. See [`purge_expired_at`].
pub async fn purge_expired(store: &Store) -> ApiResult<PurgeReport> {
    purge_expired_at(store, Utc::now()).await
}

/// Purges what is expired as of `now` (see the module documentation).
pub async fn purge_expired_at(store: &Store, now: DateTime<Utc>) -> ApiResult<PurgeReport> {
    let general: GeneralSettings = super::load(store).await?;
    let mut report = PurgeReport::default();
    let platform_cutoff = cutoff(now, general.access_log_retention_days);
    report.access_logs += batches(
        store,
        "DELETE FROM access_logs WHERE request_id IN (SELECT request_id FROM access_logs \
         WHERE occurred_at < $1 ORDER BY occurred_at LIMIT $2)",
        &[&platform_cutoff],
    )
    .await?;
    for tenant in resource::load_all::<Tenant>(store).await? {
        let days = tenant.config.access_log_retention_days;
        if days >= general.access_log_retention_days {
            continue;
        }
        let tenant_cutoff = cutoff(now, days);
        report.access_logs += batches(
            store,
            "DELETE FROM access_logs WHERE request_id IN (SELECT request_id FROM access_logs \
             WHERE tenant_id = $3 AND occurred_at < $1 ORDER BY occurred_at LIMIT $2)",
            &[&tenant_cutoff, &tenant.id],
        )
        .await?;
    }
    let usage_cutoff = cutoff(now, general.usage_retention_days);
    report.usage_events += batches(
        store,
        "DELETE FROM usage_events WHERE request_id IN (SELECT u.request_id FROM usage_events u \
         JOIN invoices i ON i.id = u.invoice_id \
         WHERE u.occurred_at < $1 AND u.debit_minor = 0 \
         AND i.status IN ('paid', 'void', 'uncollectible') \
         ORDER BY u.occurred_at LIMIT $2)",
        &[&usage_cutoff],
    )
    .await?;
    Ok(report)
}

/// `now - days`, as stored.
fn cutoff(now: DateTime<Utc>, days: u32) -> String {
    store::timestamp(now - chrono::Duration::days(i64::from(days)))
}

/// Runs `sql` (`$1` the cutoff, `$2` the batch size, `$3..` the extra texts) until a batch
/// deletes less than [`BATCH`] rows; returns the total.
async fn batches(store: &Store, sql: &str, texts: &[&String]) -> ApiResult<u64> {
    let mut total = 0;
    loop {
        let mut tx = store.begin().await?;
        let mut query = sqlx::query(sql).bind(texts[0].clone()).bind(BATCH);
        for t in &texts[1..] {
            query = query.bind((*t).clone());
        }
        let deleted = query.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        total += deleted;
        if deleted < u64::try_from(BATCH).unwrap_or(u64::MAX) {
            return Ok(total);
        }
        // Let other writers in between batches.
        tokio::task::yield_now().await;
    }
}

/// Runs [`purge_expired`] every `every` (first run one period after the start) on the control
/// plane holding the `settings.retention_purge` lease (once cluster-wide), until the task is
/// aborted. Failures are logged and the next tick tries again.
pub fn spawn_purger(state: AppState, every: Duration) -> JoinHandle<()> {
    crate::cluster::spawn_singleton(
        state,
        "settings.retention_purge",
        every,
        |state| async move {
            match purge_expired(state.store()).await {
                Ok(r) if r.access_logs > 0 || r.usage_events > 0 => tracing::info!(
                    access_logs = r.access_logs,
                    usage_events = r.usage_events,
                    "expired rows purged"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention purge failed"),
            }
        },
    )
}
