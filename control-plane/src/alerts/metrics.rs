//! The value of each metric for one rule: from the usage rows (`error_rate`,
//! `p99_latency_ms`), from the live proxies' latest reports (`breaker_open`, `upstream_down`),
//! or from the counter samples the evaluator keeps (`rate_limit_rejections`).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use medgate_config::BreakerState;
use sqlx::Row;

use super::input::MAX_WINDOW_SECS;
use super::model::{AlertRule, Metric};
use crate::error::ApiResult;
use crate::gateway::InstanceReport;
use crate::health::{self, ServiceHealth};
use crate::store::filter::{Bind, Where};
use crate::store::{self, Store};

/// How far before a window's start a counter sample may lie and still serve as its baseline
/// (a few evaluation intervals; older ones mean the evaluator was not running).
const BASELINE_SLACK_SECS: i64 = 300;

/// What one evaluation reads once and every rule shares.
pub struct Inputs {
    pub now: DateTime<Utc>,
    pub reports: Vec<InstanceReport>,
    pub services: Vec<ServiceHealth>,
}

impl Inputs {
    pub fn new(now: DateTime<Utc>, reports: Vec<InstanceReport>) -> Self {
        let services = health::aggregate(&reports);
        Self {
            now,
            reports,
            services,
        }
    }
}

/// A metric's value and whether the rule's condition holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub value: f64,
    pub firing: bool,
}

/// Reads `rule`'s metric. Fires when the value is at or above the threshold (and, for usage
/// metrics, the window holds at least `min_requests` rows).
pub async fn read(store: &Store, rule: &AlertRule, inputs: &Inputs) -> ApiResult<Reading> {
    let over = |value: f64| Reading {
        value,
        firing: value >= rule.threshold,
    };
    Ok(match rule.metric {
        Metric::ErrorRate | Metric::P99LatencyMs => {
            let (rows, value) = usage(store, rule, inputs.now).await?;
            Reading {
                value,
                firing: rows >= rule.min_requests.unwrap_or(1) && value >= rule.threshold,
            }
        }
        Metric::BreakerOpen => over(open_breakers(rule, &inputs.reports) as f64),
        Metric::UpstreamDown => over(
            inputs
                .services
                .iter()
                .filter(|s| rule.service.as_deref().is_none_or(|want| want == s.service))
                .filter(|s| s.is_down())
                .count() as f64,
        ),
        Metric::RateLimitRejections => over(rejections(store, rule, inputs.now).await? as f64),
    })
}

/// Rows in the window and the value of a usage metric over them.
async fn usage(store: &Store, rule: &AlertRule, now: DateTime<Utc>) -> ApiResult<(u64, f64)> {
    let since = now - Duration::seconds(rule.window_secs as i64);
    let mut w = Where::new();
    w.push(
        "occurred_at >= ? AND occurred_at <= ?",
        vec![
            Bind::Text(store::timestamp(since)),
            Bind::Text(store::timestamp(now)),
        ],
    )
    .eq_text("tenant_id", rule.tenant_id.as_deref())
    .eq_text("model_name", rule.model.as_deref());
    let sql = format!(
        "SELECT COUNT(*) AS n, SUM(CASE WHEN status >= 500 OR status = 0 THEN 1 ELSE 0 END) \
         AS failed FROM usage_events WHERE {}",
        w.sql()
    );
    let row = w.bind(sqlx::query(&sql)).fetch_one(store.reader()).await?;
    let n: i64 = row.try_get("n")?;
    if n <= 0 {
        return Ok((0, 0.0));
    }
    let rows = n as u64;
    if rule.metric == Metric::ErrorRate {
        let failed: Option<i64> = row.try_get("failed")?;
        return Ok((rows, failed.unwrap_or(0) as f64 / n as f64));
    }
    // Nearest rank: the smallest latency with at least 99 % of the rows at or below it.
    let rank = ((rows as f64) * 0.99).ceil().max(1.0) as i64;
    let sql = format!(
        "SELECT latency_ms FROM usage_events WHERE {} ORDER BY latency_ms LIMIT 1 OFFSET {}",
        w.sql(),
        rank - 1
    );
    let p99: Option<i64> = w
        .bind_scalar(sqlx::query_scalar(&sql))
        .fetch_optional(store.reader())
        .await?;
    Ok((rows, p99.unwrap_or(0) as f64))
}

/// Distinct breaker states (breaker, tenant) open in any live proxy. A tenant's rule counts
/// only that tenant's per-tenant states: shared breakers are platform infrastructure.
fn open_breakers(rule: &AlertRule, reports: &[InstanceReport]) -> usize {
    reports
        .iter()
        .flat_map(|r| &r.report.breakers)
        .filter(|b| b.state == BreakerState::Open)
        .filter(|b| {
            rule.breaker_id
                .as_deref()
                .is_none_or(|id| id == b.breaker_id)
        })
        .filter(|b| {
            rule.tenant_id
                .as_deref()
                .is_none_or(|t| b.tenant_id.as_deref() == Some(t))
        })
        .map(|b| (b.breaker_id.as_str(), b.tenant_id.as_deref()))
        .collect::<BTreeSet<_>>()
        .len()
}

/// Stores each live proxy's `rate_limited_total` at `now` and forgets samples older than the
/// longest window (plus slack). Called once per evaluation when a rule needs them.
pub async fn sample(store: &Store, inputs: &Inputs) -> ApiResult<()> {
    let at = store::timestamp(inputs.now);
    let mut tx = store.begin().await?;
    for r in &inputs.reports {
        sqlx::query(
            "INSERT INTO proxy_counter_samples (instance_id, sampled_at, rate_limited_total) \
             VALUES ($1, $2, $3) ON CONFLICT (instance_id, sampled_at) DO NOTHING",
        )
        .bind(r.instance_id.clone())
        .bind(at.clone())
        .bind(i64::try_from(r.report.rate_limited_total).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    }
    let horizon = inputs.now - Duration::seconds(MAX_WINDOW_SECS as i64 + BASELINE_SLACK_SECS);
    sqlx::query("DELETE FROM proxy_counter_samples WHERE sampled_at < $1")
        .bind(store::timestamp(horizon))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The increase of `rate_limited_total` over the window, summed over instances: per instance,
/// its latest sample minus its baseline (the last sample at or before the window's start, or
/// else its first sample in the window). A counter that went down restarted: its latest value
/// is the increase.
async fn rejections(store: &Store, rule: &AlertRule, now: DateTime<Utc>) -> ApiResult<u64> {
    let start = now - Duration::seconds(rule.window_secs as i64);
    let start_text = store::timestamp(start);
    let rows = sqlx::query(
        "SELECT instance_id, sampled_at, rate_limited_total FROM proxy_counter_samples \
         WHERE sampled_at >= $1 AND sampled_at <= $2 ORDER BY instance_id, sampled_at",
    )
    .bind(store::timestamp(
        start - Duration::seconds(BASELINE_SLACK_SECS),
    ))
    .bind(store::timestamp(now))
    .fetch_all(store.reader())
    .await?;
    // Per instance: (baseline, latest).
    let mut per: HashMap<String, (u64, u64)> = HashMap::new();
    for row in rows {
        let id: String = row.try_get("instance_id")?;
        let at: String = row.try_get("sampled_at")?;
        let total = u64::try_from(row.try_get::<i64, _>("rate_limited_total")?).unwrap_or(0);
        let entry = per.entry(id).or_insert((total, total));
        if at <= start_text {
            entry.0 = total;
        }
        entry.1 = total;
    }
    Ok(per
        .values()
        .map(|&(base, latest)| latest.checked_sub(base).unwrap_or(latest))
        .fold(0, u64::saturating_add))
}
