//! `GET /api/audit-logs`, `GET /api/audit-logs/{tenantId}`, `POST /api/audit-logs/export`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::chain::AuditEntry;
use super::query::{self, AuditFilter};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::ApiResult;
use crate::state::AppState;

/// Most entries one export returns; narrow the time range for more.
pub const EXPORT_LIMIT: u32 = 100_000;

/// Query of the audit list endpoints.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditListQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: Option<String>,
    pub tenant_id: Option<String>,
}

impl AuditListQuery {
    fn split(self) -> (PageQuery, AuditFilter) {
        (
            PageQuery {
                page: self.page,
                page_size: self.page_size,
            },
            AuditFilter {
                from: self.from,
                to: self.to,
                actor: self.actor,
                action: self.action,
                resource_type: self.resource_type,
                resource_id: self.resource_id,
                outcome: self.outcome,
                tenant_id: self.tenant_id,
            },
        )
    }
}

/// Export format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One JSON object per line (`application/x-ndjson`).
    Jsonl,
    /// Comma-separated values with a header row (`text/csv`).
    Csv,
}

/// Body of `POST /api/audit-logs/export`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub format: ExportFormat,
    #[serde(default)]
    pub filter: AuditFilter,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/audit-logs",
            "audit.list",
            "List audit entries (newest first)",
        )
        .access(Access::AuditRead)
        .resource("audit_log")
        .query::<AuditListQuery>()
        .response::<Page<AuditEntry>>(),
        list,
    )
    .add(
        Endpoint::get(
            "/api/audit-logs/{tenantId}",
            "audit.list_tenant",
            "List one tenant's audit entries",
        )
        .access(Access::AuditRead)
        .resource("audit_log")
        .query::<AuditListQuery>()
        .response::<Page<AuditEntry>>(),
        list_tenant,
    )
    .add(
        Endpoint::post(
            "/api/audit-logs/export",
            "audit.export",
            "Export audit entries as JSON Lines or CSV",
        )
        .access(Access::AuditRead)
        .resource("audit_log")
        .request::<ExportRequest>()
        .produces("application/x-ndjson, text/csv"),
        export,
    )
}

/// Tenant-scoped callers are confined to their tenant whatever filter they send.
fn scoped(principal: &Principal, mut filter: AuditFilter) -> ApiResult<AuditFilter> {
    filter.tenant_id = principal.tenant_filter(filter.tenant_id.take())?;
    Ok(filter)
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<AuditListQuery>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let (paging, filter) = q.split();
    let (page, size) = paging.resolve()?;
    let filter = scoped(&principal, filter)?;
    let (items, total) = query::page(state.store(), &filter, page, size).await?;
    Ok(Json(Page {
        items,
        total,
        page,
        page_size: size,
    }))
}

async fn list_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AuditListQuery>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    principal.check_tenant(Some(&tenant_id), "tenant", &tenant_id)?;
    crate::tenants::ensure_exists(state.store(), &tenant_id).await?;
    let (paging, mut filter) = q.split();
    let (page, size) = paging.resolve()?;
    filter.tenant_id = Some(tenant_id);
    let (items, total) = query::page(state.store(), &filter, page, size).await?;
    Ok(Json(Page {
        items,
        total,
        page,
        page_size: size,
    }))
}

async fn export(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(req): ApiJson<ExportRequest>,
) -> ApiResult<Response> {
    let filter = scoped(&principal, req.filter)?;
    let entries = query::all(state.store(), &filter, EXPORT_LIMIT).await?;
    let count = entries.len();
    let (content_type, body) = match req.format {
        ExportFormat::Jsonl => ("application/x-ndjson", to_jsonl(&entries)),
        ExportFormat::Csv => ("text/csv; charset=utf-8", to_csv(&entries)),
    };
    let response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    Ok(crate::api::AuditTarget {
        resource_id: None,
        tenant_id: filter.tenant_id.clone(),
        details: Some(serde_json::json!({ "format": req.format, "entries": count })),
    }
    .attach(response))
}

fn to_jsonl(entries: &[AuditEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        if let Ok(line) = serde_json::to_string(e) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

const CSV_HEADER: &str = "seq,id,recorded_at,actor,role,tenant_id,action,resource_type,resource_id,outcome,status_code,request_id,source_ip,details,prev_hash,hash";

fn to_csv(entries: &[AuditEntry]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for e in entries {
        let fields = [
            e.seq.to_string(),
            e.id.clone(),
            e.recorded_at.clone(),
            e.actor.clone(),
            e.role.clone().unwrap_or_default(),
            e.tenant_id.clone().unwrap_or_default(),
            e.action.clone(),
            e.resource_type.clone().unwrap_or_default(),
            e.resource_id.clone().unwrap_or_default(),
            e.outcome.clone(),
            e.status_code.to_string(),
            e.request_id.clone().unwrap_or_default(),
            e.source_ip.clone().unwrap_or_default(),
            e.details.clone().unwrap_or_default(),
            e.prev_hash.clone(),
            e.hash.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// RFC 4180 quoting; a leading formula character is neutralized so spreadsheets do not run it.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralized() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
    }
}
