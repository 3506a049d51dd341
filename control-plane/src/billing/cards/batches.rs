//! Batch generation (API §5.2): N cards and their batch record in one transaction, or none
//! (B10), idempotent by a client key.
//!
//! Contract of [`create`]:
//! * The batch row goes in first with `ON CONFLICT (idempotency_key) DO NOTHING`; a second
//!   request with the same key (even a concurrent one, which waits for the first to commit)
//!   finds the stored batch and answers it with `replayed: true` and **no codes**; with
//!   different terms it is 409 `idempotency_key_reused`.
//! * Card `i`'s code is derived from the batch seed ([`super::keys`]); cards are inserted
//!   in multi-row statements of [`CHUNK`] rows. Any failure (a code-hash collision, a store
//!   error) drops the transaction: no card and no batch remain.
//! * The codes are computed before the write transaction starts, so the single SQLite
//!   writer is held only for the inserts.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::code::Code;
use super::keys::{CardKeys, Seed};
use super::model::{check_terms, CardTerms};
use super::single::collision_or;
use crate::error::{ApiError, ApiResult};
use crate::store::{self, Store, Tx};
use crate::validate;

/// Most cards in one batch.
pub const MAX_BATCH: u32 = 100_000;
/// Cards per INSERT (4 bound values each; the shared columns are bound once per statement).
const CHUNK: usize = 200;
/// How many exports a batch allows; the last one erases the sealed seed.
pub const EXPORT_LIMIT: i64 = 1;

/// Body of `POST /api/recharge-cards/batch`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCreate {
    /// 1 to 100 characters.
    pub name: Option<String>,
    /// 1 to 100,000.
    pub count: u32,
    pub face_value_minor: i64,
    pub currency: String,
    /// RFC 3339, in the future; every card of the batch expires then.
    pub expires_at: Option<String>,
    /// Same as the `Idempotency-Key` header (give either, or both equal).
    pub idempotency_key: Option<String>,
}

/// A checked [`BatchCreate`].
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub name: Option<String>,
    pub count: u32,
    pub terms: CardTerms,
    pub idempotency_key: Option<String>,
}

impl BatchCreate {
    /// Checks the body against the `Idempotency-Key` header value.
    pub fn check(self, header_key: Option<String>) -> ApiResult<NewBatch> {
        if let Some(name) = &self.name {
            validate::text("name", name, 1, 100)?;
        }
        if !(1..=MAX_BATCH).contains(&self.count) {
            return Err(ApiError::invalid(
                "count",
                format!("must be between 1 and {MAX_BATCH}"),
            ));
        }
        let idempotency_key = match (header_key, self.idempotency_key) {
            (Some(h), Some(b)) if h != b => {
                return Err(ApiError::invalid(
                    "idempotency_key",
                    "differs from the Idempotency-Key header",
                ))
            }
            (h, b) => h.or(b),
        };
        if let Some(key) = &idempotency_key {
            validate::plain_id("idempotency_key", key, 255)?;
        }
        let terms = check_terms(
            self.face_value_minor,
            &self.currency,
            self.expires_at.as_deref(),
        )?;
        Ok(NewBatch {
            name: self.name,
            count: self.count,
            terms,
            idempotency_key,
        })
    }
}

/// A batch of cards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CardBatch {
    pub id: String,
    pub name: Option<String>,
    /// Cards generated.
    pub count: i64,
    pub face_value_minor: i64,
    pub currency: String,
    pub expires_at: Option<String>,
    pub idempotency_key: Option<String>,
    /// When it was last exported.
    pub exported_at: Option<String>,
    pub export_count: i64,
    /// Exports still allowed.
    pub exports_left: i64,
    pub created_by: String,
    pub created_at: String,
}

/// Answer to `POST /api/recharge-cards/batch`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BatchIssued {
    pub batch: CardBatch,
    /// The codes, in batch order (`XXXX-XXXX-XXXX-XXXX-C`): in the first answer only, empty
    /// in a replay.
    pub codes: Vec<String>,
    /// True when the idempotency key named an existing batch: nothing was created.
    pub replayed: bool,
}

pub(super) const BATCH_COLUMNS: &str =
    "id, name, card_count, face_value_minor, currency, expires_at, \
    idempotency_key, exported_at, export_count, created_by, created_at";

pub(super) fn batch_of(row: &AnyRow) -> ApiResult<CardBatch> {
    let export_count: i64 = row.try_get("export_count")?;
    Ok(CardBatch {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        count: row.try_get("card_count")?,
        face_value_minor: row.try_get("face_value_minor")?,
        currency: row.try_get("currency")?,
        expires_at: row.try_get("expires_at")?,
        idempotency_key: row.try_get("idempotency_key")?,
        exported_at: row.try_get("exported_at")?,
        export_count,
        exports_left: (EXPORT_LIMIT - export_count).max(0),
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Creates the batch (see the module contract); `seed` is [`Seed::random`] outside tests.
pub async fn create(
    store: &Store,
    keys: &CardKeys,
    batch: NewBatch,
    actor: &str,
    seed: Seed,
) -> ApiResult<BatchIssued> {
    if let Some(key) = &batch.idempotency_key {
        let found = sqlx::query(&format!(
            "SELECT {BATCH_COLUMNS} FROM card_batches WHERE idempotency_key = $1"
        ))
        .bind(key.clone())
        .fetch_optional(store.reader())
        .await?;
        if let Some(row) = found {
            return replay(batch_of(&row)?, &batch);
        }
    }
    let id = store::new_id("bat");
    let now = store::now();
    let codes: Vec<Code> = (0..batch.count)
        .map(|i| keys.derive(&seed, u64::from(i)))
        .collect();
    let cards: Vec<NewCard> = codes
        .iter()
        .zip(0i64..)
        .map(|(code, index)| NewCard {
            id: store::new_id("rcc"),
            index,
            hash: keys.code_hash(*code),
            hint: code.hint(),
        })
        .collect();
    let mut tx = store.begin().await?;
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO card_batches (id, name, card_count, face_value_minor, currency, \
         expires_at, idempotency_key, seed_sealed, exported_at, export_count, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0, $9, $10) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(id.clone())
    .bind(batch.name.clone())
    .bind(i64::from(batch.count))
    .bind(batch.terms.face_value_minor)
    .bind(batch.terms.currency.clone())
    .bind(batch.terms.expires_at.clone())
    .bind(batch.idempotency_key.clone())
    .bind(keys.seal(&id, &seed))
    .bind(actor.to_owned())
    .bind(now.clone())
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        // A concurrent request with the same key committed first.
        let key = batch.idempotency_key.clone().unwrap_or_default();
        let stored = by_key(&mut tx, &key)
            .await?
            .ok_or_else(|| ApiError::internal("batch vanished after a key conflict"))?;
        return replay(stored, &batch);
    }
    for chunk in cards.chunks(CHUNK) {
        insert_chunk(&mut tx, &id, &batch.terms, &now, chunk).await?;
    }
    let stored = load_tx(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(BatchIssued {
        batch: stored,
        codes: codes.into_iter().map(Code::display).collect(),
        replayed: false,
    })
}

/// A card row about to be inserted.
struct NewCard {
    id: String,
    index: i64,
    hash: String,
    hint: String,
}

fn replay(stored: CardBatch, asked: &NewBatch) -> ApiResult<BatchIssued> {
    let same = stored.name == asked.name
        && stored.count == i64::from(asked.count)
        && stored.face_value_minor == asked.terms.face_value_minor
        && stored.currency == asked.terms.currency
        && stored.expires_at == asked.terms.expires_at;
    if !same {
        return Err(ApiError::conflict(
            "idempotency_key_reused",
            "this idempotency key was used for a batch with different terms",
        ));
    }
    Ok(BatchIssued {
        batch: stored,
        codes: Vec::new(),
        replayed: true,
    })
}

async fn insert_chunk(
    tx: &mut Tx,
    batch_id: &str,
    terms: &CardTerms,
    now: &str,
    chunk: &[NewCard],
) -> ApiResult<()> {
    const SHARED: usize = 5;
    let rows: Vec<String> = (0..chunk.len())
        .map(|r| {
            let p = SHARED + r * 4;
            format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4)
        })
        .collect();
    // VALUES columns are named column1..column4 on both SQLite and PostgreSQL.
    let sql = format!(
        "INSERT INTO recharge_cards (id, batch_id, batch_index, code_hash, code_hint, \
         face_value_minor, currency, status, expires_at, created_at, updated_at) \
         SELECT v.column1, $1, v.column2, v.column3, v.column4, $2, $3, 'active', $4, $5, $5 \
         FROM (VALUES {}) AS v",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(batch_id.to_owned())
        .bind(terms.face_value_minor)
        .bind(terms.currency.clone())
        .bind(terms.expires_at.clone())
        .bind(now.to_owned());
    for card in chunk {
        query = query
            .bind(card.id.clone())
            .bind(card.index)
            .bind(card.hash.clone())
            .bind(card.hint.clone());
    }
    query.execute(&mut **tx).await.map_err(collision_or)?;
    Ok(())
}

async fn by_key(tx: &mut Tx, key: &str) -> ApiResult<Option<CardBatch>> {
    let row = sqlx::query(&format!(
        "SELECT {BATCH_COLUMNS} FROM card_batches WHERE idempotency_key = $1"
    ))
    .bind(key.to_owned())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(batch_of).transpose()
}

async fn load_tx(tx: &mut Tx, id: &str) -> ApiResult<CardBatch> {
    let row = sqlx::query(&format!(
        "SELECT {BATCH_COLUMNS} FROM card_batches WHERE id = $1"
    ))
    .bind(id.to_owned())
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("card batch", id))?;
    batch_of(&row)
}
