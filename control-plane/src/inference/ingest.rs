//! Idempotent ingest of usage events (DESIGN.md §3.2).
//!
//! The data plane delivers at least once; the store is unique on the request id and inserts
//! with `ON CONFLICT DO NOTHING`, so a replayed event changes nothing and the effect is
//! exactly once. Events are inserted in request-id order, so two PostgreSQL transactions
//! with overlapping batches wait on each other instead of deadlocking. Each new row is priced
//! and debited in the same transaction ([`crate::billing::pricing`]); a replay with different
//! content is refused (422 `usage_conflict`).

use std::collections::{HashMap, HashSet};

use medgate_config::{UsageAck, UsageBatch, UsageEvent};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::api::parse_time;
use crate::billing::pricing::{self, PricedBatch};
use crate::error::{ApiError, ApiResult};
use crate::store::{self, Store, Tx};
use crate::validate;

/// Most events in one batch.
pub const MAX_BATCH: usize = 10_000;
/// Rows per INSERT. sqlx's SQLite binding grows faster than linearly with the parameters of
/// one statement: measured with `examples/ingest_throughput.rs` (SQLite, 2,000-event
/// batches, 17 parameters per row), 500 rows per INSERT ingested 5.7k events/s, 100 rows 22k,
/// 50 rows 35k. With pricing (21 parameters per row, `RETURNING`): 50 rows 22k priced events/s
/// (`examples/priced_ingest_throughput.rs`), 40 rows 27k, 30 rows 29-30k (34-38k unpriced).
const CHUNK: usize = 30;
/// Longest model name or alias a client may have sent that is stored as it came.
pub const MAX_REQUESTED_MODEL: usize = 1024;

pub(super) const COLUMNS: &str = "request_id, tenant_id, api_key_id, key_prefix, requested_model, \
    model_id, model_name, endpoint, input_tokens, output_tokens, status, latency_ms, ttft_ms, \
    streamed, usage_reported, occurred_at";
/// Parameters per row: the event, `ingested_at`, and its price and debit.
const PER_ROW: usize = 21;
/// Request ids per lookup of stored events.
const LOOKUP_CHUNK: usize = 200;
/// Transactions tried per batch (see [`ingest`]).
const MAX_ATTEMPTS: usize = 5;
/// Request ids listed in a 422 `usage_conflict`.
const MAX_CONFLICTS_SHOWN: usize = 20;

/// Checks every event and normalizes its time; returns the distinct events sorted by request
/// id, and how many repeated a request id earlier in the same batch. A repeat with different
/// content is refused (422 `usage_conflict`), like a replay of a stored one.
pub fn prepare(batch: UsageBatch) -> ApiResult<(Vec<UsageEvent>, u64)> {
    if batch.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "events",
            format!("at most {MAX_BATCH} events per batch"),
        ));
    }
    let mut distinct: HashMap<String, UsageEvent> = HashMap::with_capacity(batch.events.len());
    let mut repeated = 0;
    let mut conflicts = Vec::new();
    for (i, mut event) in batch.events.into_iter().enumerate() {
        check(i, &mut event)?;
        match distinct.get(&event.request_id) {
            Some(first) => {
                if *first != event {
                    conflicts.push(event.request_id.clone());
                }
                repeated += 1;
            }
            None => {
                distinct.insert(event.request_id.clone(), event);
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflict(conflicts));
    }
    let mut events: Vec<UsageEvent> = distinct.into_values().collect();
    events.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    Ok((events, repeated))
}

fn check(i: usize, e: &mut UsageEvent) -> ApiResult<()> {
    let field = |name: &str| format!("events[{i}].{name}");
    validate::plain_id(&field("request_id"), &e.request_id, 128)?;
    validate::plain_id(&field("tenant_id"), &e.tenant_id, 128)?;
    if let Some(id) = &e.api_key_id {
        validate::plain_id(&field("api_key_id"), id, 128)?;
    }
    if let Some(prefix) = &e.key_prefix {
        validate::plain_id(&field("key_prefix"), prefix, 64)?;
    }
    validate::plain_id(&field("endpoint"), &e.endpoint, 64)?;
    for (name, value, max) in [
        ("requested_model", &e.requested_model, MAX_REQUESTED_MODEL),
        ("model_id", &e.model_id, 128),
        ("model_name", &e.model_name, 128),
    ] {
        if value.chars().count() > max {
            return Err(ApiError::invalid(
                &field(name),
                format!("at most {max} characters"),
            ));
        }
    }
    for (name, value) in [
        ("input_tokens", Some(e.input_tokens)),
        ("output_tokens", Some(e.output_tokens)),
        ("latency_ms", Some(e.latency_ms)),
        ("ttft_ms", e.ttft_ms),
    ] {
        if value.is_some_and(|v| i64::try_from(v).is_err()) {
            return Err(ApiError::invalid(&field(name), "is too large"));
        }
    }
    if !(100..=599).contains(&e.status) {
        return Err(ApiError::invalid(
            &field("status"),
            "must be an HTTP status (100 to 599)",
        ));
    }
    e.occurred_at = parse_time(&field("occurred_at"), &e.occurred_at)?;
    Ok(())
}

/// Stores the events prepared by [`prepare`] in one transaction, priced and debited
/// ([`pricing`]): only rows this call creates are priced and debited, so a replay changes
/// nothing. A replay with different content refuses the whole batch (422 `usage_conflict`,
/// nothing stored; the proxy then sends the events one by one and sets the refused one
/// aside).
///
/// The first attempt assumes every event is new. When a priced one turns out to be stored
/// already (a replay), the debits computed for its tenant are wrong: the transaction is
/// rolled back and retried knowing what is stored. The balance locks taken before the insert
/// make that knowledge stable for the retry.
pub async fn ingest(store: &Store, events: &[UsageEvent], repeated: u64) -> ApiResult<UsageAck> {
    let mut precheck = false;
    for _ in 0..MAX_ATTEMPTS {
        if let Some(inserted) = attempt(store, events, precheck).await? {
            let total = u64::try_from(events.len()).unwrap_or(u64::MAX) + repeated;
            return Ok(UsageAck {
                inserted,
                duplicates: total - inserted,
            });
        }
        precheck = true;
    }
    Err(ApiError::conflict(
        "concurrent_modification",
        "the batch kept racing with concurrent deliveries of the same events; retry",
    ))
}

/// One transaction; None when it must be retried with `precheck`.
async fn attempt(store: &Store, events: &[UsageEvent], precheck: bool) -> ApiResult<Option<u64>> {
    let ingested_at = store::now();
    let mut tx = store.begin().await?;
    let priced = pricing::price_batch(&mut tx, events).await?;
    let stored = if precheck {
        let ids: Vec<&str> = events.iter().map(|e| e.request_id.as_str()).collect();
        stored_events(&mut tx, &ids).await?
    } else {
        HashMap::new()
    };
    refuse_conflicts(
        events.iter().filter(|e| stored.contains_key(&e.request_id)),
        &stored,
    )?;
    let fresh: Vec<usize> = (0..events.len())
        .filter(|&i| !stored.contains_key(&events[i].request_id))
        .collect();
    let debits = priced.debits(events, |i| !stored.contains_key(&events[i].request_id));
    let mut inserted: HashSet<String> = HashSet::with_capacity(fresh.len());
    for chunk in fresh.chunks(CHUNK) {
        let rows = Rows {
            events,
            priced: &priced,
            debits: &debits.per_row,
            indexes: chunk,
        };
        inserted.extend(insert_chunk(&mut tx, &rows, &ingested_at).await?);
    }
    let raced: Vec<usize> = fresh
        .iter()
        .copied()
        .filter(|&i| !inserted.contains(&events[i].request_id))
        .collect();
    if !raced.is_empty() {
        let ids: Vec<&str> = raced
            .iter()
            .map(|&i| events[i].request_id.as_str())
            .collect();
        let now_stored = stored_events(&mut tx, &ids).await?;
        refuse_conflicts(raced.iter().map(|&i| &events[i]), &now_stored)?;
        if raced.iter().any(|&i| priced.in_chain(events, i)) {
            return Ok(None);
        }
    }
    pricing::apply(&mut tx, &debits).await?;
    tx.commit().await?;
    Ok(Some(u64::try_from(inserted.len()).unwrap_or(u64::MAX)))
}

/// The rows of one INSERT: events of the batch by index, with their price and debit.
struct Rows<'a> {
    events: &'a [UsageEvent],
    priced: &'a PricedBatch,
    debits: &'a [i64],
    indexes: &'a [usize],
}

/// Saturates rather than fails: `check` already bounded every value.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Inserts the rows; returns the request ids it created.
async fn insert_chunk(tx: &mut Tx, rows: &Rows<'_>, ingested_at: &str) -> ApiResult<Vec<String>> {
    let placeholders: Vec<String> = (0..rows.indexes.len())
        .map(|r| {
            let params: Vec<String> = (1..=PER_ROW)
                .map(|c| format!("${}", r * PER_ROW + c))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO usage_events ({COLUMNS}, ingested_at, rate_id, currency, cost_micros, \
         debit_minor) VALUES {} ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for &i in rows.indexes {
        let (Some(e), Some(price)) = (rows.events.get(i), rows.priced.prices.get(i)) else {
            return Err(ApiError::internal("usage row index out of range"));
        };
        query = query
            .bind(e.request_id.clone())
            .bind(e.tenant_id.clone())
            .bind(e.api_key_id.clone())
            .bind(e.key_prefix.clone())
            .bind(e.requested_model.clone())
            .bind(e.model_id.clone())
            .bind(e.model_name.clone())
            .bind(e.endpoint.clone())
            .bind(int(e.input_tokens))
            .bind(int(e.output_tokens))
            .bind(i64::from(e.status))
            .bind(int(e.latency_ms))
            .bind(e.ttft_ms.map(int))
            .bind(i64::from(e.streamed))
            .bind(i64::from(e.usage_reported))
            .bind(e.occurred_at.clone())
            .bind(ingested_at.to_owned())
            .bind(price.rate_id.clone())
            .bind(price.currency.clone())
            .bind(price.cost_micros)
            .bind(rows.debits.get(i).copied().unwrap_or_default());
    }
    let created = query.fetch_all(&mut **tx).await?;
    created
        .iter()
        .map(|row| row.try_get::<String, _>("request_id").map_err(Into::into))
        .collect()
}

/// The stored events among `ids`, by request id.
async fn stored_events(tx: &mut Tx, ids: &[&str]) -> ApiResult<HashMap<String, UsageEvent>> {
    let mut stored = HashMap::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM usage_events WHERE request_id IN ({})",
            params.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind((*id).to_owned());
        }
        for row in query.fetch_all(&mut **tx).await? {
            let e = from_row(&row)?;
            stored.insert(e.request_id.clone(), e);
        }
    }
    Ok(stored)
}

/// 422 `usage_conflict` when a replayed event differs from the stored one.
fn refuse_conflicts<'a>(
    replays: impl Iterator<Item = &'a UsageEvent>,
    stored: &HashMap<String, UsageEvent>,
) -> ApiResult<()> {
    let conflicts: Vec<String> = replays
        .filter(|e| stored.get(&e.request_id).is_some_and(|s| s != *e))
        .map(|e| e.request_id.clone())
        .collect();
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(conflict(conflicts))
    }
}

fn conflict(mut request_ids: Vec<String>) -> ApiError {
    request_ids.sort();
    request_ids.dedup();
    tracing::warn!(
        count = request_ids.len(),
        first = %request_ids.first().map(String::as_str).unwrap_or_default(),
        "usage events replayed with different content; batch refused"
    );
    let shown: Vec<&String> = request_ids.iter().take(MAX_CONFLICTS_SHOWN).collect();
    ApiError::Unprocessable {
        code: "usage_conflict",
        message: format!(
            "{} event(s) reuse a request id with different content; nothing was stored",
            request_ids.len()
        ),
        details: serde_json::json!({ "request_ids": shown }),
    }
}

/// An event as stored.
pub(super) fn from_row(row: &AnyRow) -> Result<UsageEvent, sqlx::Error> {
    let unsigned = |name: &str| -> Result<u64, sqlx::Error> {
        Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or_default())
    };
    Ok(UsageEvent {
        request_id: row.try_get("request_id")?,
        tenant_id: row.try_get("tenant_id")?,
        api_key_id: row.try_get("api_key_id")?,
        key_prefix: row.try_get("key_prefix")?,
        requested_model: row.try_get("requested_model")?,
        model_id: row.try_get("model_id")?,
        model_name: row.try_get("model_name")?,
        endpoint: row.try_get("endpoint")?,
        input_tokens: unsigned("input_tokens")?,
        output_tokens: unsigned("output_tokens")?,
        status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or_default(),
        latency_ms: unsigned("latency_ms")?,
        ttft_ms: row
            .try_get::<Option<i64>, _>("ttft_ms")?
            .map(|v| u64::try_from(v).unwrap_or_default()),
        streamed: row.try_get::<i64, _>("streamed")? != 0,
        usage_reported: row.try_get::<i64, _>("usage_reported")? != 0,
        occurred_at: row.try_get("occurred_at")?,
    })
}
