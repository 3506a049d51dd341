//! Invoices (API §2.3; billing-medical.md §1.1, §1.2, §6.1 I1-I6).
//!
//! Contract:
//! * One invoice per (tenant, period): `invoices` is UNIQUE on (tenant_id, period_start,
//!   period_end), and generation and issuing of one tenant are serialized by the tenant's
//!   `invoice_counters` row ([`numbering::lock_tenant`]), so any number of concurrent
//!   generates leave one invoice (I1) and overlapping periods are refused.
//! * Lifecycle (Stripe's): `draft -> open (issued) -> paid | void | uncollectible`,
//!   `uncollectible -> paid | void`, `draft -> deleted` (the row is removed; its period can be
//!   generated again). Anything else is 409 `invalid_transition` and changes nothing (I2).
//! * A draft is a preview, recomputed by every generate. Issuing recomputes it one last time
//!   from the usage it claims (`usage_events.invoice_id`), assigns the tenant's next gapless
//!   number in the same transaction (I4) and freezes the content behind a SHA-256
//!   `content_hash`. From then on the content (tenant, period, currency, amounts, number,
//!   lines) never changes: database triggers refuse it, generate returns the invoice
//!   unchanged, only status, `paid_at`/`voided_at`/`uncollectible_at` and notes move (I3).
//! * Money is integers (I5): each usage line is `micros_to_minor(Σ cost_micros)` of its
//!   model (half away from zero); `subtotal = Σ non-credit lines`, `credits =
//!   min(plan included credit, Σ usage lines)` (also shown as a negative `credit` line),
//!   `tax = round_half_away((subtotal - credits) × tax_rate_bps / 10000)`, `total = subtotal -
//!   credits + tax` = Σ all lines + tax.
//! * Late usage (I6): a usage row that arrives after its period's invoice was issued is not
//!   added to it. It stays unbilled (`invoice_id` NULL) and the tenant's next invoice issued
//!   for a later period bills it as a `late_usage` line (claiming it, so it is billed once).
//! * Invoices are statements of usage already debited from the prepaid balance at ingest;
//!   marking one paid records the status only and posts nothing to the ledger (a ledger
//!   `InvoicePayment` would charge the usage a second time).

pub mod content;
pub mod generate;
pub mod html;
pub mod lifecycle;
pub mod numbering;
pub mod period;
mod query;
pub mod routes;
pub mod schedule;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

pub use query::{get, list, InvoiceFilter};
pub use routes::routes;

use crate::error::ApiResult;

/// Where an invoice is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    Open,
    Paid,
    Void,
    Uncollectible,
    /// Only in the answer to the deletion of a draft: the row is gone, never listed.
    Deleted,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
            InvoiceStatus::Uncollectible => "uncollectible",
            InvoiceStatus::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "draft" => InvoiceStatus::Draft,
            "open" => InvoiceStatus::Open,
            "paid" => InvoiceStatus::Paid,
            "void" => InvoiceStatus::Void,
            "uncollectible" => InvoiceStatus::Uncollectible,
            "deleted" => InvoiceStatus::Deleted,
            _ => return None,
        })
    }
}

/// What a line bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// Usage of one model in the period.
    ModelUsage,
    /// Usage of one model from an earlier, already issued period that arrived after it was
    /// issued (I6).
    LateUsage,
    /// The plan's monthly price.
    PlanFee,
    /// Tokens beyond the included tokens, at the overage rate.
    Overage,
    /// The plan's included credit, negative, never more than the usage.
    Credit,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::ModelUsage => "model_usage",
            LineKind::LateUsage => "late_usage",
            LineKind::PlanFee => "plan_fee",
            LineKind::Overage => "overage",
            LineKind::Credit => "credit",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "model_usage" => LineKind::ModelUsage,
            "late_usage" => LineKind::LateUsage,
            "plan_fee" => LineKind::PlanFee,
            "overage" => LineKind::Overage,
            "credit" => LineKind::Credit,
            _ => return None,
        })
    }
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct InvoiceLine {
    /// 1-based order on the invoice.
    pub position: i64,
    pub kind: LineKind,
    pub description: String,
    pub model_id: Option<String>,
    /// Input plus output tokens (usage lines; tokens over the allowance for overage).
    pub quantity_tokens: i64,
    pub requests: i64,
    /// The exact cost before rounding (usage lines), in micros of a minor unit.
    pub cost_micros: i64,
    /// Signed, in minor units of the invoice currency.
    pub amount_minor: i64,
}

/// An invoice without its lines (lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct InvoiceSummary {
    pub id: String,
    pub tenant_id: String,
    /// `YYYY-MM` (tenant time zone) for a calendar-month invoice, null for explicit bounds.
    pub period: Option<String>,
    /// Inclusive start of the period (UTC).
    pub period_start: String,
    /// Exclusive end of the period (UTC).
    pub period_end: String,
    pub status: InvoiceStatus,
    /// The tenant's gapless sequence number, assigned when issued; null for drafts.
    pub number: Option<i64>,
    /// `number` formatted for people, e.g. `INV-000042`.
    pub invoice_number: Option<String>,
    pub currency: String,
    /// Σ lines other than the credit line.
    pub subtotal_minor: i64,
    pub credits_minor: i64,
    /// Tax rate in basis points (1/100 of a percent).
    pub tax_rate_bps: i64,
    pub tax_minor: i64,
    /// `subtotal_minor - credits_minor + tax_minor`.
    pub total_minor: i64,
    /// SHA-256 of the frozen content; null for drafts.
    pub content_hash: Option<String>,
    pub issued_at: Option<String>,
    pub paid_at: Option<String>,
    pub voided_at: Option<String>,
    pub uncollectible_at: Option<String>,
    pub notes: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An invoice with its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Invoice {
    #[serde(flatten)]
    pub summary: InvoiceSummary,
    pub lines: Vec<InvoiceLine>,
}

pub(crate) const INVOICE_COLUMNS: &str = "id, tenant_id, period, period_start, period_end, \
    status, number, currency, subtotal_minor, credits_minor, tax_rate_bps, tax_minor, \
    total_minor, content_hash, issued_at, paid_at, voided_at, uncollectible_at, notes, \
    created_at, updated_at";

pub(crate) const LINE_COLUMNS: &str = "position, kind, description, model_id, \
    quantity_tokens, requests, cost_micros, amount_minor";

/// `INV-000042`.
pub fn format_number(number: i64) -> String {
    format!("INV-{number:06}")
}

pub(crate) fn summary_of(row: &AnyRow) -> ApiResult<InvoiceSummary> {
    let status: String = row.try_get("status")?;
    let number: Option<i64> = row.try_get("number")?;
    Ok(InvoiceSummary {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        period: row.try_get("period")?,
        period_start: row.try_get("period_start")?,
        period_end: row.try_get("period_end")?,
        status: InvoiceStatus::parse(&status).ok_or_else(|| {
            crate::error::ApiError::internal(format!("unknown invoice status {status:?}"))
        })?,
        number,
        invoice_number: number.map(format_number),
        currency: row.try_get("currency")?,
        subtotal_minor: row.try_get("subtotal_minor")?,
        credits_minor: row.try_get("credits_minor")?,
        tax_rate_bps: row.try_get("tax_rate_bps")?,
        tax_minor: row.try_get("tax_minor")?,
        total_minor: row.try_get("total_minor")?,
        content_hash: row.try_get("content_hash")?,
        issued_at: row.try_get("issued_at")?,
        paid_at: row.try_get("paid_at")?,
        voided_at: row.try_get("voided_at")?,
        uncollectible_at: row.try_get("uncollectible_at")?,
        notes: row.try_get("notes")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn line_of(row: &AnyRow) -> ApiResult<InvoiceLine> {
    let kind: String = row.try_get("kind")?;
    Ok(InvoiceLine {
        position: row.try_get("position")?,
        kind: LineKind::parse(&kind).ok_or_else(|| {
            crate::error::ApiError::internal(format!("unknown invoice line kind {kind:?}"))
        })?,
        description: row.try_get("description")?,
        model_id: row.try_get("model_id")?,
        quantity_tokens: row.try_get("quantity_tokens")?,
        requests: row.try_get("requests")?,
        cost_micros: row.try_get("cost_micros")?,
        amount_minor: row.try_get("amount_minor")?,
    })
}
