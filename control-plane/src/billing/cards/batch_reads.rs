//! Reads of batches (API §5.2): the list, and one batch with its cards counted by status.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::batches::{batch_of, CardBatch, BATCH_COLUMNS};
use crate::api::pagination::{Page, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::store::filter::Where;
use crate::store::{self, Store};

/// Query of `GET /api/recharge-cards/batches`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    pub currency: Option<String>,
}

/// One page of batches, newest first, and the total.
pub async fn list(store: &Store, q: &BatchQuery) -> ApiResult<Page<CardBatch>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let mut w = Where::new();
    w.eq_text("currency", q.currency.as_deref());
    let where_sql = w.sql();
    let total: i64 = w
        .bind_scalar(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM card_batches WHERE {where_sql}"
        )))
        .fetch_one(store.reader())
        .await?;
    let offset = i64::from(page - 1) * i64::from(size);
    let rows = w
        .bind(sqlx::query(&format!(
            "SELECT {BATCH_COLUMNS} FROM card_batches WHERE {where_sql} \
             ORDER BY created_at DESC, id DESC LIMIT {size} OFFSET {offset}"
        )))
        .fetch_all(store.reader())
        .await?;
    Ok(Page {
        items: rows.iter().map(batch_of).collect::<ApiResult<_>>()?,
        total: u64::try_from(total).unwrap_or_default(),
        page,
        page_size: size,
    })
}

/// Cards of a batch by shown status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct StatusCounts {
    pub active: i64,
    pub disabled: i64,
    pub redeemed: i64,
    pub expired: i64,
    /// Cards that still exist (deleted cards are not counted).
    pub total: i64,
}

/// A batch with its cards counted by status.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BatchDetail {
    #[serde(flatten)]
    pub batch: CardBatch,
    pub counts: StatusCounts,
}

/// One batch and its counts (404 when there is none).
pub async fn detail(store: &Store, id: &str) -> ApiResult<BatchDetail> {
    let row = sqlx::query(&format!(
        "SELECT {BATCH_COLUMNS} FROM card_batches WHERE id = $1"
    ))
    .bind(id.to_owned())
    .fetch_optional(store.reader())
    .await?
    .ok_or_else(|| ApiError::not_found("card batch", id))?;
    let batch = batch_of(&row)?;
    let rows = sqlx::query(
        "SELECT CASE WHEN status = 'active' AND expires_at IS NOT NULL AND expires_at <= $1 \
         THEN 'expired' ELSE status END AS shown, COUNT(*) AS n \
         FROM recharge_cards WHERE batch_id = $2 GROUP BY 1",
    )
    .bind(store::now())
    .bind(id.to_owned())
    .fetch_all(store.reader())
    .await?;
    let mut counts = StatusCounts::default();
    for row in rows {
        let shown: String = row.try_get("shown")?;
        let n: i64 = row.try_get("n")?;
        match shown.as_str() {
            "active" => counts.active = n,
            "disabled" => counts.disabled = n,
            "redeemed" => counts.redeemed = n,
            "expired" => counts.expired = n,
            _ => {}
        }
        counts.total += n;
    }
    Ok(BatchDetail { batch, counts })
}
