//! Platform templates (tenant `None`) and copies of them.
//!
//! Platform admins write platform templates with the ordinary template endpoints (leaving
//! `tenant_id` out). Once one has a published version, every role may read it: `GET
//! /api/platform-templates` lists them, and the template's own read endpoints answer (tenant
//! roles changing one get 403). A tenant uses one by copying it: `POST
//! /api/templates/{id}/copy` makes a new template owned by the caller's tenant whose draft is
//! the source's latest active version (or the `version` named), with `copied_from` recording
//! the template, version and content hash it came from. The copy is independent: later
//! versions of the source change nothing in it. `GET /api/tenants/{tenantId}/templates`
//! lists only the tenant's own templates; copies link to their source through `copied_from`.
//!
//! Copy is a separate endpoint rather than a `copy_of` field on create: it needs the source's
//! published content (a read of another resource), is audited as its own action with the
//! source in the details, and any readable template can be copied, not only platform ones.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::lifecycle;
use super::resource::{CopiedFrom, Template, TemplateCreate, TemplateStatus};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Crud, Resource};
use crate::state::AppState;
use crate::store;
use crate::tenants;

/// Body of `POST /api/templates/{id}/copy` (`{}` for all defaults).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateCopy {
    /// Owner of the copy: tenant roles get their own tenant; platform admins name one, or
    /// leave it out for a platform copy.
    pub tenant_id: Option<String>,
    /// Name of the copy; the source's name when left out.
    pub name: Option<String>,
    /// Description of the copy; the source's when left out.
    pub description: Option<String>,
    /// The published version to copy (it must be active); the latest active one by default.
    pub version: Option<i64>,
}

/// Query of `GET /api/platform-templates`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformTemplateQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// Only templates in this status (`draft`, `active` or `retired`).
    pub status: Option<TemplateStatus>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::post(
            "/api/templates/{id}/copy",
            "templates.copy",
            "Copy a readable template (usually a platform template) into a new draft template \
             owned by the caller's tenant, from its latest active version",
        )
        .access(Access::TenantWrite)
        .resource(Template::KIND)
        .request::<TemplateCopy>()
        .response::<Template>()
        .status(201),
        copy,
    )
    .add(
        Endpoint::get(
            "/api/platform-templates",
            "templates.platform_list",
            "List platform templates (tenant roles see the published ones, to copy)",
        )
        .access(Access::Read)
        .resource(Template::KIND)
        .query::<PlatformTemplateQuery>()
        .response::<Page<Template>>(),
        list_platform,
    )
}

async fn copy(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<TemplateCopy>,
) -> ApiResult<Response> {
    let source = resource::load::<Template>(state.store(), &id).await?;
    let source = resource::readable(&principal, source, &id)?.value;
    let version = {
        let mut conn = state.store().reader().acquire().await?;
        lifecycle::record_version(&mut conn, &source, req.version, false).await?
    };
    let input = TemplateCreate {
        tenant_id: req.tenant_id,
        name: req.name.unwrap_or_else(|| source.name.clone()),
        description: req.description.or_else(|| source.description.clone()),
        content: version.content,
    };
    let mut copy = Template::build(store::new_id(Template::ID_PREFIX), input, &principal)?;
    match copy.tenant_id.clone() {
        Some(tenant) => {
            principal.check_tenant(Some(&tenant), "tenant", &tenant)?;
            tenants::ensure_exists(state.store(), &tenant).await?;
        }
        None => principal.require_platform_admin()?,
    }
    copy.copied_from = Some(CopiedFrom {
        template_id: source.id.clone(),
        version: version.version,
        content_sha256: version.content_sha256.clone(),
    });
    let mut tx = state.store().begin().await?;
    resource::insert(&mut tx, &mut copy).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&copy.id, copy.tenant_id.as_deref()).with_details(json!({
        "source_template": source.id,
        "source_version": version.version,
        "content_sha256": version.content_sha256,
    }));
    Ok(target.attach((StatusCode::CREATED, Json(copy))))
}

/// Every platform template, oldest first. They are a small curated set, so they are loaded
/// whole and filtered here.
async fn platform_templates(state: &AppState) -> ApiResult<Vec<Template>> {
    let bodies: Vec<String> = sqlx::query_scalar(
        "SELECT body FROM resources WHERE kind = $1 AND tenant_id IS NULL ORDER BY created_at, id",
    )
    .bind(Template::KIND)
    .fetch_all(&mut *state.store().reader().acquire().await?)
    .await?;
    bodies
        .iter()
        .map(|b| {
            serde_json::from_str(b)
                .map_err(|e| ApiError::internal(format!("stored platform template: {e}")))
        })
        .collect()
}

async fn list_platform(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<PlatformTemplateQuery>,
) -> ApiResult<Json<Page<Template>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let needle = q.q.as_deref().map(str::to_lowercase);
    let tenant_role = principal.tenant_scope().is_some();
    let matching: Vec<Template> = platform_templates(&state)
        .await?
        .into_iter()
        .filter(|t| !tenant_role || t.shared())
        .filter(|t| q.status.is_none_or(|s| s == t.status))
        .filter(|t| {
            needle
                .as_deref()
                .is_none_or(|n| t.name.to_lowercase().contains(n))
        })
        .collect();
    let total = matching.len() as u64;
    let skip = (page as usize - 1).saturating_mul(size as usize);
    Ok(Json(Page {
        items: matching
            .into_iter()
            .skip(skip)
            .take(size as usize)
            .collect(),
        total,
        page,
        page_size: size,
    }))
}
