//! The balance ledger (billing-medical.md §2.5): append-only entries, a cached balance per
//! tenant updated in the same transaction, idempotency keys, and usage debits with an exact
//! carry of sub-minor amounts.
//!
//! Concurrency: a tenant's balance row is the lock. [`post`] inserts the entry first (unique
//! per tenant and idempotency key, so a concurrent replay waits for the first and then finds
//! it) and then moves the balance with one conditional UPDATE, never a value computed in the
//! application. Usage ingest locks the balance rows it debits ([`lock_balance`], in tenant
//! order) before it inserts usage rows, so the carry chain is computed on a stable value.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::money::{is_currency, MICROS_PER_MINOR};
use crate::error::{ApiError, ApiResult};
use crate::store::{self, Tx};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    TopUp,
    Redemption,
    Adjustment,
    Refund,
    InvoicePayment,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::TopUp => "top_up",
            EntryKind::Redemption => "redemption",
            EntryKind::Adjustment => "adjustment",
            EntryKind::Refund => "refund",
            EntryKind::InvoicePayment => "invoice_payment",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "top_up" => EntryKind::TopUp,
            "redemption" => EntryKind::Redemption,
            "adjustment" => EntryKind::Adjustment,
            "refund" => EntryKind::Refund,
            "invoice_payment" => EntryKind::InvoicePayment,
            _ => return None,
        })
    }
}

/// An entry to post.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub tenant_id: String,
    pub kind: EntryKind,
    /// Signed: credits are positive, debits negative.
    pub amount_minor: i64,
    pub currency: String,
    /// Unique per tenant, e.g. `redeem:<card id>` or `adjust:<Idempotency-Key>`.
    pub idempotency_key: String,
    pub reason: Option<String>,
    /// What the entry is about (a card id, an invoice id).
    pub reference: Option<String>,
    /// Who caused it (the principal's subject).
    pub actor: Option<String>,
}

/// Whether a debit may take the balance below the tenant's overdraft limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Refused (409 `insufficient_balance`) when the balance would fall below
    /// `-overdraft_minor`. Credits always pass.
    WithinOverdraft,
    /// Always applied (e.g. a refund correction ordered by an operator).
    Unconditional,
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LedgerEntry {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    pub amount_minor: i64,
    pub currency: String,
    pub idempotency_key: String,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub actor: Option<String>,
    pub created_at: String,
}

/// A tenant's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Balance {
    pub tenant_id: String,
    pub currency: String,
    pub balance_minor: i64,
    /// Priced usage not yet debited as a whole minor unit (0 to 999,999 micros).
    pub carry_micros: i64,
    /// How far below zero the balance may go before the gateway answers 402; None means no
    /// limit (a postpaid tenant), 0 a strictly prepaid one. New balances have no limit.
    pub overdraft_minor: Option<i64>,
    /// Bumped on every change.
    pub revision: i64,
    pub updated_at: String,
}

impl Balance {
    /// What the tenant can still spend: balance plus overdraft; None without a limit.
    pub fn spendable_minor(&self) -> Option<i64> {
        self.overdraft_minor
            .map(|o| self.balance_minor.saturating_add(o))
    }
}

/// The result of [`post`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub entry: LedgerEntry,
    /// The key was used before with the same content: nothing changed.
    pub replayed: bool,
    pub balance: Balance,
}

const ENTRY_COLUMNS: &str = "id, tenant_id, kind, amount_minor, currency, idempotency_key, \
    reason, reference, actor, created_at";
const BALANCE_COLUMNS: &str =
    "tenant_id, currency, balance_minor, carry_micros, overdraft_minor, revision, updated_at";

/// Posts an entry and moves the balance, in the caller's transaction. A replay of the same
/// key with the same kind, amount and currency returns the stored entry; with different
/// content it is 409 `idempotency_key_reused`. An error leaves the transaction to be dropped
/// (rolled back) by the caller.
pub async fn post(tx: &mut Tx, entry: NewEntry, guard: Guard) -> ApiResult<Posted> {
    if !is_currency(&entry.currency) {
        return Err(ApiError::invalid("currency", "must be an ISO 4217 code"));
    }
    if entry.idempotency_key.is_empty() || entry.idempotency_key.len() > 255 {
        return Err(ApiError::invalid(
            "idempotency_key",
            "must be 1 to 255 characters",
        ));
    }
    let balance = ensure_balance(tx, &entry.tenant_id, &entry.currency).await?;
    if balance.currency != entry.currency {
        return Err(ApiError::Unprocessable {
            code: "currency_mismatch",
            message: format!(
                "the tenant's balance is in {}, not {}",
                balance.currency, entry.currency
            ),
            details: serde_json::json!({ "field": "currency" }),
        });
    }
    let id = store::new_id("led");
    let now = store::now();
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO ledger_entries (id, tenant_id, kind, amount_minor, currency, \
         idempotency_key, reason, reference, actor, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(entry.tenant_id.clone())
    .bind(entry.kind.as_str())
    .bind(entry.amount_minor)
    .bind(entry.currency.clone())
    .bind(entry.idempotency_key.clone())
    .bind(entry.reason.clone())
    .bind(entry.reference.clone())
    .bind(entry.actor.clone())
    .bind(now.clone())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = inserted else {
        let stored = find(tx, &entry.tenant_id, &entry.idempotency_key)
            .await?
            .ok_or_else(|| ApiError::internal("ledger entry vanished after a key conflict"))?;
        if stored.kind != entry.kind.as_str()
            || stored.amount_minor != entry.amount_minor
            || stored.currency != entry.currency
        {
            return Err(ApiError::conflict(
                "idempotency_key_reused",
                "this idempotency key was used for a different operation",
            ));
        }
        let balance = read_balance(tx, &entry.tenant_id)
            .await?
            .ok_or_else(|| ApiError::internal("balance row vanished"))?;
        return Ok(Posted {
            entry: stored,
            replayed: true,
            balance,
        });
    };
    let conditional = entry.amount_minor < 0 && guard == Guard::WithinOverdraft;
    let row = sqlx::query(&format!(
        "UPDATE tenant_balances SET balance_minor = balance_minor + $1, \
         revision = revision + 1, updated_at = $2 \
         WHERE tenant_id = $3 AND ($4 = 0 OR overdraft_minor IS NULL \
              OR balance_minor + $1 >= -overdraft_minor) \
         RETURNING {BALANCE_COLUMNS}"
    ))
    .bind(entry.amount_minor)
    .bind(now.clone())
    .bind(entry.tenant_id.clone())
    .bind(i64::from(conditional))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Err(ApiError::conflict(
            "insufficient_balance",
            format!(
                "the balance ({} {}) plus the overdraft allowed ({}) does not cover {}",
                balance.balance_minor,
                balance.currency,
                balance.overdraft_minor.unwrap_or_default(),
                -entry.amount_minor
            ),
        ));
    };
    Ok(Posted {
        entry: LedgerEntry {
            id,
            tenant_id: entry.tenant_id,
            kind: entry.kind.as_str().to_owned(),
            amount_minor: entry.amount_minor,
            currency: entry.currency,
            idempotency_key: entry.idempotency_key,
            reason: entry.reason,
            reference: entry.reference,
            actor: entry.actor,
            created_at: now,
        },
        replayed: false,
        balance: balance_of(&row)?,
    })
}

/// The tenant's balance row, created (empty, in `currency`) when missing.
pub async fn ensure_balance(tx: &mut Tx, tenant_id: &str, currency: &str) -> ApiResult<Balance> {
    sqlx::query(
        "INSERT INTO tenant_balances (tenant_id, currency, balance_minor, carry_micros, \
         overdraft_minor, revision, updated_at) VALUES ($1, $2, 0, 0, NULL, 0, $3) \
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant_id.to_owned())
    .bind(currency.to_owned())
    .bind(store::now())
    .execute(&mut **tx)
    .await?;
    read_balance(tx, tenant_id)
        .await?
        .ok_or_else(|| ApiError::internal("balance row missing after insert"))
}

/// Locks the tenant's balance row for the rest of the transaction (PostgreSQL `FOR UPDATE`;
/// SQLite transactions already write one at a time), creating it when missing.
pub async fn lock_balance(tx: &mut Tx, tenant_id: &str, currency: &str) -> ApiResult<Balance> {
    ensure_balance(tx, tenant_id, currency).await?;
    let lock = if tx.backend_name().eq_ignore_ascii_case("postgresql") {
        " FOR UPDATE"
    } else {
        ""
    };
    let row = sqlx::query(&format!(
        "SELECT {BALANCE_COLUMNS} FROM tenant_balances WHERE tenant_id = $1{lock}"
    ))
    .bind(tenant_id.to_owned())
    .fetch_one(&mut **tx)
    .await?;
    balance_of(&row)
}

/// Splits priced usage into whole-minor debits, carrying the remainder: for each cost in
/// order, `debit = (carry + cost) / 1e6` and `carry = (carry + cost) % 1e6`. Returns the
/// debits and the final carry; the sum of debits times 1e6 plus the carry always equals the
/// starting carry plus the costs. Costs are never negative.
pub fn split_debits(mut carry: i64, costs: &[i64]) -> (Vec<i64>, i64) {
    let debits = costs
        .iter()
        .map(|&cost| {
            let total = carry.saturating_add(cost.max(0));
            carry = total % MICROS_PER_MINOR;
            total / MICROS_PER_MINOR
        })
        .collect();
    (debits, carry)
}

/// Applies usage debits computed by [`split_debits`] on a locked balance row: usage already
/// happened, so the debit is unconditional (the gateway's 402 bounds how far it can go).
pub async fn apply_usage_debits(
    tx: &mut Tx,
    tenant_id: &str,
    total_debit_minor: i64,
    new_carry_micros: i64,
) -> ApiResult<Balance> {
    let row = sqlx::query(&format!(
        "UPDATE tenant_balances SET balance_minor = balance_minor - $1, carry_micros = $2, \
         revision = revision + 1, updated_at = $3 WHERE tenant_id = $4 \
         RETURNING {BALANCE_COLUMNS}"
    ))
    .bind(total_debit_minor)
    .bind(new_carry_micros)
    .bind(store::now())
    .bind(tenant_id.to_owned())
    .fetch_one(&mut **tx)
    .await?;
    balance_of(&row)
}

/// The tenant's balance, None when it never had one.
pub async fn read_balance(tx: &mut Tx, tenant_id: &str) -> ApiResult<Option<Balance>> {
    let row = sqlx::query(&format!(
        "SELECT {BALANCE_COLUMNS} FROM tenant_balances WHERE tenant_id = $1"
    ))
    .bind(tenant_id.to_owned())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(balance_of).transpose()
}

/// Sets how far below zero the tenant may go (None: no limit).
pub async fn set_overdraft(
    tx: &mut Tx,
    tenant_id: &str,
    currency: &str,
    overdraft_minor: Option<i64>,
) -> ApiResult<Balance> {
    if overdraft_minor.is_some_and(|o| o < 0) {
        return Err(ApiError::invalid("overdraft_minor", "must be 0 or more"));
    }
    ensure_balance(tx, tenant_id, currency).await?;
    let row = sqlx::query(&format!(
        "UPDATE tenant_balances SET overdraft_minor = $1, revision = revision + 1, \
         updated_at = $2 WHERE tenant_id = $3 RETURNING {BALANCE_COLUMNS}"
    ))
    .bind(overdraft_minor)
    .bind(store::now())
    .bind(tenant_id.to_owned())
    .fetch_one(&mut **tx)
    .await?;
    balance_of(&row)
}

async fn find(tx: &mut Tx, tenant_id: &str, key: &str) -> ApiResult<Option<LedgerEntry>> {
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE tenant_id = $1 AND idempotency_key = $2"
    ))
    .bind(tenant_id.to_owned())
    .bind(key.to_owned())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(entry_of).transpose()
}

/// Tenants whose cached balance differs from what the ledger and the usage rows add up to
/// (the reconciliation check; empty when the books balance).
pub async fn drift(tx: &mut Tx) -> ApiResult<Vec<(String, i64, i64)>> {
    let rows = sqlx::query(
        // PostgreSQL sums BIGINTs as NUMERIC, which sqlx's Any driver cannot decode.
        "SELECT b.tenant_id, b.balance_minor, CAST(\
         COALESCE((SELECT SUM(l.amount_minor) FROM ledger_entries l \
                   WHERE l.tenant_id = b.tenant_id), 0) \
         - COALESCE((SELECT SUM(u.debit_minor) FROM usage_events u \
                     WHERE u.tenant_id = b.tenant_id), 0) AS BIGINT) AS computed \
         FROM tenant_balances b",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let cached: i64 = row.try_get("balance_minor")?;
        let computed: i64 = row.try_get("computed")?;
        if cached != computed {
            out.push((row.try_get("tenant_id")?, cached, computed));
        }
    }
    Ok(out)
}

pub(crate) fn entry_of(row: &AnyRow) -> ApiResult<LedgerEntry> {
    Ok(LedgerEntry {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        kind: row.try_get("kind")?,
        amount_minor: row.try_get("amount_minor")?,
        currency: row.try_get("currency")?,
        idempotency_key: row.try_get("idempotency_key")?,
        reason: row.try_get("reason")?,
        reference: row.try_get("reference")?,
        actor: row.try_get("actor")?,
        created_at: row.try_get("created_at")?,
    })
}

fn balance_of(row: &AnyRow) -> ApiResult<Balance> {
    Ok(Balance {
        tenant_id: row.try_get("tenant_id")?,
        currency: row.try_get("currency")?,
        balance_minor: row.try_get("balance_minor")?,
        carry_micros: row.try_get("carry_micros")?,
        overdraft_minor: row.try_get("overdraft_minor")?,
        revision: row.try_get("revision")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debits_carry_the_remainder_exactly() {
        // Ten requests of 0.3 fen each: 3 fen debited in total, never 0 and never 10.
        let (debits, carry) = split_debits(0, &[300_000; 10]);
        assert_eq!(debits.iter().sum::<i64>(), 3);
        assert_eq!(carry, 0);
        assert_eq!(debits, vec![0, 0, 0, 1, 0, 0, 1, 0, 0, 1]);
        let (debits, carry) = split_debits(999_999, &[1, 2_500_000]);
        assert_eq!(debits, vec![1, 2]);
        assert_eq!(carry, 500_000);
    }
}
