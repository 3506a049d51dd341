//! Single cards (API §5.1): create one, read, list, enable/disable, change expiry, delete.
//!
//! Every change is one conditional statement (`... AND status <> 'redeemed'`), so it cannot
//! interleave with a redemption: a redeemed card never changes again (409). DELETE removes
//! an unredeemed card for good (its code becomes unknown, which redeems like any wrong
//! code); a redeemed card stays, as the ledger and the recharge history refer to it.

use super::code::Code;
use super::keys::CardKeys;
use super::model::{
    future_time, CardIssued, CardQuery, CardStatus, CardSwitch, CardTerms, CardUpdate,
    RechargeCard, CARD_COLUMNS,
};
use crate::api::pagination::{Page, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::store::filter::{Bind, Where};
use crate::store::{self, Store, Tx};

/// Creates one card with a fresh CSPRNG code; the plaintext is in the answer only.
pub async fn create(store: &Store, keys: &CardKeys, terms: CardTerms) -> ApiResult<CardIssued> {
    let code = Code::random();
    let id = store::new_id("rcc");
    let now = store::now();
    let mut tx = store.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO recharge_cards (id, batch_id, batch_index, code_hash, code_hint, \
         face_value_minor, currency, status, expires_at, created_at, updated_at) \
         VALUES ($1, NULL, NULL, $2, $3, $4, $5, 'active', $6, $7, $7)",
    )
    .bind(id.clone())
    .bind(keys.code_hash(code))
    .bind(code.hint())
    .bind(terms.face_value_minor)
    .bind(terms.currency)
    .bind(terms.expires_at)
    .bind(now.clone())
    .execute(&mut *tx)
    .await;
    if let Err(err) = inserted {
        // 80 random bits: a collision is astronomically unlikely, but it is a retryable 409.
        return Err(collision_or(err));
    }
    let card = load_tx(&mut tx, &id, &now).await?;
    tx.commit().await?;
    Ok(CardIssued {
        card,
        code: code.display(),
    })
}

/// 409 `code_collision` for a duplicate code hash, otherwise the store error.
pub(super) fn collision_or(err: sqlx::Error) -> ApiError {
    if store::is_unique_violation(&err) {
        ApiError::conflict(
            "code_collision",
            "a generated code collided with an existing one; nothing was created, retry",
        )
    } else {
        err.into()
    }
}

async fn load_tx(tx: &mut Tx, id: &str, now: &str) -> ApiResult<RechargeCard> {
    let row = sqlx::query(&format!(
        "SELECT {CARD_COLUMNS} FROM recharge_cards WHERE id = $1"
    ))
    .bind(id.to_owned())
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("recharge card", id))?;
    RechargeCard::from_row(&row, now)
}

/// One card (404 when there is none).
pub async fn get(store: &Store, id: &str) -> ApiResult<RechargeCard> {
    let row = sqlx::query(&format!(
        "SELECT {CARD_COLUMNS} FROM recharge_cards WHERE id = $1"
    ))
    .bind(id.to_owned())
    .fetch_optional(store.reader())
    .await?
    .ok_or_else(|| ApiError::not_found("recharge card", id))?;
    RechargeCard::from_row(&row, &store::now())
}

/// Adds the condition that selects cards shown with `status` at `now`.
pub(super) fn status_filter(w: &mut Where, status: CardStatus, now: &str) {
    let now = || Bind::Text(now.to_owned());
    match status {
        CardStatus::Active => w.push(
            "status = 'active' AND (expires_at IS NULL OR expires_at > ?)",
            vec![now()],
        ),
        CardStatus::Expired => w.push(
            "status = 'active' AND expires_at IS NOT NULL AND expires_at <= ?",
            vec![now()],
        ),
        other => w.push("status = ?", vec![Bind::Text(other.as_str().to_owned())]),
    };
}

/// One page of cards, newest first (a batch in index order), and the total.
pub async fn list(store: &Store, q: &CardQuery) -> ApiResult<Page<RechargeCard>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let now = store::now();
    let mut w = Where::new();
    if let Some(status) = q.status {
        status_filter(&mut w, status, &now);
    }
    w.eq_text("batch_id", q.batch_id.as_deref())
        .eq_text("currency", q.currency.as_deref())
        .eq_text("redeemed_by_tenant", q.redeemed_by_tenant.as_deref());
    let where_sql = w.sql();
    let total: i64 = w
        .bind_scalar(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM recharge_cards WHERE {where_sql}"
        )))
        .fetch_one(store.reader())
        .await?;
    let offset = i64::from(page - 1) * i64::from(size);
    let rows = w
        .bind(sqlx::query(&format!(
            "SELECT {CARD_COLUMNS} FROM recharge_cards WHERE {where_sql} \
             ORDER BY created_at DESC, batch_index, id LIMIT {size} OFFSET {offset}"
        )))
        .fetch_all(store.reader())
        .await?;
    let items = rows
        .iter()
        .map(|row| RechargeCard::from_row(row, &now))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Page {
        items,
        total: u64::try_from(total).unwrap_or_default(),
        page,
        page_size: size,
    })
}

/// Applies an update; 409 `card_redeemed` for a redeemed card, 404 for none.
pub async fn update(store: &Store, id: &str, input: CardUpdate) -> ApiResult<RechargeCard> {
    let status = input.status.map(|s| match s {
        CardSwitch::Active => "active",
        CardSwitch::Disabled => "disabled",
    });
    let expires_at = match input.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(Some(future_time(&text)?)),
    };
    if status.is_none() && expires_at.is_none() {
        return Err(ApiError::invalid(
            "status",
            "give status, expires_at or both to change",
        ));
    }
    let now = store::now();
    let mut tx = store.begin().await?;
    let changed = sqlx::query(
        "UPDATE recharge_cards SET \
         status = CASE WHEN $1 = 1 THEN $2 ELSE status END, \
         expires_at = CASE WHEN $3 = 1 THEN $4 ELSE expires_at END, updated_at = $5 \
         WHERE id = $6 AND status <> 'redeemed'",
    )
    .bind(i64::from(status.is_some()))
    .bind(status.unwrap_or("active"))
    .bind(i64::from(expires_at.is_some()))
    .bind(expires_at.flatten())
    .bind(now.clone())
    .bind(id.to_owned())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(unchanged(&mut tx, id, "changed").await);
    }
    let card = load_tx(&mut tx, id, &now).await?;
    tx.commit().await?;
    Ok(card)
}

/// Deletes an unredeemed card; returns it as it was.
pub async fn delete(store: &Store, id: &str) -> ApiResult<RechargeCard> {
    let now = store::now();
    let mut tx = store.begin().await?;
    let card = load_tx(&mut tx, id, &now).await?;
    let removed = sqlx::query("DELETE FROM recharge_cards WHERE id = $1 AND status <> 'redeemed'")
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(unchanged(&mut tx, id, "deleted").await);
    }
    tx.commit().await?;
    Ok(card)
}

/// Why a conditional change touched no row: 404 or 409.
async fn unchanged(tx: &mut Tx, id: &str, what: &str) -> ApiError {
    let exists: Result<Option<String>, _> =
        sqlx::query_scalar("SELECT id FROM recharge_cards WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&mut **tx)
            .await;
    match exists {
        Ok(None) => ApiError::not_found("recharge card", id),
        Ok(Some(_)) => {
            ApiError::conflict("card_redeemed", format!("a redeemed card cannot be {what}"))
        }
        Err(err) => err.into(),
    }
}
