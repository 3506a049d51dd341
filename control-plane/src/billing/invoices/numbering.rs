//! Gapless invoice numbers per tenant (billing-medical.md §1.2 invariant 5, §6.1 I4).
//!
//! A tenant's `invoice_counters` row holds the last number issued. Issuing increments it
//! with one upsert in the issuing transaction: on PostgreSQL the row lock makes concurrent
//! issuers of one tenant wait for each other (READ COMMITTED re-reads the committed value),
//! on SQLite write transactions already run one at a time. A failed issue rolls the
//! increment back with everything else, so numbers are unique and have no gaps, and they
//! exist only on issued invoices (drafts have none; only drafts can be deleted).
//!
//! The same row is the per-tenant lock of invoice generation ([`lock_tenant`]), so
//! generating, issuing and deleting invoices of one tenant are serialized.

use crate::error::ApiResult;
use crate::store::Tx;

/// Takes the tenant's invoice lock for the rest of the transaction, creating the counter
/// at 0 when missing; returns the last number issued.
pub async fn lock_tenant(tx: &mut Tx, tenant_id: &str) -> ApiResult<i64> {
    let last: i64 = sqlx::query_scalar(
        "INSERT INTO invoice_counters (tenant_id, last_number) VALUES ($1, 0) \
         ON CONFLICT (tenant_id) DO UPDATE SET last_number = invoice_counters.last_number \
         RETURNING last_number",
    )
    .bind(tenant_id.to_owned())
    .fetch_one(&mut **tx)
    .await?;
    Ok(last)
}

/// Takes the tenant's next number (1, 2, 3, ...), holding the lock until the transaction
/// ends.
pub async fn next_number(tx: &mut Tx, tenant_id: &str) -> ApiResult<i64> {
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO invoice_counters (tenant_id, last_number) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET last_number = invoice_counters.last_number + 1 \
         RETURNING last_number",
    )
    .bind(tenant_id.to_owned())
    .fetch_one(&mut **tx)
    .await?;
    Ok(next)
}
