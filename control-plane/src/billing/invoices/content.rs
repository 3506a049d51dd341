//! What an invoice says: its lines and totals, computed in integers from the usage rows,
//! the tenant's plan and the overage allowance, and the hash that freezes it.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sqlx::Row;

use super::period::Period;
use super::{InvoiceLine, LineKind};
use crate::billing::money::{div_round_half_up, micros_to_minor, MICROS_PER_MINOR};
use crate::billing::overage::rules::{self, Metric};
use crate::error::{ApiError, ApiResult};
use crate::store::{resources, Tx};
use crate::tenants::Tenant;

/// Which usage rows an invoice bills.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// Not billed yet: rows in the period, plus late rows of earlier issued periods (a
    /// draft's preview; also what issuing claims).
    Unbilled,
    /// Rows claimed by this invoice (what an issued invoice billed).
    Claimed(&'a str),
}

/// Lines and totals of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    pub subtotal_minor: i64,
    pub credits_minor: i64,
    pub tax_rate_bps: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
}

/// What the tenant pays besides usage, from its plan and overage rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    pub plan_name: Option<String>,
    pub plan_currency: Option<String>,
    pub monthly_price_minor: i64,
    pub included_credit_minor: i64,
    /// Tokens included per period; None means no token overage.
    pub included_tokens: Option<i64>,
    pub overage_per_1k_micros: i64,
}

/// Rows not billed yet: in `[start, end)`, or before `start` inside a period whose invoice
/// was already issued (late usage). `$1` tenant, `$2` start, `$3` end.
const UNBILLED: &str = "usage_events.tenant_id = $1 AND usage_events.invoice_id IS NULL AND \
    ((usage_events.occurred_at >= $2 AND usage_events.occurred_at < $3) OR \
     (usage_events.occurred_at < $2 AND EXISTS (SELECT 1 FROM invoices i \
        WHERE i.tenant_id = usage_events.tenant_id AND i.status <> 'draft' \
        AND usage_events.occurred_at >= i.period_start \
        AND usage_events.occurred_at < i.period_end)))";

/// Marks the unbilled rows of `period` as billed by `invoice_id`, in the issuing
/// transaction. Rows committed after this statement stay unbilled (late usage).
pub async fn claim_usage(
    tx: &mut Tx,
    invoice_id: &str,
    tenant_id: &str,
    period: &Period,
) -> ApiResult<u64> {
    let done = sqlx::query(&format!(
        "UPDATE usage_events SET invoice_id = $4 WHERE {UNBILLED}"
    ))
    .bind(tenant_id.to_owned())
    .bind(period.start.clone())
    .bind(period.end.clone())
    .bind(invoice_id.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// The plan and overage terms of `tenant`: included tokens and the overage rate come from
/// the tenant's own enabled token rule, else the plan (`included_tokens`,
/// `overage_per_1k_micros` when the plan has them), else the platform default token rule.
pub async fn terms(tx: &mut Tx, tenant: &Tenant) -> ApiResult<Terms> {
    let mut terms = Terms::default();
    let mut plan_allowance = None;
    if let Some(plan_id) = &tenant.plan_id {
        if let Some(row) = resources::get(tx, "tenant_plan", plan_id).await? {
            let plan: Value = serde_json::from_str(&row.body).map_err(ApiError::internal)?;
            let int = |k: &str| plan.get(k).and_then(Value::as_i64);
            terms.plan_name = plan.get("name").and_then(Value::as_str).map(str::to_owned);
            terms.plan_currency = plan
                .get("currency")
                .and_then(Value::as_str)
                .map(str::to_owned);
            terms.monthly_price_minor = int("monthly_price_minor").unwrap_or(0).max(0);
            terms.included_credit_minor = int("included_credit_minor").unwrap_or(0).max(0);
            if let Some(tokens) = int("included_tokens") {
                plan_allowance = Some((tokens.max(0), int("overage_per_1k_micros").unwrap_or(0)));
            }
        }
    }
    let token_rule = rules::effective(tx, &tenant.id)
        .await?
        .into_iter()
        .find(|r| r.metric == Metric::Tokens && r.enabled);
    let allowance = match (&token_rule, plan_allowance) {
        (Some(r), _) if r.tenant_id.is_some() => {
            r.included_tokens.map(|t| (t, r.overage_per_1k_micros))
        }
        (_, Some(plan)) => Some(plan),
        (Some(r), None) => r.included_tokens.map(|t| (t, r.overage_per_1k_micros)),
        (None, None) => None,
    };
    if let Some((tokens, rate)) = allowance {
        terms.included_tokens = Some(tokens);
        terms.overage_per_1k_micros = rate.max(0);
    }
    Ok(terms)
}

/// Usage of one model, in the period or late.
#[derive(Debug, Default)]
struct Group {
    model_name: String,
    requests: i64,
    tokens: i64,
    cost_micros: i128,
}

/// Computes the content of `tenant`'s invoice for `period` from the usage `source`.
pub async fn compute(
    tx: &mut Tx,
    tenant: &Tenant,
    period: &Period,
    source: Source<'_>,
    tax_rate_bps: i64,
) -> ApiResult<Content> {
    let currency = tenant.currency.clone();
    let terms = terms(tx, tenant).await?;
    let (selector, first) = match source {
        Source::Unbilled => (UNBILLED.to_owned(), tenant.id.clone()),
        Source::Claimed(id) => ("usage_events.invoice_id = $1".to_owned(), id.to_owned()),
    };
    let sql = format!(
        "SELECT model_id, MAX(model_name) AS model_name, currency, late, \
         CAST(COUNT(*) AS BIGINT) AS requests, CAST(SUM(tokens) AS BIGINT) AS tokens, \
         CAST(SUM(cost_micros) AS BIGINT) AS cost FROM (SELECT model_id, model_name, currency, \
         input_tokens + output_tokens AS tokens, cost_micros, \
         CAST(CASE WHEN occurred_at < $2 THEN 1 ELSE 0 END AS BIGINT) AS late \
         FROM usage_events WHERE {selector}) u \
         GROUP BY model_id, currency, late ORDER BY late, model_id"
    );
    let mut query = sqlx::query(&sql).bind(first).bind(period.start.clone());
    if matches!(source, Source::Unbilled) {
        query = query.bind(period.end.clone());
    }
    let rows = query.fetch_all(&mut **tx).await?;
    let mut groups: BTreeMap<(bool, String), Group> = BTreeMap::new();
    for row in &rows {
        let row_currency: Option<String> = row.try_get("currency")?;
        let cost: i64 = row.try_get("cost")?;
        if cost != 0 && row_currency.as_deref().is_some_and(|c| c != currency) {
            return Err(ApiError::Unprocessable {
                code: "currency_mismatch",
                message: format!(
                    "usage priced in {} cannot go on an invoice in {currency}",
                    row_currency.unwrap_or_default()
                ),
                details: json!({ "field": "tenant_id" }),
            });
        }
        let late: i64 = row.try_get("late")?;
        let group = groups
            .entry((late != 0, row.try_get("model_id")?))
            .or_default();
        group.model_name = row.try_get("model_name")?;
        group.requests += row.try_get::<i64, _>("requests")?;
        group.tokens += row.try_get::<i64, _>("tokens")?;
        group.cost_micros += i128::from(cost);
    }
    build(currency, &terms, period, groups, tax_rate_bps)
}

fn overflow() -> ApiError {
    ApiError::Unprocessable {
        code: "amount_overflow",
        message: "an invoice amount does not fit in 64 bits".into(),
        details: Value::Null,
    }
}

/// A line with no usage quantities (positions are assigned once all lines exist).
fn line(kind: LineKind, description: String, amount_minor: i64) -> InvoiceLine {
    InvoiceLine {
        position: 0,
        kind,
        description,
        model_id: None,
        quantity_tokens: 0,
        requests: 0,
        cost_micros: 0,
        amount_minor,
    }
}

fn build(
    currency: String,
    terms: &Terms,
    period: &Period,
    groups: BTreeMap<(bool, String), Group>,
    tax_rate_bps: i64,
) -> ApiResult<Content> {
    if terms.monthly_price_minor > 0
        && terms
            .plan_currency
            .as_deref()
            .is_some_and(|c| c != currency)
    {
        return Err(ApiError::Unprocessable {
            code: "currency_mismatch",
            message: format!("the tenant's plan is not priced in the tenant's currency {currency}"),
            details: json!({ "field": "tenant_id" }),
        });
    }
    let mut lines: Vec<InvoiceLine> = Vec::new();
    let (mut usage_minor, mut period_tokens) = (0i128, 0i128);
    for ((late, model_id), g) in groups {
        let amount = micros_to_minor(g.cost_micros).ok_or_else(overflow)?;
        let micros = i64::try_from(g.cost_micros).map_err(|_| overflow())?;
        usage_minor += i128::from(amount);
        let (kind, description) = if late {
            let before = period.label.as_deref().unwrap_or(&period.start);
            (
                LineKind::LateUsage,
                format!("{} (late usage from before {before})", g.model_name),
            )
        } else {
            period_tokens += i128::from(g.tokens);
            (LineKind::ModelUsage, format!("{} usage", g.model_name))
        };
        lines.push(InvoiceLine {
            model_id: Some(model_id),
            quantity_tokens: g.tokens,
            requests: g.requests,
            cost_micros: micros,
            ..line(kind, description, amount)
        });
    }
    if terms.monthly_price_minor > 0 {
        let name = terms.plan_name.as_deref().unwrap_or("plan");
        let fee = terms.monthly_price_minor;
        lines.push(line(LineKind::PlanFee, format!("{name} monthly fee"), fee));
    }
    if let Some(included) = terms.included_tokens {
        let over = period_tokens - i128::from(included);
        if over > 0 && terms.overage_per_1k_micros > 0 {
            let micros_x1k = over * i128::from(terms.overage_per_1k_micros);
            let micros = div_round_half_up(micros_x1k, 1_000).ok_or_else(overflow)?;
            let amount = div_round_half_up(micros_x1k, 1_000 * i128::from(MICROS_PER_MINOR))
                .and_then(|a| i64::try_from(a).ok())
                .ok_or_else(overflow)?;
            let description = format!(
                "{over} tokens over the {included} included, at {} micros per 1,000",
                terms.overage_per_1k_micros
            );
            let tokens = i64::try_from(over).map_err(|_| overflow())?;
            let micros = i64::try_from(micros).map_err(|_| overflow())?;
            lines.push(InvoiceLine {
                quantity_tokens: tokens,
                cost_micros: micros,
                ..line(LineKind::Overage, description, amount)
            });
        }
    }
    let subtotal: i128 = lines.iter().map(|l| i128::from(l.amount_minor)).sum();
    let credits = i128::from(terms.included_credit_minor).min(usage_minor.max(0));
    if credits > 0 {
        let amount = i64::try_from(-credits).map_err(|_| overflow())?;
        lines.push(line(LineKind::Credit, "Included credit".into(), amount));
    }
    for (i, l) in lines.iter_mut().enumerate() {
        l.position = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
    }
    let tax = div_round_half_up((subtotal - credits) * i128::from(tax_rate_bps), 10_000)
        .ok_or_else(overflow)?;
    let total = subtotal - credits + tax;
    let fit = |v: i128| i64::try_from(v).map_err(|_| overflow());
    Ok(Content {
        currency,
        lines,
        subtotal_minor: fit(subtotal)?,
        credits_minor: fit(credits)?,
        tax_rate_bps,
        tax_minor: fit(tax)?,
        total_minor: fit(total)?,
    })
}

/// SHA-256 (hex) of everything an issued invoice freezes.
pub fn content_hash(tenant_id: &str, period: &Period, number: i64, content: &Content) -> String {
    use sha2::Digest;
    let lines: Vec<Value> = content
        .lines
        .iter()
        .map(|l| {
            json!([
                l.position,
                l.kind.as_str(),
                l.description,
                l.model_id,
                l.quantity_tokens,
                l.requests,
                l.cost_micros,
                l.amount_minor
            ])
        })
        .collect();
    let canonical = json!([
        tenant_id,
        period.start,
        period.end,
        number,
        content.currency,
        content.subtotal_minor,
        content.credits_minor,
        content.tax_rate_bps,
        content.tax_minor,
        content.total_minor,
        lines
    ]);
    hex::encode(sha2::Sha256::digest(canonical.to_string().as_bytes()))
}

/// Replaces a draft's lines and amounts with `content`.
pub async fn write(tx: &mut Tx, invoice_id: &str, content: &Content, now: &str) -> ApiResult<()> {
    sqlx::query("DELETE FROM invoice_lines WHERE invoice_id = $1")
        .bind(invoice_id.to_owned())
        .execute(&mut **tx)
        .await?;
    for l in &content.lines {
        sqlx::query(
            "INSERT INTO invoice_lines (invoice_id, position, kind, description, model_id, \
             quantity_tokens, requests, cost_micros, amount_minor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(invoice_id.to_owned())
        .bind(l.position)
        .bind(l.kind.as_str())
        .bind(l.description.clone())
        .bind(l.model_id.clone())
        .bind(l.quantity_tokens)
        .bind(l.requests)
        .bind(l.cost_micros)
        .bind(l.amount_minor)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "UPDATE invoices SET currency = $1, subtotal_minor = $2, credits_minor = $3, \
         tax_rate_bps = $4, tax_minor = $5, total_minor = $6, updated_at = $7 \
         WHERE id = $8 AND status = 'draft'",
    )
    .bind(content.currency.clone())
    .bind(content.subtotal_minor)
    .bind(content.credits_minor)
    .bind(content.tax_rate_bps)
    .bind(content.tax_minor)
    .bind(content.total_minor)
    .bind(now.to_owned())
    .bind(invoice_id.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
