//! Threshold crossings (API §2.4 notify; billing-medical.md §6.1 O1).
//!
//! [`evaluate_tenant`] measures a tenant's usage in a period against each of its effective
//! rules and, for every threshold reached, inserts the overage record (UNIQUE on tenant,
//! rule, period, threshold) and, only when this call inserted it, the notification
//! (`notify::enqueue`, dedup key `overage:<tenant>:<rule>:<period>:<threshold>`), both in the
//! caller's transaction. However many evaluations race (concurrent notify calls, ingests),
//! each crossing exists once with one notification: on PostgreSQL a concurrent insert of the
//! same key waits for the first transaction and then does nothing; SQLite writes one
//! transaction at a time. Records are inserted in (rule, threshold) order, so racing
//! transactions wait on each other in the same order and cannot deadlock.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::rules::{self, Metric, OverageRule};
use crate::billing::invoices::period::{self, Period};
use crate::billing::money::div_round_half_up;
use crate::billing::notify;
use crate::error::{ApiError, ApiResult};
use crate::resource;
use crate::store::{self, Tx};
use crate::tenants::Tenant;

/// The notification kind of a crossing.
pub const NOTIFICATION_KIND: &str = "overage";

/// One threshold crossed by one tenant in one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct OverageRecord {
    pub id: String,
    pub tenant_id: String,
    pub rule_id: String,
    /// `YYYY-MM` in the tenant's time zone.
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    /// Percent of the allowance.
    pub threshold: i64,
    pub metric: Metric,
    /// `soft` or `hard` (the rule's mode when crossed).
    pub mode: String,
    /// Usage when the crossing was recorded (tokens, or spend in minor units).
    pub usage_value: i64,
    /// The allowance then (tokens, or minor units).
    pub allowance: i64,
    pub crossed_at: String,
}

/// The dedup key of a crossing's notification.
pub fn dedup_key(tenant_id: &str, rule_id: &str, period: &str, threshold: i64) -> String {
    format!("overage:{tenant_id}:{rule_id}:{period}:{threshold}")
}

/// Evaluates `tenant_id` in the month of `now` (or the month `period`, `YYYY-MM`, in the
/// tenant's time zone) inside `tx`; returns the crossings this call recorded (and
/// notified). An unknown tenant or one without enabled rules records nothing.
///
/// Meant to be called after usage ingest too (the lead wires it): in the ingest transaction
/// or right after it, once per tenant of the batch, so crossings are recorded as usage
/// arrives; calling it again is always safe.
pub async fn evaluate_tenant(
    tx: &mut Tx,
    tenant_id: &str,
    now: DateTime<Utc>,
    month: Option<&str>,
) -> ApiResult<Vec<OverageRecord>> {
    let Some(tenant) = resource::load_tx::<Tenant>(tx, tenant_id)
        .await?
        .map(|t| t.value)
    else {
        return Ok(Vec::new());
    };
    let tz = period::tenant_tz(&tenant.timezone);
    let window = match month {
        Some(label) => period::month("period", label, tz)?,
        None => period::month_of(now, tz)?,
    };
    let label = window.label.clone().unwrap_or_default();
    let mut rules: Vec<OverageRule> = rules::effective(tx, tenant_id)
        .await?
        .into_iter()
        .filter(|r| r.enabled && r.allowance() > 0)
        .collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    let mut recorded = Vec::new();
    for rule in rules {
        let value = usage(tx, tenant_id, &window, rule.metric).await?;
        let allowance = rule.allowance();
        for threshold in rule.effective_thresholds() {
            // value / allowance >= threshold / 100, in integers.
            if i128::from(value) * 100 < i128::from(allowance) * i128::from(threshold) {
                break;
            }
            let record = OverageRecord {
                id: store::new_id("ovg"),
                tenant_id: tenant_id.to_owned(),
                rule_id: rule.id.clone(),
                period: label.clone(),
                period_start: window.start.clone(),
                period_end: window.end.clone(),
                threshold,
                metric: rule.metric,
                mode: rule.mode.as_str().to_owned(),
                usage_value: value,
                allowance,
                crossed_at: store::timestamp(now),
            };
            if insert(tx, &record).await? {
                let payload = json!({
                    "tenant_id": tenant_id, "rule_id": rule.id, "period": label,
                    "threshold": threshold, "metric": rule.metric.as_str(),
                    "mode": rule.mode.as_str(), "usage": value, "allowance": allowance,
                    "record_id": record.id,
                });
                let key = dedup_key(tenant_id, &rule.id, &label, threshold);
                notify::enqueue(tx, Some(tenant_id), NOTIFICATION_KIND, &key, &payload).await?;
                recorded.push(record);
            }
        }
    }
    Ok(recorded)
}

/// The tenant's usage of `metric` in `window`: tokens, or spend in minor units (the exact
/// cost in micros rounded half away from zero).
pub async fn usage(
    conn: &mut AnyConnection,
    tenant_id: &str,
    window: &Period,
    metric: Metric,
) -> ApiResult<i64> {
    let column = match metric {
        Metric::Tokens => "input_tokens + output_tokens",
        Metric::Spend => "cost_micros",
    };
    let sum: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT CAST(SUM({column}) AS BIGINT) FROM usage_events \
         WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3"
    ))
    .bind(tenant_id.to_owned())
    .bind(window.start.clone())
    .bind(window.end.clone())
    .fetch_one(&mut *conn)
    .await?;
    let sum = sum.unwrap_or(0);
    match metric {
        Metric::Tokens => Ok(sum),
        Metric::Spend => div_round_half_up(i128::from(sum), 1_000_000)
            .and_then(|v| i64::try_from(v).ok())
            .ok_or_else(|| ApiError::internal("spend out of range")),
    }
}

async fn insert(tx: &mut Tx, r: &OverageRecord) -> ApiResult<bool> {
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO overage_records (id, tenant_id, rule_id, period, period_start, \
         period_end, threshold, metric, mode, usage_value, allowance, crossed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (tenant_id, rule_id, period, threshold) DO NOTHING RETURNING id",
    )
    .bind(r.id.clone())
    .bind(r.tenant_id.clone())
    .bind(r.rule_id.clone())
    .bind(r.period.clone())
    .bind(r.period_start.clone())
    .bind(r.period_end.clone())
    .bind(r.threshold)
    .bind(r.metric.as_str())
    .bind(r.mode.clone())
    .bind(r.usage_value)
    .bind(r.allowance)
    .bind(r.crossed_at.clone())
    .fetch_optional(&mut **tx)
    .await?;
    // A hard cap reached changes what the data plane lets through: a new snapshot version.
    if inserted.is_some() && r.threshold >= 100 && r.mode == "hard" {
        store::bump_config_version(tx).await?;
    }
    Ok(inserted.is_some())
}

pub(super) const RECORD_COLUMNS: &str = "id, tenant_id, rule_id, period, period_start, \
    period_end, threshold, metric, mode, usage_value, allowance, crossed_at";

pub(super) fn record_of(row: &AnyRow) -> ApiResult<OverageRecord> {
    let metric: String = row.try_get("metric")?;
    Ok(OverageRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        rule_id: row.try_get("rule_id")?,
        period: row.try_get("period")?,
        period_start: row.try_get("period_start")?,
        period_end: row.try_get("period_end")?,
        threshold: row.try_get("threshold")?,
        metric: if metric == "spend" {
            Metric::Spend
        } else {
            Metric::Tokens
        },
        mode: row.try_get("mode")?,
        usage_value: row.try_get("usage_value")?,
        allowance: row.try_get("allowance")?,
        crossed_at: row.try_get("crossed_at")?,
    })
}
