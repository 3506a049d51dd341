//! Reading invoices: one with its lines, or a filtered, paginated page of summaries.

use sqlx::AnyConnection;

use super::{line_of, summary_of, Invoice, InvoiceStatus, InvoiceSummary};
use super::{INVOICE_COLUMNS, LINE_COLUMNS};
use crate::api::pagination::Page;
use crate::error::ApiResult;
use crate::store::filter::Where;
use crate::store::Store;

/// Filters of an invoice list; None matches everything.
#[derive(Debug, Clone, Default)]
pub struct InvoiceFilter {
    pub tenant_id: Option<String>,
    pub status: Option<InvoiceStatus>,
    /// `YYYY-MM`, matched against the invoice's month label.
    pub period: Option<String>,
}

/// One invoice with its lines, None when missing.
pub async fn load(conn: &mut AnyConnection, id: &str) -> ApiResult<Option<Invoice>> {
    let row = sqlx::query(&format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1"
    ))
    .bind(id.to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let summary = summary_of(&row)?;
    let lines = sqlx::query(&format!(
        "SELECT {LINE_COLUMNS} FROM invoice_lines WHERE invoice_id = $1 ORDER BY position"
    ))
    .bind(id.to_owned())
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(line_of)
    .collect::<ApiResult<Vec<_>>>()?;
    Ok(Some(Invoice { summary, lines }))
}

/// One invoice with its lines, from the read pool.
pub async fn get(store: &Store, id: &str) -> ApiResult<Option<Invoice>> {
    load(&mut *store.reader().acquire().await?, id).await
}

/// A page of invoices, newest period first, with the total count.
pub async fn list(
    store: &Store,
    filter: &InvoiceFilter,
    page: u32,
    page_size: u32,
) -> ApiResult<Page<InvoiceSummary>> {
    let mut w = Where::new();
    w.eq_text("tenant_id", filter.tenant_id.as_deref())
        .eq_text("status", filter.status.map(InvoiceStatus::as_str))
        .eq_text("period", filter.period.as_deref());
    let total: i64 = w
        .bind_scalar(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM invoices WHERE {}",
            w.sql()
        )))
        .fetch_one(store.reader())
        .await?;
    // Page bounds are validated integers, spliced as numbers; filter values are bound.
    let sql = format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE {} \
         ORDER BY period_start DESC, tenant_id, id LIMIT {} OFFSET {}",
        w.sql(),
        page_size,
        u64::from(page - 1) * u64::from(page_size)
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(store.reader()).await?;
    Ok(Page {
        items: rows.iter().map(summary_of).collect::<ApiResult<_>>()?,
        total: u64::try_from(total).unwrap_or_default(),
        page,
        page_size,
    })
}
