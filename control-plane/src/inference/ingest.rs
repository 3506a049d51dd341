//! Idempotent ingest of usage events (DESIGN.md §3.2).
//!
//! The data plane delivers at least once; the store is unique on the request id and inserts
//! with `ON CONFLICT DO NOTHING`, so a replayed event changes nothing and the effect is
//! exactly once. Events are inserted in request-id order, so two PostgreSQL transactions
//! with overlapping batches wait on each other instead of deadlocking.

use std::collections::HashMap;

use medgate_config::{UsageAck, UsageBatch, UsageEvent};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::api::parse_time;
use crate::error::{ApiError, ApiResult};
use crate::store::{self, Store, Tx};
use crate::validate;

/// Most events in one batch.
pub const MAX_BATCH: usize = 10_000;
/// Rows per INSERT. sqlx's SQLite binding grows faster than linearly with the parameters of
/// one statement: measured with `examples/ingest_throughput.rs` (SQLite, 2,000-event
/// batches), 500 rows per INSERT ingested 5.7k events/s, 100 rows 22k, 50 rows 35k.
const CHUNK: usize = 50;
/// Longest model name or alias a client may have sent that is stored as it came.
pub const MAX_REQUESTED_MODEL: usize = 1024;

pub(super) const COLUMNS: &str = "request_id, tenant_id, api_key_id, key_prefix, requested_model, \
    model_id, model_name, endpoint, input_tokens, output_tokens, status, latency_ms, ttft_ms, \
    streamed, usage_reported, occurred_at";
const PER_ROW: usize = 17;

/// Checks every event and normalizes its time; returns the distinct events sorted by request
/// id, and how many repeated a request id earlier in the same batch.
pub fn prepare(batch: UsageBatch) -> ApiResult<(Vec<UsageEvent>, u64)> {
    if batch.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "events",
            format!("at most {MAX_BATCH} events per batch"),
        ));
    }
    let mut distinct: HashMap<String, UsageEvent> = HashMap::with_capacity(batch.events.len());
    let mut repeated = 0;
    for (i, mut event) in batch.events.into_iter().enumerate() {
        check(i, &mut event)?;
        match distinct.get(&event.request_id) {
            Some(first) => {
                if *first != event {
                    warn_conflict(&event);
                }
                repeated += 1;
            }
            None => {
                distinct.insert(event.request_id.clone(), event);
            }
        }
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

/// Stores the events prepared by [`prepare`] in one transaction.
pub async fn ingest(store: &Store, events: &[UsageEvent], repeated: u64) -> ApiResult<UsageAck> {
    let ingested_at = store::now();
    let mut tx = store.begin().await?;
    let mut inserted = 0u64;
    for chunk in events.chunks(CHUNK) {
        let n = insert_chunk(&mut tx, chunk, &ingested_at).await?;
        if usize::try_from(n).unwrap_or(usize::MAX) < chunk.len() {
            warn_on_changed_replays(&mut tx, chunk).await?;
        }
        inserted += n;
    }
    tx.commit().await?;
    let total = u64::try_from(events.len()).unwrap_or(u64::MAX) + repeated;
    Ok(UsageAck {
        inserted,
        duplicates: total - inserted,
    })
}

/// Saturates rather than fails: `check` already bounded every value.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

async fn insert_chunk(tx: &mut Tx, chunk: &[UsageEvent], ingested_at: &str) -> ApiResult<u64> {
    let rows: Vec<String> = (0..chunk.len())
        .map(|r| {
            let params: Vec<String> = (1..=PER_ROW)
                .map(|c| format!("${}", r * PER_ROW + c))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO usage_events ({COLUMNS}, ingested_at) VALUES {} \
         ON CONFLICT (request_id) DO NOTHING",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for e in chunk {
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
            .bind(ingested_at.to_owned());
    }
    Ok(query.execute(&mut **tx).await?.rows_affected())
}

/// A replay must carry the same content; one that does not is still a duplicate (the first
/// event stands), but it points at a bug on the sending side, so it is logged.
async fn warn_on_changed_replays(tx: &mut Tx, chunk: &[UsageEvent]) -> ApiResult<()> {
    let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM usage_events WHERE request_id IN ({})",
        params.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for e in chunk {
        query = query.bind(e.request_id.clone());
    }
    let stored: HashMap<String, UsageEvent> = query
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| from_row(row).map(|e| (e.request_id.clone(), e)))
        .collect::<Result<_, _>>()?;
    for e in chunk {
        if stored.get(&e.request_id).is_some_and(|s| s != e) {
            warn_conflict(e);
        }
    }
    Ok(())
}

fn warn_conflict(e: &UsageEvent) {
    tracing::warn!(
        request_id = %e.request_id,
        tenant_id = %e.tenant_id,
        "usage event replayed with different content; the first one stands"
    );
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
