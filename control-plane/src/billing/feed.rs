//! The balance feed for the data plane: `GET /api/internal/balances?after=<cursor>` (node
//! token), answering [`FundsFeed`].
//!
//! The cursor is the global sequence of migration 0008: a trigger bumps it in the
//! transaction of every change of a gated tenant's funds and stamps the changed balance row
//! with it (`feed_seq`). Writers serialize on the sequence's row until they commit, so
//! sequence order is commit order; one statement reads the sequence and the rows changed after
//! the cursor from one snapshot, so the returned cursor covers exactly what was returned and
//! no change is ever skipped. `after=0` (or a cursor from another database, beyond the
//! sequence) answers the full state: every gated tenant (one with an overdraft limit).
//! Tenants without a limit are postpaid and not gated; one whose limit is removed appears
//! once with `spendable_minor: null`.

use std::time::Duration;

use medgate_config::{FundsEntry, FundsFeed};
use serde::Deserialize;
use sqlx::Row;

use crate::error::{ApiError, ApiResult};
use crate::store::Store;

/// Longest long-poll, seconds.
pub const MAX_WAIT_SECS: u64 = 30;

/// Query of the balance feed.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// The cursor of the previous answer; 0 or absent: the full state.
    pub after: Option<u64>,
    /// When nothing changed after the cursor, wait up to this many seconds (0 to 30, default
    /// 0) for a change before answering with no funds and the same cursor.
    #[serde(alias = "wait")]
    pub wait_secs: Option<u64>,
}

/// The changes after `after` (the full state for 0), long-polling up to `wait`: the store is
/// read once, then the control plane's shared watermark (`seqs`, see [`crate::changes`]) wakes
/// the wait.
pub async fn changes(
    store: &Store,
    after: u64,
    wait: Duration,
    mut seqs: tokio::sync::watch::Receiver<u64>,
) -> ApiResult<FundsFeed> {
    if wait > Duration::from_secs(MAX_WAIT_SECS) {
        return Err(ApiError::invalid(
            "wait_secs",
            format!("must be between 0 and {MAX_WAIT_SECS}"),
        ));
    }
    let deadline = tokio::time::Instant::now() + wait;
    let feed = read(store, after).await?;
    if feed.cursor != after || !feed.funds.is_empty() || wait.is_zero() {
        return Ok(feed);
    }
    if crate::changes::wait_above(&mut seqs, after, deadline).await {
        return read(store, after).await;
    }
    Ok(feed)
}

/// One read: the sequence and the rows changed after `after`, from one snapshot.
async fn read(store: &Store, after: u64) -> ApiResult<FundsFeed> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT f.seq AS cursor, b.tenant_id, b.currency, b.balance_minor, b.overdraft_minor \
         FROM balance_feed f LEFT JOIN tenant_balances b ON \
           CASE WHEN $1 <= 0 OR $1 > f.seq THEN b.overdraft_minor IS NOT NULL \
                ELSE b.feed_seq > $1 END \
         WHERE f.id = 1 ORDER BY b.tenant_id",
    )
    .bind(after)
    .fetch_all(store.reader())
    .await?;
    let mut cursor = 0i64;
    let mut funds = Vec::with_capacity(rows.len());
    for row in &rows {
        cursor = row.try_get("cursor")?;
        let Some(tenant_id) = row.try_get::<Option<String>, _>("tenant_id")? else {
            continue;
        };
        let balance: i64 = row.try_get("balance_minor")?;
        let overdraft: Option<i64> = row.try_get("overdraft_minor")?;
        funds.push(FundsEntry {
            tenant_id,
            spendable_minor: overdraft.map(|o| balance.saturating_add(o)),
            currency: row.try_get("currency")?,
        });
    }
    Ok(FundsFeed {
        cursor: u64::try_from(cursor).unwrap_or_default(),
        funds,
    })
}
