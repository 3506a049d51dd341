//! Export of a batch's codes as CSV (API §5.2, billing-medical.md §2.6, B8).
//!
//! Contract of [`export`]: only the named batch's cards, in batch order, each with its
//! code re-derived from the batch seed and checked against the stored hash. A batch allows
//! [`EXPORT_LIMIT`] exports; the count is taken with one conditional UPDATE (two concurrent
//! exports cannot both pass), and the export that reaches the limit erases the sealed seed
//! in the same transaction, so the codes can never be produced again. A batch whose seed
//! cannot be unsealed (the server secret changed) answers 409 and is not counted. The route
//! audits every call (success and failure) through the API guard.
//!
//! The CSV holds plaintext codes: the caller must treat it like cash (print it, then
//! delete it), which is why nothing about it is kept server-side.

use serde::Deserialize;
use sqlx::Row;

use super::batches::{batch_of, CardBatch, EXPORT_LIMIT};
use super::keys::CardKeys;
use super::model::CardStatus;
use crate::error::{ApiError, ApiResult};
use crate::store::{self, Store};

/// Body of `POST /api/recharge-cards/export`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub batch_id: String,
}

/// An export: the batch after counting this export, and the CSV.
#[derive(Debug, Clone)]
pub struct Export {
    pub batch: CardBatch,
    pub cards: usize,
    pub csv: String,
}

/// The CSV header line.
pub const CSV_HEADER: &str =
    "card_id,batch_id,batch_index,code,code_hint,face_value_minor,currency,status,expires_at";

/// Exports the batch (see the module contract).
pub async fn export(store: &Store, keys: &CardKeys, batch_id: &str) -> ApiResult<Export> {
    let now = store::now();
    let mut tx = store.begin().await?;
    let sealed: Option<Option<String>> =
        sqlx::query_scalar("SELECT seed_sealed FROM card_batches WHERE id = $1")
            .bind(batch_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?;
    let Some(sealed) = sealed else {
        return Err(ApiError::not_found("card batch", batch_id));
    };
    let counted = sqlx::query(
        "UPDATE card_batches SET export_count = export_count + 1, exported_at = $1, \
         seed_sealed = CASE WHEN export_count + 1 >= $2 THEN NULL ELSE seed_sealed END \
         WHERE id = $3 AND export_count < $2 \
         RETURNING id, name, card_count, face_value_minor, currency, expires_at, \
         idempotency_key, exported_at, export_count, created_by, created_at",
    )
    .bind(now.clone())
    .bind(EXPORT_LIMIT)
    .bind(batch_id.to_owned())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = counted else {
        return Err(ApiError::conflict(
            "already_exported",
            format!(
                "this batch was already exported (at most {EXPORT_LIMIT} export); its codes \
                 cannot be produced again"
            ),
        ));
    };
    let batch = batch_of(&row)?;
    let seed = sealed
        .and_then(|s| keys.unseal(batch_id, &s))
        .ok_or_else(unavailable)?;
    let rows = sqlx::query(
        "SELECT id, batch_index, code_hash, code_hint, face_value_minor, currency, status, \
         expires_at FROM recharge_cards WHERE batch_id = $1 ORDER BY batch_index",
    )
    .bind(batch_id.to_owned())
    .fetch_all(&mut *tx)
    .await?;
    let mut csv = String::with_capacity(CSV_HEADER.len() + 1 + rows.len() * 150);
    csv.push_str(CSV_HEADER);
    csv.push('\n');
    for row in &rows {
        let index: i64 = row.try_get("batch_index")?;
        let code = keys.derive(&seed, u64::try_from(index).map_err(ApiError::internal)?);
        let hash: String = row.try_get("code_hash")?;
        if keys.code_hash(code) != hash {
            return Err(unavailable());
        }
        let expires_at: Option<String> = row.try_get("expires_at")?;
        let status: String = row.try_get("status")?;
        let status = CardStatus::shown(&status, expires_at.as_deref(), &now)?;
        let fields = [
            row.try_get::<String, _>("id")?,
            batch_id.to_owned(),
            index.to_string(),
            code.display(),
            row.try_get::<String, _>("code_hint")?,
            row.try_get::<i64, _>("face_value_minor")?.to_string(),
            row.try_get::<String, _>("currency")?,
            status.as_str().to_owned(),
            expires_at.unwrap_or_default(),
        ];
        // No field can hold a comma, a quote or a line break (ids, codes, ISO values).
        csv.push_str(&fields.join(","));
        csv.push('\n');
    }
    tx.commit().await?;
    Ok(Export {
        batch,
        cards: rows.len(),
        csv,
    })
}

fn unavailable() -> ApiError {
    ApiError::conflict(
        "export_unavailable",
        "this batch's codes cannot be re-derived with the current server secret \
         (auth.hmac_secret changed?); nothing was exported",
    )
}
