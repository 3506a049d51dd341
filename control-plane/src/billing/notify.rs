//! Money notifications (low balance, overage): an outbox row per notification, unique by a
//! dedup key, written in the transaction of the event that causes it. However many requests
//! race across a threshold, one row exists, so one notification is sent.

use serde_json::Value;

use crate::error::ApiResult;
use crate::store::{self, Tx};

/// Records a notification unless one with `dedup_key` exists; true when this call created it.
pub async fn enqueue(
    tx: &mut Tx,
    tenant_id: Option<&str>,
    kind: &str,
    dedup_key: &str,
    payload: &Value,
) -> ApiResult<bool> {
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO notifications (id, tenant_id, kind, dedup_key, payload, created_at, \
         attempts) VALUES ($1, $2, $3, $4, $5, $6, 0) \
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind(store::new_id("ntf"))
    .bind(tenant_id.map(str::to_owned))
    .bind(kind.to_owned())
    .bind(dedup_key.to_owned())
    .bind(payload.to_string())
    .bind(store::now())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(inserted.is_some())
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Notification {
    pub id: String,
    pub tenant_id: Option<String>,
    pub kind: String,
    pub dedup_key: String,
    pub payload: Value,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// Notifications of one kind (optionally one tenant), newest first.
pub async fn list(
    store: &store::Store,
    kind: &str,
    tenant_id: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<Notification>> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT id, tenant_id, kind, dedup_key, payload, created_at, delivered_at, attempts, \
         last_error FROM notifications WHERE kind = $1 AND ($2 IS NULL OR tenant_id = $2) \
         ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(kind.to_owned())
    .bind(tenant_id.map(str::to_owned))
    .bind(limit)
    .fetch_all(store.reader())
    .await?;
    rows.iter()
        .map(|r| {
            let payload: String = r.try_get("payload")?;
            Ok(Notification {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                kind: r.try_get("kind")?,
                dedup_key: r.try_get("dedup_key")?,
                payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                created_at: r.try_get("created_at")?,
                delivered_at: r.try_get("delivered_at")?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
            })
        })
        .collect()
}
