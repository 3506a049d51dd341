//! The brute-force limit of redemptions (billing-medical.md §2.6, B9).
//!
//! Contract:
//! * A failed redemption (unknown, used, expired or disabled code) is one row per scope in
//!   `recharge_failures`: the tenant (`tenant:<id>`) and the client address (`ip:<addr>`).
//! * [`admit`] refuses an attempt with 429 and `Retry-After` when either scope has
//!   [`MAX_FAILURES`] failures in the last [`WINDOW_SECS`] (a sliding window), whether or not
//!   the code would have been valid. Retry-After is when the oldest counted failure leaves
//!   the window.
//! * The counters live in the database, so every control-plane instance sees the same ones,
//!   and they are checked and written in the redemption's own transaction: a store that
//!   cannot be reached fails the redemption (fail closed, as money should).
//! * On PostgreSQL, [`admit`] takes a transaction-scoped advisory lock per scope (in sorted
//!   order, so two attempts cannot deadlock) so concurrent attempts cannot overshoot the
//!   limit; SQLite already runs write transactions one at a time.
//! * Malformed codes (wrong length, symbol or check symbol) are refused before any of this:
//!   they are typos, not guesses, and count for nothing.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

use crate::error::{ApiError, ApiResult};
use crate::store::{self, Tx};

/// Failed redemptions allowed per scope in a window.
pub const MAX_FAILURES: i64 = 10;
/// The window, in seconds (15 minutes).
pub const WINDOW_SECS: i64 = 15 * 60;

/// The scopes an attempt counts against, sorted.
pub fn scopes(tenant_id: &str, ip: Option<IpAddr>) -> Vec<String> {
    let ip = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let mut scopes = vec![format!("tenant:{tenant_id}"), format!("ip:{ip}")];
    scopes.sort();
    scopes
}

/// 429 when a scope is over the limit (see the module contract).
pub async fn admit(tx: &mut Tx, scopes: &[String], now: DateTime<Utc>) -> ApiResult<()> {
    let postgres = tx.backend_name().eq_ignore_ascii_case("postgresql");
    let cutoff = store::timestamp(now - Duration::seconds(WINDOW_SECS));
    for scope in scopes {
        if postgres {
            sqlx::query("SELECT CAST(pg_advisory_xact_lock(hashtextextended($1, 0)) AS TEXT)")
                .bind(scope.clone())
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query("DELETE FROM recharge_failures WHERE scope_key = $1 AND attempted_at <= $2")
            .bind(scope.clone())
            .bind(cutoff.clone())
            .execute(&mut **tx)
            .await?;
        // The failure whose expiry brings the scope back under the limit.
        let limiting: Option<String> = sqlx::query_scalar(&format!(
            "SELECT attempted_at FROM recharge_failures WHERE scope_key = $1 \
             ORDER BY attempted_at DESC LIMIT 1 OFFSET {}",
            MAX_FAILURES - 1
        ))
        .bind(scope.clone())
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(at) = limiting {
            let at = DateTime::parse_from_rfc3339(&at)
                .map_err(ApiError::internal)?
                .with_timezone(&Utc);
            let free = at + Duration::seconds(WINDOW_SECS);
            let wait = (free - now).num_milliseconds().max(0);
            let retry_after_secs = u64::try_from((wait + 999) / 1000).unwrap_or(1).max(1);
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "too many failed redemptions ({MAX_FAILURES} in {} minutes); retry in \
                     {retry_after_secs} seconds",
                    WINDOW_SECS / 60
                ),
                retry_after_secs,
            });
        }
    }
    Ok(())
}

/// Counts one failed attempt against every scope.
pub async fn record_failure(tx: &mut Tx, scopes: &[String], now: DateTime<Utc>) -> ApiResult<()> {
    let at = store::timestamp(now);
    for scope in scopes {
        sqlx::query(
            "INSERT INTO recharge_failures (id, scope_key, attempted_at) VALUES ($1, $2, $3)",
        )
        .bind(store::new_id("rcf"))
        .bind(scope.clone())
        .bind(at.clone())
        .execute(&mut **tx)
        .await?;
    }
    // Scopes that never come back would otherwise keep their rows forever.
    sqlx::query("DELETE FROM recharge_failures WHERE attempted_at <= $1")
        .bind(store::timestamp(now - Duration::seconds(WINDOW_SECS)))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_sorted_and_name_the_tenant_and_address() {
        let s = scopes("tnt_1", "10.0.0.7".parse().ok());
        assert_eq!(s, vec!["ip:10.0.0.7".to_owned(), "tenant:tnt_1".to_owned()]);
        assert_eq!(scopes("t", None)[0], "ip:unknown");
    }
}
