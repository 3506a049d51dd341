//! `GET /api/balance/transactions` (API §5.4): every movement of a balance, newest first: the
//! ledger entries and the usage debits (kind `usage`: the priced usage rows, which are their
//! own debits). Summing `amount_minor` over a tenant's transactions gives its balance.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::ledger::EntryKind;
use crate::api::pagination::{Page, PageQuery};
use crate::api::parse_time;
use crate::error::{ApiError, ApiResult};
use crate::store::filter::{Bind, Where};
use crate::store::Store;

/// The kind of usage debits in the list.
pub const USAGE: &str = "usage";

/// Query of the transactions list.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionsQuery {
    /// Platform-wide callers may narrow to one tenant; tenant roles see their own only.
    pub tenant_id: Option<String>,
    /// `usage`, `top_up`, `redemption`, `adjustment`, `refund` or `invoice_payment`.
    pub kind: Option<String>,
    /// At or after this RFC 3339 time.
    pub from: Option<String>,
    /// Before this RFC 3339 time.
    pub to: Option<String>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

/// One movement of a balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Transaction {
    /// The ledger entry id, or the request id of a usage debit.
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    /// Signed minor units (a usage debit is negative).
    pub amount_minor: i64,
    pub currency: Option<String>,
    /// Usage only: the exact priced cost in micros (the debit carries the remainder).
    pub cost_micros: Option<i64>,
    pub reason: Option<String>,
    /// What it is about: a card or invoice id, or the model of a usage debit.
    pub reference: Option<String>,
    pub actor: Option<String>,
    /// When the balance moved (for usage: when the event was ingested).
    pub created_at: String,
}

const UNION: &str = "SELECT id, tenant_id, kind, amount_minor, currency, \
    CAST(NULL AS BIGINT) AS cost_micros, reason, reference, actor, created_at \
    FROM ledger_entries \
    UNION ALL \
    SELECT request_id AS id, tenant_id, 'usage' AS kind, 0 - debit_minor AS amount_minor, \
    currency, cost_micros, CAST(NULL AS TEXT) AS reason, model_id AS reference, \
    CAST(NULL AS TEXT) AS actor, ingested_at AS created_at \
    FROM usage_events WHERE cost_micros <> 0 OR debit_minor <> 0";

/// One page, newest first; `tenant_id` is the scope already resolved for the caller.
pub async fn page(
    store: &Store,
    q: &TransactionsQuery,
    tenant_id: Option<&str>,
) -> ApiResult<Page<Transaction>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let mut w = Where::new();
    w.eq_text("t.tenant_id", tenant_id);
    if let Some(kind) = &q.kind {
        if kind != USAGE && EntryKind::parse(kind).is_none() {
            return Err(ApiError::invalid(
                "kind",
                "must be usage, top_up, redemption, adjustment, refund or invoice_payment",
            ));
        }
        w.eq_text("t.kind", Some(kind));
    }
    if let Some(from) = &q.from {
        w.push(
            "t.created_at >= ?",
            vec![Bind::Text(parse_time("from", from)?)],
        );
    }
    if let Some(to) = &q.to {
        w.push("t.created_at < ?", vec![Bind::Text(parse_time("to", to)?)]);
    }
    let where_sql = w.sql();
    let total: i64 = w
        .bind_scalar(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM ({UNION}) t WHERE {where_sql}"
        )))
        .fetch_one(store.reader())
        .await?;
    let offset = i64::from(page - 1) * i64::from(size);
    let rows = w
        .bind(sqlx::query(&format!(
            "SELECT t.* FROM ({UNION}) t WHERE {where_sql} \
             ORDER BY t.created_at DESC, t.id DESC LIMIT {size} OFFSET {offset}"
        )))
        .fetch_all(store.reader())
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(Transaction {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                kind: r.try_get("kind")?,
                amount_minor: r.try_get("amount_minor")?,
                currency: r.try_get("currency")?,
                cost_micros: r.try_get("cost_micros")?,
                reason: r.try_get("reason")?,
                reference: r.try_get("reference")?,
                actor: r.try_get("actor")?,
                created_at: r.try_get("created_at")?,
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
