//! Recharge history (API §5.3): the redemption entries of the ledger, with the card they
//! came from, newest first. Tenant roles see their own tenant only (the route passes the
//! tenant filter from [`crate::auth::Principal::tenant_filter`]).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::api::pagination::{Page, PageQuery};
use crate::api::parse_time;
use crate::error::ApiResult;
use crate::store::filter::{Bind, Where};
use crate::store::Store;

/// Query of the history endpoints.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RechargeHistoryQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// Platform-wide callers may narrow to one tenant.
    pub tenant_id: Option<String>,
    /// Redemptions at or after this RFC 3339 time.
    pub from: Option<String>,
    /// Redemptions before this RFC 3339 time.
    pub to: Option<String>,
}

/// One redemption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RechargeRecord {
    pub ledger_entry_id: String,
    pub tenant_id: String,
    pub card_id: Option<String>,
    pub batch_id: Option<String>,
    /// The last 4 symbols of the card's code.
    pub code_hint: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    /// Who redeemed it (the caller's subject).
    pub actor: Option<String>,
    pub redeemed_at: String,
}

/// One page of redemptions, confined to `tenant` when given, and the total.
pub async fn page(
    store: &Store,
    tenant: Option<String>,
    q: &RechargeHistoryQuery,
) -> ApiResult<Page<RechargeRecord>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let mut w = Where::new();
    w.push("l.kind = 'redemption'", Vec::new());
    w.eq_text("l.tenant_id", tenant.as_deref());
    if let Some(from) = &q.from {
        w.push(
            "l.created_at >= ?",
            vec![Bind::Text(parse_time("from", from)?)],
        );
    }
    if let Some(to) = &q.to {
        w.push("l.created_at < ?", vec![Bind::Text(parse_time("to", to)?)]);
    }
    let where_sql = w.sql();
    let from_sql = "FROM ledger_entries l LEFT JOIN recharge_cards c ON c.id = l.reference";
    let total: i64 = w
        .bind_scalar(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) {from_sql} WHERE {where_sql}"
        )))
        .fetch_one(store.reader())
        .await?;
    let offset = i64::from(page - 1) * i64::from(size);
    let rows = w
        .bind(sqlx::query(&format!(
            "SELECT l.id, l.tenant_id, l.reference, l.amount_minor, l.currency, l.actor, \
             l.created_at, c.batch_id, c.code_hint {from_sql} WHERE {where_sql} \
             ORDER BY l.created_at DESC, l.id DESC LIMIT {size} OFFSET {offset}"
        )))
        .fetch_all(store.reader())
        .await?;
    let items = rows
        .iter()
        .map(|row| {
            Ok(RechargeRecord {
                ledger_entry_id: row.try_get("id")?,
                tenant_id: row.try_get("tenant_id")?,
                card_id: row.try_get("reference")?,
                batch_id: row.try_get("batch_id")?,
                code_hint: row.try_get("code_hint")?,
                amount_minor: row.try_get("amount_minor")?,
                currency: row.try_get("currency")?,
                actor: row.try_get("actor")?,
                redeemed_at: row.try_get("created_at")?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Page {
        items,
        total: u64::try_from(total).unwrap_or_default(),
        page,
        page_size: size,
    })
}
