//! Leases in the store: which control plane runs a cluster-wide singleton job right now.
//!
//! One upsert decides: it takes the lease when nobody holds it, when it expired, or when the
//! caller holds it already (a renewal). The database serializes concurrent upserts of one row,
//! so at most one holder wins. Times are the control planes' clocks in ms; keep them in sync
//! (NTP) and the TTL well above the skew.

use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use sqlx::Row;

use crate::store::{self, Store};

/// A lease as stored.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LeaseRow {
    pub name: String,
    /// The control-plane instance holding it.
    pub holder: String,
    /// When it expires unless renewed (RFC 3339).
    pub expires_at: String,
    /// When the current holder took it.
    pub acquired_at: String,
}

/// Takes or renews lease `name` for `holder` for `ttl`; true when `holder` holds it now.
pub async fn try_hold(
    store: &Store,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let now = Utc::now().timestamp_millis();
    let expires = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "INSERT INTO cluster_leases (name, holder, expires_ms, acquired_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
           expires_ms = excluded.expires_ms, \
           acquired_at = CASE WHEN cluster_leases.holder = excluded.holder \
                         THEN cluster_leases.acquired_at ELSE excluded.acquired_at END \
         WHERE cluster_leases.holder = excluded.holder OR cluster_leases.expires_ms < $5",
    )
    .bind(name)
    .bind(holder)
    .bind(expires)
    .bind(store::now())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Gives lease `name` up if `holder` holds it (a clean stop hands over at once).
pub async fn release(store: &Store, name: &str, holder: &str) -> Result<(), sqlx::Error> {
    let mut tx = store.begin().await?;
    sqlx::query("DELETE FROM cluster_leases WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Every lease, by name.
pub async fn list(store: &Store) -> Result<Vec<LeaseRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, holder, expires_ms, acquired_at FROM cluster_leases ORDER BY name",
    )
    .fetch_all(store.reader())
    .await?;
    Ok(rows
        .iter()
        .map(|r| LeaseRow {
            name: r.get("name"),
            holder: r.get("holder"),
            expires_at: chrono::DateTime::from_timestamp_millis(r.get::<i64, _>("expires_ms"))
                .map(store::timestamp)
                .unwrap_or_default(),
            acquired_at: r.get("acquired_at"),
        })
        .collect())
}
