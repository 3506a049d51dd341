//! Overage rules (API §2.4 settings): per tenant or the platform default, one per (scope,
//! metric). A rule sets an allowance per calendar month (in the tenant's time zone) of
//! tokens or of spend, the overage rate invoices charge beyond included tokens, the
//! notification thresholds in percent of the allowance, and whether crossing 100 % caps the
//! tenant (`hard`) or only notifies (`soft`).
//!
//! A tenant's effective rules: for each metric, its own rule, else the platform default.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{ApiError, ApiResult};
use crate::store::{self, Tx};
use crate::validate;

/// Most thresholds on one rule.
pub const MAX_THRESHOLDS: usize = 10;
/// Highest threshold, in percent.
pub const MAX_THRESHOLD: i64 = 1_000;
/// The scope of platform default rules.
pub const DEFAULT_SCOPE: &str = "*";

/// What a rule measures over the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Input plus output tokens.
    Tokens,
    /// Priced usage cost, in minor units.
    Spend,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Tokens => "tokens",
            Metric::Spend => "spend",
        }
    }
}

/// What crossing 100 % does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Notify only; usage continues and is billed as overage.
    Soft,
    /// Notify and cap: [`super::hard_capped_tenants`] lists the tenant until the period ends.
    Hard,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Soft => "soft",
            Mode::Hard => "hard",
        }
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct OverageRule {
    pub id: String,
    /// None for the platform default.
    pub tenant_id: Option<String>,
    pub metric: Metric,
    pub mode: Mode,
    /// Tokens included per period (metric `tokens`; also the invoice overage allowance).
    pub included_tokens: Option<i64>,
    /// Spend included per period, in minor units (metric `spend`).
    pub included_spend_minor: Option<i64>,
    /// Price of 1,000 tokens beyond `included_tokens`, in micros of a minor unit.
    pub overage_per_1k_micros: i64,
    /// Percentages of the allowance that notify, ascending, e.g. `[80, 100, 120]`.
    pub thresholds: Vec<i64>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl OverageRule {
    /// The allowance the thresholds are percentages of.
    pub fn allowance(&self) -> i64 {
        match self.metric {
            Metric::Tokens => self.included_tokens.unwrap_or(0),
            Metric::Spend => self.included_spend_minor.unwrap_or(0),
        }
    }

    /// The thresholds evaluated: a hard rule always has 100 (where the cap starts).
    pub fn effective_thresholds(&self) -> Vec<i64> {
        let mut t = self.thresholds.clone();
        if self.mode == Mode::Hard && !t.contains(&100) {
            t.push(100);
            t.sort_unstable();
        }
        t
    }
}

/// Body of `POST /api/billing/overages/settings`: creates or replaces the rule of
/// (tenant or platform default, metric).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverageRuleInput {
    /// The tenant; absent or null sets the platform default.
    pub tenant_id: Option<String>,
    /// Default `tokens`.
    pub metric: Option<Metric>,
    /// Default `soft`.
    pub mode: Option<Mode>,
    /// Required (1 or more) for metric `tokens`.
    pub included_tokens: Option<i64>,
    /// Required (1 or more) for metric `spend`.
    pub included_spend_minor: Option<i64>,
    /// Default 0 (no overage charge on invoices).
    pub overage_per_1k_micros: Option<i64>,
    /// 1 to 10 distinct percentages, 1 to 1000; default `[80, 100]`.
    pub thresholds: Option<Vec<i64>>,
    /// Default true.
    pub enabled: Option<bool>,
}

impl OverageRuleInput {
    /// Validates and fills the defaults (thresholds come back sorted).
    pub fn normalize(self) -> ApiResult<OverageRuleInput> {
        if let Some(t) = &self.tenant_id {
            validate::plain_id("tenant_id", t, 128)?;
        }
        let metric = self.metric.unwrap_or(Metric::Tokens);
        let positive = |field: &str, v: Option<i64>| match v {
            Some(n) if n >= 1 => Ok(()),
            Some(_) => Err(ApiError::invalid(field, "must be 1 or more")),
            None => Err(ApiError::invalid(
                field,
                format!("is required for metric {}", metric.as_str()),
            )),
        };
        match metric {
            Metric::Tokens => positive("included_tokens", self.included_tokens)?,
            Metric::Spend => positive("included_spend_minor", self.included_spend_minor)?,
        }
        for (field, v) in [
            ("included_tokens", self.included_tokens),
            ("included_spend_minor", self.included_spend_minor),
        ] {
            if v.is_some_and(|n| n < 1) {
                return Err(ApiError::invalid(field, "must be 1 or more"));
            }
        }
        let rate = self.overage_per_1k_micros.unwrap_or(0);
        if !(0..=1_000_000_000_000).contains(&rate) {
            return Err(ApiError::invalid(
                "overage_per_1k_micros",
                "must be between 0 and 10^12",
            ));
        }
        let mut thresholds = self.thresholds.unwrap_or_else(|| vec![80, 100]);
        if thresholds.is_empty() || thresholds.len() > MAX_THRESHOLDS {
            return Err(ApiError::invalid(
                "thresholds",
                format!("1 to {MAX_THRESHOLDS} percentages"),
            ));
        }
        if thresholds.iter().any(|t| !(1..=MAX_THRESHOLD).contains(t)) {
            return Err(ApiError::invalid(
                "thresholds",
                format!("each is a percentage from 1 to {MAX_THRESHOLD}"),
            ));
        }
        thresholds.sort_unstable();
        if thresholds.windows(2).any(|w| w[0] == w[1]) {
            return Err(ApiError::invalid("thresholds", "must be distinct"));
        }
        Ok(OverageRuleInput {
            metric: Some(metric),
            mode: Some(self.mode.unwrap_or(Mode::Soft)),
            overage_per_1k_micros: Some(rate),
            thresholds: Some(thresholds),
            enabled: Some(self.enabled.unwrap_or(true)),
            ..self
        })
    }
}

const COLUMNS: &str = "id, tenant_id, metric, mode, included_tokens, included_spend_minor, \
    overage_per_1k_micros, thresholds, enabled, created_at, updated_at";

/// Creates or replaces the rule of (tenant or default, metric) from a normalized input;
/// the rule keeps its id across replacements. Returns it and whether it was created.
pub async fn upsert(tx: &mut Tx, input: &OverageRuleInput) -> ApiResult<(OverageRule, bool)> {
    let now = store::now();
    let id = store::new_id("ovr");
    let metric = input.metric.unwrap_or(Metric::Tokens);
    let thresholds = serde_json::to_string(&input.thresholds.clone().unwrap_or_default())
        .map_err(ApiError::internal)?;
    let row = sqlx::query(&format!(
        "INSERT INTO overage_rules (id, tenant_id, scope, metric, mode, included_tokens, \
         included_spend_minor, overage_per_1k_micros, thresholds, enabled, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
         ON CONFLICT (scope, metric) DO UPDATE SET mode = excluded.mode, \
         included_tokens = excluded.included_tokens, \
         included_spend_minor = excluded.included_spend_minor, \
         overage_per_1k_micros = excluded.overage_per_1k_micros, \
         thresholds = excluded.thresholds, enabled = excluded.enabled, \
         updated_at = excluded.updated_at RETURNING {COLUMNS}"
    ))
    .bind(id.clone())
    .bind(input.tenant_id.clone())
    .bind(
        input
            .tenant_id
            .clone()
            .unwrap_or_else(|| DEFAULT_SCOPE.to_owned()),
    )
    .bind(metric.as_str())
    .bind(input.mode.unwrap_or(Mode::Soft).as_str())
    .bind(input.included_tokens)
    .bind(input.included_spend_minor)
    .bind(input.overage_per_1k_micros.unwrap_or(0))
    .bind(thresholds)
    .bind(i64::from(input.enabled.unwrap_or(true)))
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let rule = rule_of(&row)?;
    let created = rule.id == id;
    Ok((rule, created))
}

/// Rules of `tenant_id` (when given) and the platform defaults, or every rule.
pub async fn list(
    conn: &mut AnyConnection,
    tenant_id: Option<&str>,
) -> ApiResult<Vec<OverageRule>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM overage_rules WHERE $1 IS NULL OR tenant_id = $1 \
         OR tenant_id IS NULL ORDER BY scope, metric"
    ))
    .bind(tenant_id.map(str::to_owned))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(rule_of).collect()
}

/// The rules in force for `tenant_id`: per metric its own rule, else the default (enabled
/// or not; callers skip disabled ones).
pub async fn effective(conn: &mut AnyConnection, tenant_id: &str) -> ApiResult<Vec<OverageRule>> {
    let all = list(conn, Some(tenant_id)).await?;
    let own: Vec<Metric> = all
        .iter()
        .filter(|r| r.tenant_id.is_some())
        .map(|r| r.metric)
        .collect();
    Ok(all
        .into_iter()
        .filter(|r| r.tenant_id.is_some() || !own.contains(&r.metric))
        .collect())
}

fn rule_of(row: &AnyRow) -> ApiResult<OverageRule> {
    let metric: String = row.try_get("metric")?;
    let mode: String = row.try_get("mode")?;
    let thresholds: String = row.try_get("thresholds")?;
    let enabled: i64 = row.try_get("enabled")?;
    Ok(OverageRule {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        metric: if metric == "spend" {
            Metric::Spend
        } else {
            Metric::Tokens
        },
        mode: if mode == "hard" {
            Mode::Hard
        } else {
            Mode::Soft
        },
        included_tokens: row.try_get("included_tokens")?,
        included_spend_minor: row.try_get("included_spend_minor")?,
        overage_per_1k_micros: row.try_get("overage_per_1k_micros")?,
        thresholds: serde_json::from_str(&thresholds).map_err(ApiError::internal)?,
        enabled: enabled != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
