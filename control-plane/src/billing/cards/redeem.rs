//! Redemption (API §5.3 `POST /api/recharge`; billing-medical.md §2.5 item 5, B1, B6, B9).
//!
//! Contract of [`redeem`], all in one transaction:
//! 1. the brute-force limit ([`super::limiter::admit`]): 429 over the limit, even for a
//!    valid code;
//! 2. the claim: one conditional `UPDATE recharge_cards SET status = 'redeemed' ... WHERE
//!    code_hash = $h AND status = 'active' AND (expires_at IS NULL OR expires_at > now)
//!    RETURNING ...`. Under any concurrency exactly one transaction gets the row: on
//!    PostgreSQL a blocked UPDATE re-checks `status = 'active'` after the winner commits; on
//!    SQLite writers run one at a time. No in-process lock is involved;
//! 3. no row: the failure is counted and committed, and the answer is 422 `invalid_code`
//!    with the same message whether the code is unknown, used, expired or disabled;
//! 4. a row: the ledger entry `redeem:<card id>` (kind `redemption`, unique per tenant) and
//!    the balance move, through [`ledger::post`]. A currency that differs from the tenant's
//!    balance is 422 `currency_mismatch` and rolls the claim back (the card stays active).

use std::net::IpAddr;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::code::Code;
use super::keys::CardKeys;
use super::limiter;
use crate::billing::ledger::{self, EntryKind, Guard, NewEntry};
use crate::error::{ApiError, ApiResult};
use crate::store::{self, Store};
use crate::tenants::Tenant;

/// Body of `POST /api/recharge`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The card code as printed; hyphens, spaces and case do not matter.
    pub code: String,
    /// The tenant to credit: required for platform admins; a tenant admin's own tenant
    /// otherwise (another tenant is a 404).
    pub tenant_id: Option<String>,
}

/// Answer to a successful redemption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Redeemed {
    pub tenant_id: String,
    pub card_id: String,
    /// The last 4 symbols of the code.
    pub code_hint: String,
    /// Credited, in minor units of `currency`.
    pub amount_minor: i64,
    pub currency: String,
    /// The tenant's balance after the credit.
    pub balance_minor: i64,
    pub ledger_entry_id: String,
    pub redeemed_at: String,
}

/// The one answer for every code that cannot be redeemed.
pub fn invalid_code() -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_code",
        message: "this code cannot be redeemed: it is unknown, already used, expired or \
                  disabled"
            .into(),
        details: serde_json::json!({ "field": "code" }),
    }
}

/// Reads the code, refusing typos before any lookup (422 `malformed_code`).
pub fn parse_code(text: &str) -> ApiResult<Code> {
    Code::parse(text).map_err(|err| ApiError::Unprocessable {
        code: "malformed_code",
        message: format!("{err}; check the code for typos"),
        details: serde_json::json!({ "field": "code" }),
    })
}

/// Redeems `code` for `tenant` (see the module contract).
pub async fn redeem(
    store: &Store,
    keys: &CardKeys,
    tenant: &Tenant,
    code: Code,
    client_ip: Option<IpAddr>,
    actor: &str,
) -> ApiResult<Redeemed> {
    let scopes = limiter::scopes(&tenant.id, client_ip);
    let now = Utc::now();
    let at = store::timestamp(now);
    let mut tx = store.begin().await?;
    limiter::admit(&mut tx, &scopes, now).await?;
    let claimed = sqlx::query(
        "UPDATE recharge_cards SET status = 'redeemed', redeemed_by_tenant = $1, \
         redeemed_at = $2, updated_at = $2 \
         WHERE code_hash = $3 AND status = 'active' AND (expires_at IS NULL OR expires_at > $2) \
         RETURNING id, code_hint, face_value_minor, currency",
    )
    .bind(tenant.id.clone())
    .bind(at.clone())
    .bind(keys.code_hash(code))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(card) = claimed else {
        limiter::record_failure(&mut tx, &scopes, now).await?;
        tx.commit().await?;
        return Err(invalid_code());
    };
    let card_id: String = card.try_get("id")?;
    let amount_minor: i64 = card.try_get("face_value_minor")?;
    let currency: String = card.try_get("currency")?;
    ledger::ensure_balance(&mut tx, &tenant.id, &tenant.currency).await?;
    let posted = ledger::post(
        &mut tx,
        NewEntry {
            tenant_id: tenant.id.clone(),
            kind: EntryKind::Redemption,
            amount_minor,
            currency: currency.clone(),
            idempotency_key: format!("redeem:{card_id}"),
            reason: Some("recharge card".into()),
            reference: Some(card_id.clone()),
            actor: Some(actor.to_owned()),
        },
        Guard::WithinOverdraft,
    )
    .await?;
    // A top-up re-arms a low-balance threshold it lifts the balance above.
    let after = posted.balance.balance_minor;
    crate::billing::thresholds::observe(
        &mut tx,
        &tenant.id,
        &currency,
        after.saturating_sub(amount_minor),
        after,
    )
    .await?;
    tx.commit().await?;
    Ok(Redeemed {
        tenant_id: tenant.id.clone(),
        card_id,
        code_hint: card.try_get("code_hint")?,
        amount_minor,
        currency,
        balance_minor: posted.balance.balance_minor,
        ledger_entry_id: posted.entry.id,
        redeemed_at: at,
    })
}
