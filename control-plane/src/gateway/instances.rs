//! Proxy instances as their heartbeats report them (`POST /api/internal/heartbeat`): the
//! latest heartbeat per instance, upserted by instance id. An instance silent for
//! [`STALE_AFTER_SECS`] is shown as stale; one silent for a day is forgotten, so restarts
//! (each a new instance id) do not pile up.

use chrono::{DateTime, Duration, Utc};
use medgate_config::node::STALE_AFTER_SECS;
use medgate_config::{BreakerReport, Heartbeat, ServiceReport};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::api::parse_time;
use crate::error::{ApiError, ApiResult};
use crate::store::{self, Store};
use crate::validate;

/// Instances silent for longer are deleted when another heartbeat arrives.
const FORGET_AFTER_HOURS: i64 = 24;

/// One proxy instance as `GET /api/gateway/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct InstanceStatus {
    pub instance_id: String,
    /// The address the proxy listens on.
    pub address: String,
    /// Version of the snapshot the proxy has in force (None before its first one).
    pub applied_version: Option<u64>,
    pub started_at: String,
    pub uptime_secs: u64,
    pub last_heartbeat_at: String,
    pub requests_total: u64,
    /// Requests per second over the proxy's last heartbeat interval.
    pub requests_per_sec: f64,
    /// No heartbeat for 30 seconds: the instance is probably gone.
    pub stale: bool,
}

/// Checks a heartbeat and stores it as the instance's latest; forgets long-silent instances.
pub async fn record(store: &Store, beat: &Heartbeat) -> ApiResult<()> {
    validate::plain_id("instance_id", &beat.instance_id, 64)?;
    validate::text("address", &beat.address, 1, 255)?;
    let started_at = parse_time("started_at", &beat.started_at)?;
    let version = beat
        .snapshot_version
        .map(|v| {
            i64::try_from(v).map_err(|_| ApiError::invalid("snapshot_version", "is too large"))
        })
        .transpose()?;
    let total = i64::try_from(beat.requests_total)
        .map_err(|_| ApiError::invalid("requests_total", "is too large"))?;
    if !beat.requests_per_sec.is_finite() || beat.requests_per_sec < 0.0 {
        return Err(ApiError::invalid(
            "requests_per_sec",
            "must be a finite number, 0 or more",
        ));
    }
    let report = ProtectionReport::of(beat)?;
    let report = serde_json::to_string(&report).map_err(ApiError::internal)?;
    let now = Utc::now();
    let mut tx = store.begin().await?;
    sqlx::query(
        "INSERT INTO proxy_instances (instance_id, address, snapshot_version, started_at, \
         requests_total, requests_per_sec, last_heartbeat_at, protection_report) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (instance_id) DO UPDATE SET address = excluded.address, \
         snapshot_version = excluded.snapshot_version, started_at = excluded.started_at, \
         requests_total = excluded.requests_total, requests_per_sec = excluded.requests_per_sec, \
         last_heartbeat_at = excluded.last_heartbeat_at, \
         protection_report = excluded.protection_report",
    )
    .bind(beat.instance_id.clone())
    .bind(beat.address.clone())
    .bind(version)
    .bind(started_at)
    .bind(total)
    .bind(beat.requests_per_sec)
    .bind(store::timestamp(now))
    .bind(report)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM proxy_instances WHERE last_heartbeat_at < $1")
        .bind(store::timestamp(now - Duration::hours(FORGET_AFTER_HOURS)))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Every known instance, oldest start first (instance ids are UUIDv7).
pub async fn list(store: &Store) -> ApiResult<Vec<InstanceStatus>> {
    let now = Utc::now();
    let rows = sqlx::query(
        "SELECT instance_id, address, snapshot_version, started_at, requests_total, \
         requests_per_sec, last_heartbeat_at FROM proxy_instances ORDER BY instance_id",
    )
    .fetch_all(store.reader())
    .await?;
    Ok(rows
        .iter()
        .map(|r| from_row(r, now))
        .collect::<Result<Vec<_>, _>>()?)
}

/// What a proxy reported about traffic protection in its latest heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProtectionReport {
    pub breakers: Vec<BreakerReport>,
    pub services: Vec<ServiceReport>,
    pub rate_limited_total: u64,
}

impl ProtectionReport {
    /// Bounds what one heartbeat may store (a proxy has one entry per breaker state and
    /// upstream service, so thousands mean a broken or hostile sender).
    const MAX_ENTRIES: usize = 10_000;

    fn of(beat: &Heartbeat) -> ApiResult<Self> {
        if beat.breakers.len() > Self::MAX_ENTRIES {
            return Err(ApiError::invalid("breakers", "too many entries"));
        }
        if beat.services.len() > Self::MAX_ENTRIES {
            return Err(ApiError::invalid("services", "too many entries"));
        }
        for s in &beat.services {
            validate::text("services.service", &s.service, 1, 2048)?;
            if !s.mean_latency_ms.is_finite() || s.mean_latency_ms < 0.0 {
                return Err(ApiError::invalid(
                    "services.mean_latency_ms",
                    "must be a finite number, 0 or more",
                ));
            }
        }
        for b in &beat.breakers {
            validate::text("breakers.breaker_id", &b.breaker_id, 1, 128)?;
        }
        Ok(Self {
            breakers: beat.breakers.clone(),
            services: beat.services.clone(),
            rate_limited_total: beat.rate_limited_total,
        })
    }
}

/// One live (non-stale) instance's protection report.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct InstanceReport {
    pub instance_id: String,
    pub last_heartbeat_at: String,
    #[serde(flatten)]
    pub report: ProtectionReport,
}

/// The protection reports of the instances that reported within the last 30 seconds, oldest
/// instance first.
pub async fn live_reports(store: &Store) -> ApiResult<Vec<InstanceReport>> {
    let since = Utc::now() - Duration::seconds(STALE_AFTER_SECS as i64);
    let rows = sqlx::query(
        "SELECT instance_id, last_heartbeat_at, protection_report FROM proxy_instances \
         WHERE last_heartbeat_at >= $1 ORDER BY instance_id",
    )
    .bind(store::timestamp(since))
    .fetch_all(store.reader())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let text: Option<String> = row.try_get("protection_report")?;
        // A heartbeat from before this column existed reports nothing.
        let report = text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        out.push(InstanceReport {
            instance_id: row.try_get("instance_id")?,
            last_heartbeat_at: row.try_get("last_heartbeat_at")?,
            report,
        });
    }
    Ok(out)
}

/// Instances that reported within the last 30 seconds.
pub async fn live_count(store: &Store) -> ApiResult<u64> {
    let since = Utc::now() - Duration::seconds(STALE_AFTER_SECS as i64);
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM proxy_instances WHERE last_heartbeat_at >= $1")
            .bind(store::timestamp(since))
            .fetch_one(store.reader())
            .await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

fn from_row(row: &AnyRow, now: DateTime<Utc>) -> Result<InstanceStatus, sqlx::Error> {
    let started_at: String = row.try_get("started_at")?;
    let last: String = row.try_get("last_heartbeat_at")?;
    let secs_since = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .map(|t| (now - t.with_timezone(&Utc)).num_seconds().max(0))
            .unwrap_or_default()
    };
    Ok(InstanceStatus {
        instance_id: row.try_get("instance_id")?,
        address: row.try_get("address")?,
        applied_version: row
            .try_get::<Option<i64>, _>("snapshot_version")?
            .map(|v| u64::try_from(v).unwrap_or_default()),
        uptime_secs: u64::try_from(secs_since(&started_at)).unwrap_or_default(),
        stale: secs_since(&last) >= STALE_AFTER_SECS as i64,
        started_at,
        last_heartbeat_at: last,
        requests_total: u64::try_from(row.try_get::<i64, _>("requests_total")?).unwrap_or_default(),
        requests_per_sec: row.try_get("requests_per_sec")?,
    })
}
