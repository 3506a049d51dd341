//! A tenant's balance as the API shows it (API §5.3), admin adjustments and the overdraft
//! limit (API §5.4), on top of the ledger ([`super::ledger`]).

use serde::{Deserialize, Serialize};

use super::ledger::{self, Balance, EntryKind, Guard, LedgerEntry, NewEntry};
use super::money::DEFAULT_CURRENCY;
use super::thresholds::{self, Threshold};
use crate::error::{ApiError, ApiResult};
use crate::store::{Store, Tx};
use crate::validate;

/// `GET /api/tenants/{tenantId}/balance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BalanceView {
    pub tenant_id: String,
    pub currency: String,
    /// SUM(ledger entries) - SUM(usage debits), minor units.
    pub balance_minor: i64,
    /// How far below zero the balance may go; None: no limit (postpaid, never refused for
    /// money), 0: strictly prepaid.
    pub overdraft_minor: Option<i64>,
    /// Balance plus overdraft: what the gateway lets the tenant spend (402 at 0 or below);
    /// None without a limit.
    pub spendable_minor: Option<i64>,
    /// Priced usage not yet debited as a whole minor unit (0 to 999,999 micros).
    pub carry_micros: i64,
    /// Bumped on every change; 0 for a tenant that never had a balance.
    pub revision: i64,
    pub updated_at: Option<String>,
    /// The low-balance threshold, when one is set.
    pub threshold: Option<ThresholdState>,
}

/// The threshold part of a balance view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ThresholdState {
    pub threshold_minor: i64,
    /// Whether the balance is below the threshold now.
    pub below: bool,
    /// Whether the next downward crossing notifies (false once notified, until the balance
    /// is back at or above the threshold).
    pub armed: bool,
}

/// Body of `POST /api/balance/adjust` (header `Idempotency-Key` required).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustInput {
    pub tenant_id: String,
    /// Signed, minor units, not 0: a credit is positive, a debit negative.
    pub amount_minor: i64,
    /// ISO 4217; default the balance's currency. Must equal it.
    pub currency: Option<String>,
    /// Why (kept on the ledger entry), 1 to 500 characters.
    pub reason: String,
    /// Apply a debit even below the overdraft limit.
    #[serde(default)]
    pub force: bool,
}

/// Body of `PUT /api/tenants/{tenantId}/balance/overdraft`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverdraftInput {
    /// 0 or more (minor units); `null` removes the limit (postpaid: never refused for money).
    #[serde(default, deserialize_with = "crate::api::extract::present")]
    pub overdraft_minor: Option<Option<i64>>,
}

impl BalanceView {
    fn new(tenant_id: &str, balance: Option<Balance>, threshold: Option<Threshold>) -> Self {
        let balance = balance.unwrap_or_else(|| Balance {
            tenant_id: tenant_id.to_owned(),
            currency: DEFAULT_CURRENCY.to_owned(),
            balance_minor: 0,
            carry_micros: 0,
            overdraft_minor: None,
            revision: 0,
            updated_at: String::new(),
        });
        let threshold = threshold.map(|t| ThresholdState {
            threshold_minor: t.threshold_minor,
            below: balance.balance_minor < t.threshold_minor,
            armed: t.armed,
        });
        Self {
            tenant_id: tenant_id.to_owned(),
            spendable_minor: balance.spendable_minor(),
            currency: balance.currency,
            balance_minor: balance.balance_minor,
            overdraft_minor: balance.overdraft_minor,
            carry_micros: balance.carry_micros,
            revision: balance.revision,
            updated_at: Some(balance.updated_at).filter(|u| !u.is_empty()),
            threshold,
        }
    }
}

/// The tenant's balance (zero in the default currency when it never had one).
pub async fn view(store: &Store, tenant_id: &str) -> ApiResult<BalanceView> {
    let mut tx = store.reader().begin().await?;
    let balance = ledger::read_balance(&mut tx, tenant_id).await?;
    drop(tx);
    let threshold = thresholds::get(store, tenant_id).await?;
    Ok(BalanceView::new(tenant_id, balance, threshold))
}

/// Validates an `Idempotency-Key` header value: 1 to 200 visible ASCII characters.
pub fn idempotency_key(value: Option<&str>) -> ApiResult<String> {
    let key = value.ok_or_else(|| {
        ApiError::bad_request(
            "idempotency_key_required",
            "the Idempotency-Key header is required",
        )
    })?;
    if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 200 visible ASCII characters",
        ));
    }
    Ok(key.to_owned())
}

/// Posts an adjustment once per key (`adjust:<key>` on the ledger). A debit that would take
/// the balance below the overdraft limit is 409 `insufficient_balance` unless forced. A replay
/// with the same content returns the stored entry (`true`: replayed); the key with another
/// tenant-side content (amount, currency, reason) is 409 `idempotency_key_reused`.
pub async fn adjust(
    store: &Store,
    input: AdjustInput,
    key: &str,
    actor: &str,
) -> ApiResult<(LedgerEntry, bool)> {
    if input.amount_minor == 0 {
        return Err(ApiError::invalid("amount_minor", "must not be 0"));
    }
    validate::text("reason", &input.reason, 1, 500)?;
    crate::tenants::ensure_exists(store, &input.tenant_id).await?;
    let mut tx = store.begin().await?;
    let currency = resolve_currency(&mut tx, &input.tenant_id, input.currency).await?;
    let entry = NewEntry {
        tenant_id: input.tenant_id.clone(),
        kind: EntryKind::Adjustment,
        amount_minor: input.amount_minor,
        currency: currency.clone(),
        idempotency_key: format!("adjust:{key}"),
        reason: Some(input.reason.clone()),
        reference: None,
        actor: Some(actor.to_owned()),
    };
    let guard = if input.force {
        Guard::Unconditional
    } else {
        Guard::WithinOverdraft
    };
    let posted = ledger::post(&mut tx, entry, guard).await?;
    if posted.replayed {
        if posted.entry.reason.as_deref() != Some(input.reason.as_str()) {
            return Err(ApiError::conflict(
                "idempotency_key_reused",
                "this idempotency key was used for a different operation",
            ));
        }
        return Ok((posted.entry, true));
    }
    let after = posted.balance.balance_minor;
    let before = after.saturating_sub(input.amount_minor);
    thresholds::observe(&mut tx, &input.tenant_id, &currency, before, after).await?;
    tx.commit().await?;
    Ok((posted.entry, false))
}

/// Sets or removes the tenant's overdraft limit; returns the new balance view.
pub async fn set_overdraft(
    store: &Store,
    tenant_id: &str,
    input: OverdraftInput,
) -> ApiResult<BalanceView> {
    let overdraft = input.overdraft_minor.ok_or_else(|| {
        ApiError::invalid(
            "overdraft_minor",
            "is required (a number, or null to remove the limit)",
        )
    })?;
    crate::tenants::ensure_exists(store, tenant_id).await?;
    let mut tx = store.begin().await?;
    let currency = resolve_currency(&mut tx, tenant_id, None).await?;
    let balance = ledger::set_overdraft(&mut tx, tenant_id, &currency, overdraft).await?;
    tx.commit().await?;
    let threshold = thresholds::get(store, tenant_id).await?;
    Ok(BalanceView::new(tenant_id, Some(balance), threshold))
}

/// The currency asked for, else the balance's, else the default.
async fn resolve_currency(
    tx: &mut Tx,
    tenant_id: &str,
    requested: Option<String>,
) -> ApiResult<String> {
    if let Some(c) = requested {
        return Ok(c);
    }
    Ok(ledger::read_balance(tx, tenant_id)
        .await?
        .map_or_else(|| DEFAULT_CURRENCY.to_owned(), |b| b.currency))
}
