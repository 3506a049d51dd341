//! The `notifications` outbox as the notifier sees it (0007_billing.sql, 0012_notifier.sql):
//! due rows, leases, outcomes, lists and manual retries.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::MAX_ATTEMPTS;
use crate::api::pagination::{Page, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::store::filter::Where;
use crate::store::Store;
use crate::validate;

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its first or next attempt (`next_attempt_at`).
    Pending,
    /// Every channel delivered.
    Delivered,
    /// Gave up after the maximum attempts; `POST /api/notifications/{id}/retry` queues it
    /// again.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Status {
        match text {
            "delivered" => Status::Delivered,
            "failed" => Status::Failed,
            _ => Status::Pending,
        }
    }
}

/// The outcome of one channel (`email:<address>` or `webhook`) of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChannelOutcome {
    pub channel: String,
    /// `delivered` or `failed` (the last attempt's result).
    pub status: String,
    /// Attempts on this channel so far.
    pub attempts: u32,
    /// The last failure, when the last attempt failed.
    pub error: Option<String>,
    /// When the last attempt ended.
    pub at: String,
}

/// A notification with its delivery state, as `GET /api/notifications` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Notification {
    pub id: String,
    pub tenant_id: Option<String>,
    /// `low_balance`, `overage`, `alert`.
    pub kind: String,
    pub dedup_key: String,
    pub status: Status,
    /// Attempts so far (reset to 0 by a manual retry).
    pub attempts: i64,
    /// Attempts before the notification is marked failed.
    pub max_attempts: i64,
    /// Every failing channel's error of the last attempt.
    pub last_error: Option<String>,
    /// When a pending notification is tried next (null once delivered or failed).
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub updated_at: Option<String>,
    pub channels: Vec<ChannelOutcome>,
    pub payload: Value,
}

const COLUMNS: &str = "id, tenant_id, kind, dedup_key, payload, created_at, delivered_at, \
    attempts, last_error, status, next_attempt_at, channels, updated_at";

fn notification_of(row: &AnyRow) -> ApiResult<Notification> {
    let payload: String = row.try_get("payload")?;
    let channels: String = row.try_get("channels")?;
    let status = Status::parse(&row.try_get::<String, _>("status")?);
    let created_at: String = row.try_get("created_at")?;
    let next: Option<String> = row.try_get("next_attempt_at")?;
    Ok(Notification {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        kind: row.try_get("kind")?,
        dedup_key: row.try_get("dedup_key")?,
        status,
        attempts: row.try_get("attempts")?,
        max_attempts: MAX_ATTEMPTS,
        last_error: row.try_get("last_error")?,
        next_attempt_at: match status {
            Status::Pending => Some(next.unwrap_or_else(|| created_at.clone())),
            _ => None,
        },
        created_at,
        delivered_at: row.try_get("delivered_at")?,
        updated_at: row.try_get("updated_at")?,
        channels: serde_json::from_str(&channels).unwrap_or_default(),
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
    })
}

/// Ids of pending rows due at `now` and not leased, oldest first.
pub async fn due(store: &Store, now: &str, limit: i64) -> ApiResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM notifications WHERE status = 'pending' \
         AND (next_attempt_at IS NULL OR next_attempt_at <= $1) \
         AND (claimed_until IS NULL OR claimed_until < $1) \
         ORDER BY created_at, id LIMIT $2",
    )
    .bind(now.to_owned())
    .bind(limit)
    .fetch_all(store.reader())
    .await?)
}

/// Takes the lease of row `id` for `token` until `until`, if it is still due and free at
/// `now`; true when this call got it. One conditional UPDATE: of any number of control planes
/// racing for a row, one gets it (PostgreSQL re-checks the condition on the row it waited
/// for; SQLite writers are serialized).
pub async fn claim(
    store: &Store,
    id: &str,
    token: &str,
    now: &str,
    until: &str,
) -> ApiResult<bool> {
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "UPDATE notifications SET claimed_by = $1, claimed_until = $2 \
         WHERE id = $3 AND status = 'pending' \
         AND (next_attempt_at IS NULL OR next_attempt_at <= $4) \
         AND (claimed_until IS NULL OR claimed_until < $4)",
    )
    .bind(token.to_owned())
    .bind(until.to_owned())
    .bind(id.to_owned())
    .bind(now.to_owned())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(done == 1)
}

/// One notification.
pub async fn get(store: &Store, id: &str) -> ApiResult<Option<Notification>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE id = $1"
    ))
    .bind(id.to_owned())
    .fetch_optional(store.reader())
    .await?;
    row.as_ref().map(notification_of).transpose()
}

/// Stores the channel outcomes so far and extends the lease; false when the lease was lost
/// (it expired and another control plane took the row): the caller must stop.
pub async fn save_progress(
    store: &Store,
    id: &str,
    token: &str,
    channels: &[ChannelOutcome],
    until: &str,
    now: &str,
) -> ApiResult<bool> {
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "UPDATE notifications SET channels = $1, claimed_until = $2, updated_at = $3 \
         WHERE id = $4 AND claimed_by = $5",
    )
    .bind(serde_json::to_string(channels).map_err(ApiError::internal)?)
    .bind(until.to_owned())
    .bind(now.to_owned())
    .bind(id.to_owned())
    .bind(token.to_owned())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(done == 1)
}

/// The end of one attempt.
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    pub status: Status,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub channels: &'a [ChannelOutcome],
    pub now: &'a str,
}

/// Records the end of an attempt and releases the lease; false when the lease was lost.
pub async fn finish(store: &Store, id: &str, token: &str, f: Finish<'_>) -> ApiResult<bool> {
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "UPDATE notifications SET status = $1, attempts = $2, last_error = $3, \
         next_attempt_at = $4, delivered_at = $5, channels = $6, updated_at = $7, \
         claimed_by = NULL, claimed_until = NULL WHERE id = $8 AND claimed_by = $9",
    )
    .bind(f.status.as_str())
    .bind(f.attempts)
    .bind(f.last_error)
    .bind(f.next_attempt_at)
    .bind(f.delivered_at)
    .bind(serde_json::to_string(f.channels).map_err(ApiError::internal)?)
    .bind(f.now.to_owned())
    .bind(id.to_owned())
    .bind(token.to_owned())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(done == 1)
}

/// Makes a failed (or pending) notification due now with a fresh series of attempts; the
/// channels already delivered are not sent again. 404 for an unknown id, 409 when it was
/// delivered or is being delivered right now.
pub async fn retry(store: &Store, id: &str, now: &str) -> ApiResult<Notification> {
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "UPDATE notifications SET status = 'pending', attempts = 0, next_attempt_at = $1, \
         updated_at = $1 WHERE id = $2 AND status <> 'delivered' \
         AND (claimed_until IS NULL OR claimed_until < $1)",
    )
    .bind(now.to_owned())
    .bind(id.to_owned())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    let current = get(store, id)
        .await?
        .ok_or_else(|| ApiError::not_found("notification", id))?;
    if done == 1 {
        return Ok(current);
    }
    Err(match current.status {
        Status::Delivered => ApiError::conflict(
            "already_delivered",
            format!(
                "notification {id} was delivered at {}",
                current.delivered_at.unwrap_or_default()
            ),
        ),
        _ => ApiError::conflict(
            "being_delivered",
            format!("notification {id} is being delivered right now; retry in a minute"),
        ),
    })
}

/// Query of `GET /api/notifications`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    /// `low_balance`, `overage`, `alert`, ...
    pub kind: Option<String>,
    pub tenant_id: Option<String>,
}

/// One page of notifications, newest first.
pub async fn page(store: &Store, q: &NotificationQuery) -> ApiResult<Page<Notification>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    if let Some(s) = &q.status {
        if !matches!(s.as_str(), "pending" | "delivered" | "failed") {
            return Err(ApiError::invalid(
                "status",
                "must be one of pending, delivered, failed",
            ));
        }
    }
    if let Some(k) = &q.kind {
        validate::plain_id("kind", k, 64)?;
    }
    if let Some(t) = &q.tenant_id {
        validate::plain_id("tenant_id", t, 128)?;
    }
    let mut w = Where::new();
    w.eq_text("status", q.status.as_deref())
        .eq_text("kind", q.kind.as_deref())
        .eq_text("tenant_id", q.tenant_id.as_deref());
    let where_sql = w.sql();
    let total: i64 = w
        .bind_scalar(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM notifications WHERE {where_sql}"
        )))
        .fetch_one(store.reader())
        .await?;
    let offset = i64::from(page - 1) * i64::from(size);
    let sql = format!(
        "SELECT {COLUMNS} FROM notifications WHERE {where_sql} \
         ORDER BY created_at DESC, id DESC LIMIT {size} OFFSET {offset}"
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(store.reader()).await?;
    Ok(Page {
        items: rows.iter().map(notification_of).collect::<ApiResult<_>>()?,
        total: u64::try_from(total).unwrap_or_default(),
        page,
        page_size: size,
    })
}
