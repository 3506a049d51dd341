//! Idempotent ingest of access-log batches (`POST /api/internal/access-logs`): unique on the
//! request id with `ON CONFLICT DO NOTHING`, like usage events (DESIGN.md §3.2), so a batch
//! replayed from a proxy's spool changes nothing.

use medgate_config::access_log::{MAX_HOST_CHARS, MAX_PATH_CHARS};
use medgate_config::{AccessLogBatch, AccessLogEntry};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::api::parse_time;
use crate::error::{ApiError, ApiResult};
use crate::store::{self, Store};
use crate::validate;

/// Most entries in one batch.
pub const MAX_BATCH: usize = 10_000;
/// Rows per INSERT: 500 x 13 parameters stays well below both databases' limits.
const CHUNK: usize = 500;
const PER_ROW: usize = 13;

pub(super) const COLUMNS: &str = "request_id, occurred_at, method, host, path, status, \
    latency_ms, tenant_id, route, upstream, bytes_sent, instance_id";

/// Checks every entry and normalizes it; the batch is refused whole (422 naming the entry and
/// field) when one breaks the contract.
pub fn prepare(batch: AccessLogBatch) -> ApiResult<Vec<AccessLogEntry>> {
    if batch.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "events",
            format!("at most {MAX_BATCH} entries per batch"),
        ));
    }
    let mut entries = batch.events;
    for (i, e) in entries.iter_mut().enumerate() {
        check(i, e)?;
    }
    // Sorted, so two PostgreSQL transactions with overlapping batches wait on each other
    // instead of deadlocking.
    entries.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    entries.dedup_by(|a, b| a.request_id == b.request_id);
    Ok(entries)
}

fn check(i: usize, e: &mut AccessLogEntry) -> ApiResult<()> {
    let field = |name: &str| format!("events[{i}].{name}");
    validate::plain_id(&field("request_id"), &e.request_id, 128)?;
    validate::plain_id(&field("instance_id"), &e.instance_id, 64)?;
    validate::plain_id(&field("route"), &e.route, 128)?;
    if let Some(t) = &e.tenant_id {
        validate::plain_id(&field("tenant_id"), t, 128)?;
    }
    if e.method.is_empty()
        || e.method.len() > 32
        || !e
            .method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::invalid(
            &field("method"),
            "must be an HTTP method (1 to 32 letters)",
        ));
    }
    // Whatever the sender did, a query string never reaches the store.
    e.path = AccessLogEntry::loggable_path(&e.path);
    for (name, value, max) in [
        ("host", &e.host, MAX_HOST_CHARS),
        ("path", &e.path, MAX_PATH_CHARS),
        (
            "upstream",
            e.upstream.as_ref().unwrap_or(&String::new()),
            512,
        ),
    ] {
        if value.chars().count() > max {
            return Err(ApiError::invalid(
                &field(name),
                format!("at most {max} characters"),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                &field(name),
                "must not contain control characters",
            ));
        }
    }
    if !(100..=599).contains(&e.status) {
        return Err(ApiError::invalid(
            &field("status"),
            "must be an HTTP status (100 to 599)",
        ));
    }
    for (name, value) in [("latency_ms", e.latency_ms), ("bytes_sent", e.bytes_sent)] {
        if i64::try_from(value).is_err() {
            return Err(ApiError::invalid(&field(name), "is too large"));
        }
    }
    e.occurred_at = parse_time(&field("occurred_at"), &e.occurred_at)?;
    Ok(())
}

/// Stores prepared entries in one transaction; returns how many were new.
pub async fn ingest(store: &Store, entries: &[AccessLogEntry]) -> ApiResult<u64> {
    let ingested_at = store::now();
    let mut tx = store.begin().await?;
    let mut inserted = 0;
    for chunk in entries.chunks(CHUNK) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|r| {
                let params: Vec<String> = (1..=PER_ROW)
                    .map(|c| format!("${}", r * PER_ROW + c))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO access_logs ({COLUMNS}, ingested_at) VALUES {} \
             ON CONFLICT (request_id) DO NOTHING",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for e in chunk {
            query = query
                .bind(e.request_id.clone())
                .bind(e.occurred_at.clone())
                .bind(e.method.clone())
                .bind(e.host.clone())
                .bind(e.path.clone())
                .bind(i64::from(e.status))
                .bind(int(e.latency_ms))
                .bind(e.tenant_id.clone())
                .bind(e.route.clone())
                .bind(e.upstream.clone())
                .bind(int(e.bytes_sent))
                .bind(e.instance_id.clone())
                .bind(ingested_at.clone());
        }
        inserted += query.execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Saturates rather than fails: `check` already bounded every value.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An entry as stored.
pub(super) fn from_row(row: &AnyRow) -> Result<AccessLogEntry, sqlx::Error> {
    let unsigned = |name: &str| -> Result<u64, sqlx::Error> {
        Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or_default())
    };
    Ok(AccessLogEntry {
        request_id: row.try_get("request_id")?,
        occurred_at: row.try_get("occurred_at")?,
        method: row.try_get("method")?,
        host: row.try_get("host")?,
        path: row.try_get("path")?,
        status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or_default(),
        latency_ms: unsigned("latency_ms")?,
        tenant_id: row.try_get("tenant_id")?,
        route: row.try_get("route")?,
        upstream: row.try_get("upstream")?,
        bytes_sent: unsigned("bytes_sent")?,
        instance_id: row.try_get("instance_id")?,
    })
}
