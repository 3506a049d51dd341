//! `/api/billing/invoices` and `/api/billing/tenants/{tenantId}/invoices` (API §2.3).
//! Platform admins generate and change status; every role reads, tenant roles only their
//! own tenant's invoices (another tenant's invoice is a 404). Mutations are audited by the
//! API guard, each with the invoice, its tenant and what changed.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::generate::{self, GenerateRequest, Outcome};
use super::lifecycle::{self, StatusChange};
use super::period::parse_month;
use super::{html, list, Invoice, InvoiceFilter, InvoiceStatus, InvoiceSummary};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource;
use crate::state::AppState;
use crate::tenants::Tenant;

const LIST: &str = "/api/billing/invoices";
const ITEM: &str = "/api/billing/invoices/{id}";
const RESOURCE: &str = "invoice";

/// Query of the invoice lists.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceListQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// Only this tenant's invoices (ignored under `/api/billing/tenants/{tenantId}`).
    pub tenant_id: Option<String>,
    /// `draft`, `open`, `paid`, `void` or `uncollectible`.
    pub status: Option<String>,
    /// `YYYY-MM`: calendar-month invoices of that month.
    pub period: Option<String>,
}

/// Query of `GET /api/billing/invoices/{id}`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceGetQuery {
    /// `json` (default) or `html` (a printable page; `Accept: text/html` does the same).
    pub format: Option<String>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(LIST, "billing.invoices.list", "List invoices")
            .access(Access::Read)
            .resource(RESOURCE)
            .query::<InvoiceListQuery>()
            .response::<Page<InvoiceSummary>>(),
        list_all,
    )
    .add(
        Endpoint::post(
            "/api/billing/invoices/generate",
            "billing.invoices.generate",
            "Generate (or recompute the draft of) a tenant's invoice for a period",
        )
        .access(Access::PlatformAdmin)
        .resource(RESOURCE)
        .request::<GenerateRequest>()
        .response::<Invoice>()
        .status(201)
        .also_status(200),
        generate_invoice,
    )
    .add(
        Endpoint::get(
            ITEM,
            "billing.invoices.get",
            "Get an invoice (JSON or printable HTML)",
        )
        .access(Access::Read)
        .resource(RESOURCE)
        .query::<InvoiceGetQuery>()
        .response::<Invoice>(),
        get_invoice,
    )
    .add(
        Endpoint::put(
            "/api/billing/invoices/{id}/status",
            "billing.invoices.status",
            "Change an invoice's status (issue, pay, void, mark uncollectible, delete a draft)",
        )
        .access(Access::PlatformAdmin)
        .resource(RESOURCE)
        .request::<StatusChange>()
        .response::<Invoice>(),
        change_status,
    )
    .add(
        Endpoint::delete(ITEM, "billing.invoices.delete", "Delete a draft invoice")
            .access(Access::PlatformAdmin)
            .resource(RESOURCE),
        delete_invoice,
    )
    .add(
        Endpoint::get(
            "/api/billing/tenants/{tenantId}/invoices",
            "billing.invoices.tenant",
            "List one tenant's invoices",
        )
        .access(Access::Read)
        .resource(RESOURCE)
        .query::<InvoiceListQuery>()
        .response::<Page<InvoiceSummary>>(),
        list_tenant,
    )
}

fn filter(q: &InvoiceListQuery, tenant_id: Option<String>) -> ApiResult<InvoiceFilter> {
    let status = match &q.status {
        Some(s) => Some(
            InvoiceStatus::parse(s)
                .filter(|s| *s != InvoiceStatus::Deleted)
                .ok_or_else(|| {
                    ApiError::invalid("status", "must be draft, open, paid, void or uncollectible")
                })?,
        ),
        None => None,
    };
    if let Some(p) = &q.period {
        parse_month("period", p)?;
    }
    Ok(InvoiceFilter {
        tenant_id,
        status,
        period: q.period.clone(),
    })
}

async fn list_all(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<InvoiceListQuery>,
) -> ApiResult<Json<Page<InvoiceSummary>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let tenant = principal.tenant_filter(q.tenant_id.clone())?;
    Ok(Json(
        list(state.store(), &filter(&q, tenant)?, page, size).await?,
    ))
}

async fn list_tenant(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<InvoiceListQuery>,
) -> ApiResult<Json<Page<InvoiceSummary>>> {
    // The guard already answered 404 to a tenant role naming another tenant.
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    crate::tenants::ensure_exists(state.store(), &tenant_id).await?;
    Ok(Json(
        list(state.store(), &filter(&q, Some(tenant_id))?, page, size).await?,
    ))
}

async fn generate_invoice(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<GenerateRequest>,
) -> ApiResult<Response> {
    let (invoice, outcome) = generate::generate(state.store(), &req).await?;
    let (status, word) = match outcome {
        Outcome::Created => (StatusCode::CREATED, "created"),
        Outcome::Recomputed => (StatusCode::OK, "recomputed"),
        Outcome::Unchanged => (StatusCode::OK, "unchanged"),
    };
    let s = &invoice.summary;
    let target = AuditTarget::new(&s.id, Some(&s.tenant_id)).with_details(json!({
        "outcome": word, "period_start": s.period_start, "period_end": s.period_end,
        "total_minor": s.total_minor, "currency": s.currency,
    }));
    Ok(target.attach((status, Json(invoice))))
}

async fn get_invoice(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<InvoiceGetQuery>,
) -> ApiResult<Response> {
    let as_html = match q.format.as_deref() {
        Some("html") => true,
        Some("json") => false,
        Some(_) => return Err(ApiError::invalid("format", "must be json or html")),
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html")),
    };
    let invoice = super::get(state.store(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(RESOURCE, &id))?;
    principal.check_tenant(Some(&invoice.summary.tenant_id), RESOURCE, &id)?;
    if !as_html {
        return Ok(Json(invoice).into_response());
    }
    let tenant = resource::load::<Tenant>(state.store(), &invoice.summary.tenant_id).await?;
    let page = html::render(&invoice, tenant.as_ref().map(|t| t.value.name.as_str()));
    Ok((
        [
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(page),
    )
        .into_response())
}

async fn change_status(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<StatusChange>,
) -> ApiResult<Response> {
    let (invoice, from) = lifecycle::change(state.store(), &id, &req).await?;
    let s = &invoice.summary;
    let target = AuditTarget::new(&s.id, Some(&s.tenant_id)).with_details(json!({
        "from": from.as_str(), "to": s.status.as_str(), "number": s.number,
        "content_hash": s.content_hash, "note": req.note.is_some(),
    }));
    Ok(target.attach(Json(invoice)))
}

async fn delete_invoice(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let req = StatusChange {
        status: InvoiceStatus::Deleted.as_str().to_owned(),
        note: None,
    };
    let (invoice, _) = lifecycle::change(state.store(), &id, &req).await?;
    let target = AuditTarget::new(&id, Some(&invoice.summary.tenant_id))
        .with_details(json!({ "from": "draft", "to": "deleted" }));
    Ok(target.attach(StatusCode::NO_CONTENT))
}
