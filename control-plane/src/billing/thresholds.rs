//! Low-balance thresholds (API §5.4 `POST`/`GET /api/balance/threshold`, B11).
//!
//! A tenant's threshold is armed while its balance is at or above it. The first change that
//! takes the balance below it enqueues one `low_balance` notification (outbox, dedup key
//! `low_balance:<tenant>:<epoch>`) and disarms it; it is re-armed (next epoch) only once the
//! balance is back at or above the threshold. [`observe`] runs in the transaction of every
//! balance change made here (usage debits at ingest, adjustments), after the balance row was
//! updated and so while it is locked: one crossing is one notification however many requests
//! race. Other paths that move a balance (redemptions, invoice payments) should call it too;
//! one that does not can only delay a re-arming: a later change that starts at or above the
//! threshold re-arms before it checks for a crossing.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use super::{ledger, notify};
use crate::error::{ApiError, ApiResult};
use crate::store::{self, Store, Tx};

/// The notification kind in the outbox.
pub const KIND: &str = "low_balance";

/// A tenant's threshold and whether it will notify at the next crossing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Threshold {
    pub tenant_id: String,
    /// In minor units of the balance's currency.
    pub threshold_minor: i64,
    /// True while the balance is at or above the threshold (a notification is due at the next
    /// downward crossing); false after one was sent, until the balance is back up.
    pub armed: bool,
    /// Number of armings so far (part of the notification's dedup key).
    pub epoch: i64,
    pub updated_at: String,
    pub updated_by: Option<String>,
}

/// Body of `POST /api/balance/threshold`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdInput {
    /// The tenant (default: the caller's own; required for platform admins).
    pub tenant_id: Option<String>,
    /// 0 or more, in minor units of the balance's currency; `null` removes the threshold.
    #[serde(default, deserialize_with = "crate::api::extract::present")]
    pub threshold_minor: Option<Option<i64>>,
}

/// Query of `GET /api/balance/threshold`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdQuery {
    /// The tenant (default: the caller's own; required for platform-wide callers).
    pub tenant_id: Option<String>,
}

const COLUMNS: &str = "tenant_id, threshold_minor, armed, epoch, updated_at, updated_by";

/// Sets (or with None removes) the tenant's threshold, armed when the balance is at or above
/// it now. Setting it starts a new epoch; no notification is sent for a balance that is
/// already below it (that is not a crossing).
pub async fn set(
    tx: &mut Tx,
    tenant_id: &str,
    threshold_minor: Option<i64>,
    actor: &str,
) -> ApiResult<Option<Threshold>> {
    let Some(threshold) = threshold_minor else {
        sqlx::query("DELETE FROM balance_thresholds WHERE tenant_id = $1")
            .bind(tenant_id.to_owned())
            .execute(&mut **tx)
            .await?;
        return Ok(None);
    };
    crate::validate::non_negative_money("threshold_minor", threshold)?;
    let balance = ledger::read_balance(tx, tenant_id)
        .await?
        .map_or(0, |b| b.balance_minor);
    let row = sqlx::query(&format!(
        "INSERT INTO balance_thresholds ({COLUMNS}) VALUES ($1, $2, $3, 1, $4, $5) \
         ON CONFLICT (tenant_id) DO UPDATE SET threshold_minor = $2, armed = $3, \
         epoch = balance_thresholds.epoch + 1, updated_at = $4, updated_by = $5 \
         RETURNING {COLUMNS}"
    ))
    .bind(tenant_id.to_owned())
    .bind(threshold)
    .bind(i64::from(balance >= threshold))
    .bind(store::now())
    .bind(actor.to_owned())
    .fetch_one(&mut **tx)
    .await?;
    threshold_of(&row).map(Some)
}

/// The tenant's threshold, None when it has none.
pub async fn get(store: &Store, tenant_id: &str) -> ApiResult<Option<Threshold>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM balance_thresholds WHERE tenant_id = $1"
    ))
    .bind(tenant_id.to_owned())
    .fetch_optional(store.reader())
    .await?;
    row.as_ref().map(threshold_of).transpose()
}

/// Re-arms and fires the tenant's threshold for a balance change from `old_minor` to
/// `new_minor` (see the module documentation); true when a notification was enqueued. Call it
/// after the balance row was updated, in the same transaction.
pub async fn observe(
    tx: &mut Tx,
    tenant_id: &str,
    currency: &str,
    old_minor: i64,
    new_minor: i64,
) -> ApiResult<bool> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM balance_thresholds WHERE tenant_id = $1"
    ))
    .bind(tenant_id.to_owned())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(mut t) = row.as_ref().map(threshold_of).transpose()? else {
        return Ok(false);
    };
    let before = (t.armed, t.epoch);
    if !t.armed && (old_minor >= t.threshold_minor || new_minor >= t.threshold_minor) {
        t.armed = true;
        t.epoch += 1;
    }
    let mut fired = false;
    if t.armed && new_minor < t.threshold_minor {
        let payload = json!({
            "tenant_id": tenant_id,
            "threshold_minor": t.threshold_minor,
            "balance_minor": new_minor,
            "currency": currency,
        });
        let key = format!("{KIND}:{tenant_id}:{}", t.epoch);
        fired = notify::enqueue(tx, Some(tenant_id), KIND, &key, &payload).await?;
        t.armed = false;
    }
    if (t.armed, t.epoch) != before {
        sqlx::query("UPDATE balance_thresholds SET armed = $1, epoch = $2 WHERE tenant_id = $3")
            .bind(i64::from(t.armed))
            .bind(t.epoch)
            .bind(tenant_id.to_owned())
            .execute(&mut **tx)
            .await?;
    }
    Ok(fired)
}

fn threshold_of(row: &sqlx::any::AnyRow) -> ApiResult<Threshold> {
    Ok(Threshold {
        tenant_id: row.try_get("tenant_id")?,
        threshold_minor: row.try_get("threshold_minor")?,
        armed: row.try_get::<i64, _>("armed")? != 0,
        epoch: row.try_get("epoch")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

/// 422 unless the body says what to set (`threshold_minor` absent is not "remove").
pub fn required(input: &ThresholdInput) -> ApiResult<Option<i64>> {
    input.threshold_minor.ok_or_else(|| {
        ApiError::invalid(
            "threshold_minor",
            "is required (a number, or null to remove the threshold)",
        )
    })
}
