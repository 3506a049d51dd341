//! Hard caps: which tenants a `hard` rule stops for the rest of the period.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::evaluate::{self, record_of, OverageRecord, RECORD_COLUMNS};
use super::rules::{self, Mode};
use crate::billing::invoices::period::Period;
use crate::error::ApiResult;
use crate::store::{self, Store};

/// A tenant stopped by a hard rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct HardCap {
    pub tenant_id: String,
    pub rule_id: String,
    pub period: String,
    /// When the cap lifts (the end of the period, UTC).
    pub until: String,
    pub usage_value: i64,
    pub allowance: i64,
}

/// Tenants over the allowance of an enabled `hard` rule in the period containing `now`,
/// one entry per tenant (sorted by tenant id), for the data plane feed (the lead wires it
/// into the snapshot or the gateway's 402/429 decision).
///
/// Reads the crossings of 100 % or more [`evaluate::evaluate_tenant`] recorded (a hard rule always
/// evaluates 100 %), so it is cheap for any number of tenants and follows evaluation: a
/// tenant is capped from the evaluation after it crosses, not from the request that
/// crossed. The rule must be hard and enabled now (a rule made hard after its
/// crossing caps too). When the allowance was raised since
/// the crossing, the usage is measured again against the new allowance; lowering it keeps
/// the cap (the recorded usage already exceeded the higher one).
pub async fn hard_capped_tenants(store: &Store, now: DateTime<Utc>) -> ApiResult<Vec<HardCap>> {
    let at = store::timestamp(now);
    let rows = sqlx::query(&format!(
        "SELECT {RECORD_COLUMNS} FROM overage_records WHERE threshold >= 100 \
         AND period_start <= $1 AND period_end > $1 ORDER BY tenant_id, rule_id, threshold"
    ))
    .bind(at)
    .fetch_all(store.reader())
    .await?;
    let records: Vec<OverageRecord> = rows.iter().map(record_of).collect::<ApiResult<_>>()?;
    caps_of(store, records).await
}

/// The caps for the snapshot, which never depends on the clock: each tenant's crossings of
/// its latest capped period (the data plane ignores a cap whose `until` has passed). Tenant
/// id -> the time the cap lifts.
pub async fn snapshot_caps(store: &Store) -> ApiResult<std::collections::BTreeMap<String, String>> {
    let rows = sqlx::query(&format!(
        "SELECT {RECORD_COLUMNS} FROM overage_records r WHERE threshold >= 100 \
         AND period_end = (SELECT MAX(period_end) FROM overage_records l \
                           WHERE l.tenant_id = r.tenant_id AND l.threshold >= 100) \
         ORDER BY tenant_id, rule_id, threshold"
    ))
    .fetch_all(store.reader())
    .await?;
    let records: Vec<OverageRecord> = rows.iter().map(record_of).collect::<ApiResult<_>>()?;
    Ok(caps_of(store, records)
        .await?
        .into_iter()
        .map(|c| (c.tenant_id, c.until))
        .collect())
}

/// The records (sorted by tenant) that still cap their tenant, one per tenant.
async fn caps_of(store: &Store, records: Vec<OverageRecord>) -> ApiResult<Vec<HardCap>> {
    let mut caps: Vec<HardCap> = Vec::new();
    let mut conn = store.reader().acquire().await?;
    for r in records {
        if caps.last().is_some_and(|c| c.tenant_id == r.tenant_id) {
            continue;
        }
        let rule = rules::effective(&mut conn, &r.tenant_id)
            .await?
            .into_iter()
            .find(|x| x.id == r.rule_id && x.enabled && x.mode == Mode::Hard);
        let Some(rule) = rule else { continue };
        let allowance = rule.allowance();
        let mut usage = r.usage_value;
        if allowance > r.allowance {
            let window = Period {
                label: Some(r.period.clone()),
                start: r.period_start.clone(),
                end: r.period_end.clone(),
            };
            usage = evaluate::usage(&mut conn, &r.tenant_id, &window, rule.metric).await?;
            if usage < allowance {
                continue;
            }
        }
        caps.push(HardCap {
            tenant_id: r.tenant_id,
            rule_id: r.rule_id,
            period: r.period,
            until: r.period_end,
            usage_value: usage,
            allowance,
        });
    }
    Ok(caps)
}
