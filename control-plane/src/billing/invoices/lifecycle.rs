//! `PUT /api/billing/invoices/{id}/status` and `DELETE /api/billing/invoices/{id}` (I2, I3,
//! I4): Stripe's lifecycle, each transition one conditional write.
//!
//! | from          | to                                   |
//! |---------------|--------------------------------------|
//! | draft         | open (issue), deleted                |
//! | open          | paid, void, uncollectible            |
//! | uncollectible | paid, void                           |
//!
//! Every other pair (including a status to itself, and anything from paid or void) is 409
//! `invalid_transition` and changes nothing. Only the status, its timestamp
//! (`paid_at`, `voided_at`, `uncollectible_at`) and `notes` change after issuing.

use serde::Deserialize;
use sqlx::Row;

use super::content::{self, Source};
use super::period::Period;
use super::{numbering, query, Invoice, InvoiceStatus};
use crate::error::{ApiError, ApiResult};
use crate::resource;
use crate::store::{self, Store, Tx};
use crate::tenants::Tenant;

/// Longest note.
pub const MAX_NOTE: usize = 2_000;

/// Body of `PUT /api/billing/invoices/{id}/status`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// `open` (issue), `paid`, `void`, `uncollectible`, or `deleted` (drafts only).
    pub status: String,
    /// Replaces the invoice's notes when given (at most 2000 characters).
    pub note: Option<String>,
}

/// The statuses a transition to `to` may start from.
pub fn allowed_from(to: InvoiceStatus) -> &'static [InvoiceStatus] {
    use InvoiceStatus::*;
    match to {
        Open | Deleted => &[Draft],
        Paid | Void => &[Open, Uncollectible],
        Uncollectible => &[Open],
        Draft => &[],
    }
}

/// Applies a status change; returns the invoice after it (for `deleted`, as it was, with
/// status `deleted`) and the status it left.
pub async fn change(
    store: &Store,
    id: &str,
    req: &StatusChange,
) -> ApiResult<(Invoice, InvoiceStatus)> {
    let to = InvoiceStatus::parse(&req.status).ok_or_else(|| {
        ApiError::invalid(
            "status",
            "must be one of open, paid, void, uncollectible, deleted",
        )
    })?;
    if let Some(note) = &req.note {
        if note.chars().count() > MAX_NOTE || note.contains('\0') {
            return Err(ApiError::invalid(
                "note",
                format!("at most {MAX_NOTE} characters, no NUL"),
            ));
        }
    }
    let current = query::get(store, id)
        .await?
        .ok_or_else(|| ApiError::not_found("invoice", id))?;
    let from = current.summary.status;
    if !allowed_from(to).contains(&from) {
        return Err(refused(from, to));
    }
    let done = match to {
        InvoiceStatus::Open => issue(store, &current, req.note.as_deref()).await?,
        InvoiceStatus::Deleted => delete(store, current).await?,
        _ => settle(store, id, to, req.note.as_deref()).await?,
    };
    Ok((done, from))
}

fn refused(from: InvoiceStatus, to: InvoiceStatus) -> ApiError {
    ApiError::conflict(
        "invalid_transition",
        format!(
            "an invoice cannot go from {} to {}",
            from.as_str(),
            to.as_str()
        ),
    )
}

/// 409 with the status the invoice has now (another request changed it first).
async fn refuse_now(tx: &mut Tx, id: &str, to: InvoiceStatus) -> ApiError {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM invoices WHERE id = $1")
        .bind(id.to_owned())
        .fetch_optional(&mut **tx)
        .await
        .ok()
        .flatten();
    match status.as_deref().and_then(InvoiceStatus::parse) {
        Some(now) => refused(now, to),
        None => ApiError::not_found("invoice", id),
    }
}

/// draft -> open: claims the unbilled usage, recomputes and freezes the content, takes the
/// tenant's next number and hashes the content, all in one transaction.
async fn issue(store: &Store, draft: &Invoice, note: Option<&str>) -> ApiResult<Invoice> {
    let s = &draft.summary;
    let mut tx = store.begin().await?;
    let number = numbering::next_number(&mut tx, &s.tenant_id).await?;
    let row = sqlx::query("SELECT status, tax_rate_bps FROM invoices WHERE id = $1")
        .bind(s.id.clone())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("invoice", &s.id))?;
    let status: String = row.try_get("status")?;
    if status != InvoiceStatus::Draft.as_str() {
        return Err(refuse_now(&mut tx, &s.id, InvoiceStatus::Open).await);
    }
    let tenant = resource::load_tx::<Tenant>(&mut tx, &s.tenant_id)
        .await?
        .map(|t| t.value)
        .ok_or_else(|| {
            ApiError::conflict("tenant_missing", "the invoice's tenant no longer exists")
        })?;
    let period = Period {
        label: s.period.clone(),
        start: s.period_start.clone(),
        end: s.period_end.clone(),
    };
    let rate: i64 = row.try_get("tax_rate_bps")?;
    content::claim_usage(&mut tx, &s.id, &tenant.id, &period).await?;
    let c = content::compute(&mut tx, &tenant, &period, Source::Claimed(&s.id), rate).await?;
    let now = store::now();
    content::write(&mut tx, &s.id, &c, &now).await?;
    let hash = content::content_hash(&tenant.id, &period, number, &c);
    let issued = sqlx::query(
        "UPDATE invoices SET status = 'open', number = $1, content_hash = $2, issued_at = $3, \
         notes = COALESCE($4, notes), updated_at = $3 WHERE id = $5 AND status = 'draft'",
    )
    .bind(number)
    .bind(hash)
    .bind(now)
    .bind(note.map(str::to_owned))
    .bind(s.id.clone())
    .execute(&mut *tx)
    .await?;
    if issued.rows_affected() != 1 {
        return Err(refuse_now(&mut tx, &s.id, InvoiceStatus::Open).await);
    }
    let invoice = query::load(&mut tx, &s.id)
        .await?
        .ok_or_else(|| ApiError::internal("invoice vanished while issuing"))?;
    tx.commit().await?;
    Ok(invoice)
}

/// draft -> deleted: removes the draft and its lines (it has no number, so no gap).
async fn delete(store: &Store, mut draft: Invoice) -> ApiResult<Invoice> {
    let mut tx = store.begin().await?;
    numbering::lock_tenant(&mut tx, &draft.summary.tenant_id).await?;
    let gone: Option<String> =
        sqlx::query_scalar("DELETE FROM invoices WHERE id = $1 AND status = 'draft' RETURNING id")
            .bind(draft.summary.id.clone())
            .fetch_optional(&mut *tx)
            .await?;
    if gone.is_none() {
        return Err(refuse_now(&mut tx, &draft.summary.id, InvoiceStatus::Deleted).await);
    }
    sqlx::query("DELETE FROM invoice_lines WHERE invoice_id = $1")
        .bind(draft.summary.id.clone())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    draft.summary.status = InvoiceStatus::Deleted;
    draft.summary.updated_at = store::now();
    Ok(draft)
}

/// open | uncollectible -> paid | void | uncollectible: one conditional UPDATE.
async fn settle(
    store: &Store,
    id: &str,
    to: InvoiceStatus,
    note: Option<&str>,
) -> ApiResult<Invoice> {
    let stamp = match to {
        InvoiceStatus::Paid => "paid_at",
        InvoiceStatus::Void => "voided_at",
        _ => "uncollectible_at",
    };
    let from: Vec<String> = allowed_from(to)
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let mut tx = store.begin().await?;
    let now = store::now();
    let done = sqlx::query(&format!(
        "UPDATE invoices SET status = $1, {stamp} = $2, notes = COALESCE($3, notes), \
         updated_at = $2 WHERE id = $4 AND status IN ({})",
        from.join(", ")
    ))
    .bind(to.as_str())
    .bind(now)
    .bind(note.map(str::to_owned))
    .bind(id.to_owned())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(refuse_now(&mut tx, id, to).await);
    }
    let invoice = query::load(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::internal("invoice vanished while changing status"))?;
    tx.commit().await?;
    Ok(invoice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use InvoiceStatus::*;

    #[test]
    fn the_transition_table_is_stripes() {
        let all = [Draft, Open, Paid, Void, Uncollectible, Deleted];
        let allowed: Vec<(InvoiceStatus, InvoiceStatus)> = all
            .iter()
            .flat_map(|&to| allowed_from(to).iter().map(move |&from| (from, to)))
            .collect();
        assert_eq!(allowed.len(), 7);
        for pair in [
            (Draft, Open),
            (Draft, Deleted),
            (Open, Paid),
            (Open, Void),
            (Open, Uncollectible),
            (Uncollectible, Paid),
            (Uncollectible, Void),
        ] {
            assert!(allowed.contains(&pair), "{pair:?}");
        }
    }
}
