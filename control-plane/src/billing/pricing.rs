//! Pricing and debiting usage at ingest, in the transaction that stores the usage rows
//! (billing-medical.md §1.4).
//!
//! For a batch sorted by request id, [`price_batch`] finds each event's rate (the version of
//! its model in force at `occurred_at`; none: cost 0, no rate), computes the exact cost in
//! micros, and locks the balance row of every tenant with a non-zero cost, in tenant-id order
//! (so concurrent batches never deadlock, and two deliveries of one request id serialize).
//! [`PricedBatch::debits`] then splits the costs of the rows that are really new into whole
//! minor units with the tenant's carry, in request-id order, and [`apply`] moves each balance
//! once and checks its low-balance threshold.
//!
//! A row's currency is its rate's, else the tenant's balance currency, else the default. A
//! priced row whose currency differs from the tenant's balance is stored with its cost but not
//! debited (a warning is logged): converting currencies is not the ledger's job.

use std::collections::{BTreeMap, HashMap};

use medgate_config::UsageEvent;
use sqlx::Row;

use super::ledger::{self, Balance};
use super::money::{usage_cost_micros, DEFAULT_CURRENCY};
use super::rates::{self, ModelRate};
use super::thresholds;
use crate::error::{ApiError, ApiResult};
use crate::store::Tx;

/// The price of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub rate_id: Option<String>,
    pub currency: String,
    pub cost_micros: i64,
}

/// The prices of a batch and the balances it locked.
#[derive(Debug)]
pub struct PricedBatch {
    pub prices: Vec<Price>,
    locked: BTreeMap<String, Balance>,
}

/// What the new rows of a batch debit.
#[derive(Debug, Default)]
pub struct Debits {
    /// Per event of the batch (0 for rows that are not new or not debited).
    pub per_row: Vec<i64>,
    /// Per locked tenant: the balance before, the total debit and the new carry.
    per_tenant: BTreeMap<String, (Balance, i64, i64)>,
}

/// Prices `events` (sorted by request id) and locks the balances they will debit.
pub async fn price_batch(tx: &mut Tx, events: &[UsageEvent]) -> ApiResult<PricedBatch> {
    let mut models: Vec<&str> = events.iter().map(|e| e.model_id.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    let mut book: HashMap<String, Vec<ModelRate>> = HashMap::new();
    for rate in rates::versions_of(tx, &models).await? {
        book.entry(rate.model_id.clone()).or_default().push(rate);
    }
    let mut priced = Vec::with_capacity(events.len());
    let mut to_lock: BTreeMap<&str, &str> = BTreeMap::new();
    for e in events {
        let rate = book
            .get(&e.model_id)
            .and_then(|v| rate_at(v, &e.occurred_at));
        let cost = match rate {
            Some(r) => usage_cost_micros(
                e.input_tokens,
                e.output_tokens,
                r.input_per_1k_micros,
                r.output_per_1k_micros,
                r.per_request_micros,
            )
            .ok_or_else(|| {
                ApiError::invalid("events", format!("the cost of {} overflows", e.request_id))
            })?,
            None => 0,
        };
        if let (Some(r), true) = (rate, cost > 0) {
            to_lock.entry(e.tenant_id.as_str()).or_insert(&r.currency);
        }
        priced.push((rate, cost));
    }
    let mut locked = BTreeMap::new();
    for (tenant, currency) in to_lock {
        locked.insert(
            tenant.to_owned(),
            ledger::lock_balance(tx, tenant, currency).await?,
        );
    }
    let unlocked: Vec<&str> = events
        .iter()
        .zip(&priced)
        .filter(|(e, (rate, _))| rate.is_none() && !locked.contains_key(&e.tenant_id))
        .map(|(e, _)| e.tenant_id.as_str())
        .collect();
    let currencies = balance_currencies(tx, unlocked).await?;
    let prices = events
        .iter()
        .zip(priced)
        .map(|(e, (rate, cost))| Price {
            rate_id: rate.map(|r| r.id.clone()),
            currency: rate
                .map(|r| r.currency.clone())
                .or_else(|| locked.get(&e.tenant_id).map(|b| b.currency.clone()))
                .or_else(|| currencies.get(&e.tenant_id).cloned())
                .unwrap_or_else(|| DEFAULT_CURRENCY.to_owned()),
            cost_micros: cost,
        })
        .collect();
    Ok(PricedBatch { prices, locked })
}

/// The version in force at `at` among versions sorted by `effective_from`.
fn rate_at<'a>(versions: &'a [ModelRate], at: &str) -> Option<&'a ModelRate> {
    let n = versions.partition_point(|r| r.effective_from.as_str() <= at);
    n.checked_sub(1).and_then(|i| versions.get(i))
}

async fn balance_currencies(
    tx: &mut Tx,
    mut tenants: Vec<&str>,
) -> ApiResult<HashMap<String, String>> {
    tenants.sort_unstable();
    tenants.dedup();
    let mut out = HashMap::new();
    for chunk in tenants.chunks(500) {
        let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT tenant_id, currency FROM tenant_balances WHERE tenant_id IN ({})",
            params.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for t in chunk {
            query = query.bind((*t).to_owned());
        }
        for row in query.fetch_all(&mut **tx).await? {
            out.insert(row.try_get("tenant_id")?, row.try_get("currency")?);
        }
    }
    Ok(out)
}

impl PricedBatch {
    /// Whether event `i` takes part in its tenant's debit chain (a non-zero cost in the
    /// currency of a balance this batch locked): whether it being new or not changes the
    /// debits of the other rows.
    pub fn in_chain(&self, events: &[UsageEvent], i: usize) -> bool {
        let (Some(e), Some(p)) = (events.get(i), self.prices.get(i)) else {
            return false;
        };
        p.cost_micros > 0
            && self
                .locked
                .get(&e.tenant_id)
                .is_some_and(|b| b.currency == p.currency)
    }

    /// The debits of the events for which `is_new(i)` holds, with each tenant's carry, in the
    /// batch's (request-id) order.
    pub fn debits(&self, events: &[UsageEvent], is_new: impl Fn(usize) -> bool) -> Debits {
        let mut chains: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut mismatched: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            if !is_new(i) || self.prices.get(i).is_none_or(|p| p.cost_micros == 0) {
                continue;
            }
            if self.in_chain(events, i) {
                chains.entry(e.tenant_id.as_str()).or_default().push(i);
            } else {
                *mismatched.entry(e.tenant_id.as_str()).or_default() += 1;
            }
        }
        for (tenant, rows) in mismatched {
            tracing::warn!(
                tenant_id = %tenant,
                rows,
                "usage priced in a currency other than the tenant's balance: stored, not debited"
            );
        }
        let mut debits = Debits {
            per_row: vec![0; events.len()],
            per_tenant: BTreeMap::new(),
        };
        for (tenant, rows) in chains {
            let Some(balance) = self.locked.get(tenant) else {
                continue;
            };
            let costs: Vec<i64> = rows
                .iter()
                .map(|&i| self.prices.get(i).map_or(0, |p| p.cost_micros))
                .collect();
            let (split, carry) = ledger::split_debits(balance.carry_micros, &costs);
            let mut total = 0i64;
            for (&i, d) in rows.iter().zip(split) {
                if let Some(slot) = debits.per_row.get_mut(i) {
                    *slot = d;
                }
                total = total.saturating_add(d);
            }
            debits
                .per_tenant
                .insert(tenant.to_owned(), (balance.clone(), total, carry));
        }
        debits
    }
}

/// Moves each debited balance once and checks its low-balance threshold.
pub async fn apply(tx: &mut Tx, debits: &Debits) -> ApiResult<()> {
    for (tenant, (before, total, carry)) in &debits.per_tenant {
        if *total == 0 && *carry == before.carry_micros {
            continue;
        }
        let after = ledger::apply_usage_debits(tx, tenant, *total, *carry).await?;
        if *total != 0 {
            thresholds::observe(
                tx,
                tenant,
                &after.currency,
                before.balance_minor,
                after.balance_minor,
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(id: &str, from: &str) -> ModelRate {
        ModelRate {
            id: id.into(),
            model_id: "m".into(),
            currency: "CNY".into(),
            input_per_1k_micros: 1,
            output_per_1k_micros: 1,
            per_request_micros: 0,
            effective_from: from.into(),
            created_at: from.into(),
            created_by: None,
        }
    }

    #[test]
    fn the_rate_in_force_is_the_latest_not_after_the_event() {
        let v = vec![
            rate("a", "2026-01-01T00:00:00.000000Z"),
            rate("b", "2026-02-01T00:00:00.000000Z"),
        ];
        assert_eq!(rate_at(&v, "2025-12-31T23:59:59.999999Z"), None);
        assert_eq!(
            rate_at(&v, "2026-01-01T00:00:00.000000Z").map(|r| r.id.as_str()),
            Some("a")
        );
        assert_eq!(
            rate_at(&v, "2026-01-31T23:59:59.999999Z").map(|r| r.id.as_str()),
            Some("a")
        );
        assert_eq!(
            rate_at(&v, "2026-02-01T00:00:00.000000Z").map(|r| r.id.as_str()),
            Some("b")
        );
    }
}
