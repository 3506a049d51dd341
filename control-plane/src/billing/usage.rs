//! Usage reports (API §2.1): requests, tokens, cost and debits per tenant, per day (in the
//! tenant's timezone) and per model. Every figure is a `SUM` over the usage rows themselves,
//! never a counter kept on the side, so reports and balances cannot drift apart (U3).
//! Figures are grouped by currency: rows priced in different currencies are never added.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::api::pagination::Page;
use crate::api::parse_time;
use crate::error::{ApiError, ApiResult};
use crate::store::filter::{Bind, Where};
use crate::store::Store;

/// Query of the usage reports.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Usage that occurred at or after this RFC 3339 time.
    pub from: Option<String>,
    /// Usage that occurred before this RFC 3339 time.
    pub to: Option<String>,
    /// Only this tenant (`GET /api/billing/usage`, platform-wide callers).
    pub tenant_id: Option<String>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

/// Summed usage in one currency (None: rows stored before pricing existed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct UsageFigures {
    pub currency: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Exact priced cost, micros of a minor unit.
    pub cost_micros: i64,
    /// What was debited from the balance, minor units.
    pub debit_minor: i64,
}

/// One tenant's usage in one currency (`GET /api/billing/usage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TenantUsage {
    pub tenant_id: String,
    #[serde(flatten)]
    pub figures: UsageFigures,
}

/// `GET /api/billing/usage/{tenantId}`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TenantUsageReport {
    pub tenant_id: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// One entry per currency.
    pub totals: Vec<UsageFigures>,
}

/// One local day of a tenant's usage in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DailyUsage {
    /// The day in the tenant's timezone, `YYYY-MM-DD`.
    pub date: String,
    #[serde(flatten)]
    pub figures: UsageFigures,
}

/// `GET /api/billing/usage/{tenantId}/daily`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DailyUsageReport {
    pub tenant_id: String,
    /// IANA timezone the days are cut in (the tenant's).
    pub timezone: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Oldest day first; days without usage are absent.
    pub days: Vec<DailyUsage>,
}

/// One model's usage in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ModelUsage {
    pub model_id: String,
    /// The model's name on its latest row.
    pub model_name: String,
    #[serde(flatten)]
    pub figures: UsageFigures,
}

/// `GET /api/billing/usage/{tenantId}/models`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ModelUsageReport {
    pub tenant_id: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub models: Vec<ModelUsage>,
}

/// The summed columns, each cast so PostgreSQL's NUMERIC sums decode as integers.
const SUMS: &str = "COUNT(*) AS requests, \
    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
    CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost_micros, \
    CAST(COALESCE(SUM(debit_minor), 0) AS BIGINT) AS debit_minor";

impl UsageQuery {
    fn filter(&self, tenant_id: Option<&str>) -> ApiResult<Where> {
        let mut w = Where::new();
        w.eq_text("tenant_id", tenant_id);
        if let Some(from) = &self.from {
            w.push(
                "occurred_at >= ?",
                vec![Bind::Text(parse_time("from", from)?)],
            );
        }
        if let Some(to) = &self.to {
            w.push("occurred_at < ?", vec![Bind::Text(parse_time("to", to)?)]);
        }
        Ok(w)
    }
}

impl UsageFigures {
    fn add(&mut self, other: &UsageFigures) {
        self.requests = self.requests.saturating_add(other.requests);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost_micros = self.cost_micros.saturating_add(other.cost_micros);
        self.debit_minor = self.debit_minor.saturating_add(other.debit_minor);
    }
}

fn figures_of(row: &AnyRow) -> Result<UsageFigures, sqlx::Error> {
    Ok(UsageFigures {
        currency: row.try_get("currency")?,
        requests: row.try_get("requests")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        cost_micros: row.try_get("cost_micros")?,
        debit_minor: row.try_get("debit_minor")?,
    })
}

/// Usage per tenant and currency (one page, by tenant id), for `tenant_id` when given.
pub async fn per_tenant(
    store: &Store,
    q: &UsageQuery,
    tenant_id: Option<&str>,
    page: u32,
    size: u32,
) -> ApiResult<Page<TenantUsage>> {
    let w = q.filter(tenant_id)?;
    let where_sql = w.sql();
    let total: i64 = w
        .bind_scalar(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM (SELECT tenant_id, currency FROM usage_events \
             WHERE {where_sql} GROUP BY tenant_id, currency) g"
        )))
        .fetch_one(store.reader())
        .await?;
    let offset = i64::from(page - 1) * i64::from(size);
    let rows = w
        .bind(sqlx::query(&format!(
            "SELECT tenant_id, currency, {SUMS} FROM usage_events WHERE {where_sql} \
             GROUP BY tenant_id, currency ORDER BY tenant_id, currency \
             LIMIT {size} OFFSET {offset}"
        )))
        .fetch_all(store.reader())
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(TenantUsage {
                tenant_id: r.try_get("tenant_id")?,
                figures: figures_of(r)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Page {
        items,
        total: u64::try_from(total).unwrap_or_default(),
        page,
        page_size: size,
    })
}

/// One tenant's totals per currency.
pub async fn tenant_totals(
    store: &Store,
    tenant_id: &str,
    q: &UsageQuery,
) -> ApiResult<TenantUsageReport> {
    let w = q.filter(Some(tenant_id))?;
    let rows = w
        .bind(sqlx::query(&format!(
            "SELECT currency, {SUMS} FROM usage_events WHERE {} \
             GROUP BY currency ORDER BY currency",
            w.sql()
        )))
        .fetch_all(store.reader())
        .await?;
    Ok(TenantUsageReport {
        tenant_id: tenant_id.to_owned(),
        from: q.from.clone(),
        to: q.to.clone(),
        totals: rows.iter().map(figures_of).collect::<Result<_, _>>()?,
    })
}

/// One tenant's usage per model and currency.
pub async fn per_model(
    store: &Store,
    tenant_id: &str,
    q: &UsageQuery,
) -> ApiResult<ModelUsageReport> {
    let w = q.filter(Some(tenant_id))?;
    let rows = w
        .bind(sqlx::query(&format!(
            "SELECT model_id, MAX(model_name) AS model_name, currency, {SUMS} \
             FROM usage_events WHERE {} GROUP BY model_id, currency \
             ORDER BY model_id, currency",
            w.sql()
        )))
        .fetch_all(store.reader())
        .await?;
    let models = rows
        .iter()
        .map(|r| {
            Ok(ModelUsage {
                model_id: r.try_get("model_id")?,
                model_name: r.try_get("model_name")?,
                figures: figures_of(r)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(ModelUsageReport {
        tenant_id: tenant_id.to_owned(),
        from: q.from.clone(),
        to: q.to.clone(),
        models,
    })
}

/// One tenant's usage per local day of `timezone` and currency. The database sums per UTC
/// minute (exact for every offset, including :30 and :45 ones and DST changes); the minutes
/// are then added into local days here.
pub async fn daily(
    store: &Store,
    tenant_id: &str,
    timezone: &str,
    q: &UsageQuery,
) -> ApiResult<DailyUsageReport> {
    let tz: Tz = timezone
        .parse()
        .map_err(|_| ApiError::internal(format!("tenant {tenant_id} has a bad timezone")))?;
    let w = q.filter(Some(tenant_id))?;
    let rows = w
        .bind(sqlx::query(&format!(
            "SELECT SUBSTR(occurred_at, 1, 16) AS minute, currency, {SUMS} \
             FROM usage_events WHERE {} GROUP BY SUBSTR(occurred_at, 1, 16), currency",
            w.sql()
        )))
        .fetch_all(store.reader())
        .await?;
    let mut days: BTreeMap<(String, Option<String>), UsageFigures> = BTreeMap::new();
    for row in &rows {
        let minute: String = row.try_get("minute")?;
        let figures = figures_of(row)?;
        let utc = NaiveDateTime::parse_from_str(&minute, "%Y-%m-%dT%H:%M")
            .map_err(|e| ApiError::internal(format!("stored occurred_at {minute}: {e}")))?;
        let date = DateTime::<Utc>::from_naive_utc_and_offset(utc, Utc)
            .with_timezone(&tz)
            .format("%Y-%m-%d")
            .to_string();
        let day = days
            .entry((date, figures.currency.clone()))
            .or_insert_with(|| UsageFigures {
                currency: figures.currency.clone(),
                ..UsageFigures::default()
            });
        day.add(&figures);
    }
    Ok(DailyUsageReport {
        tenant_id: tenant_id.to_owned(),
        timezone: timezone.to_owned(),
        from: q.from.clone(),
        to: q.to.clone(),
        days: days
            .into_iter()
            .map(|((date, _), figures)| DailyUsage { date, figures })
            .collect(),
    })
}
