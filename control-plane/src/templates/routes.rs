//! Routes of API §4.1–§4.2: template CRUD from the generic resource layer, the per-tenant
//! list, version history, create-version, publish, and record validation (§4.4).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;

use schemars::JsonSchema;
use serde::Deserialize;

use super::record::{self, RecordData, ValidationReport};
use super::resource::{no_draft, Template, TemplateStatus};
use super::structure;
use super::versions::{self, TemplateVersion, VersionSummary};
use super::{copy, elements, lifecycle, sections};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::Page;
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, crud_routes, ListQuery, Resource, Scope};
use crate::state::AppState;
use crate::store;
use crate::tenants;

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    let api = elements::routes(api);
    let api = sections::routes(api);
    let api = copy::routes(api);
    let api = lifecycle::routes(api);
    let api = super::fhir::routes(api);
    let api = super::rules::routes(api);
    let api = crud_routes::<Template>(api)
        .add(
            Endpoint::get(
                "/api/tenants/{tenantId}/templates",
                "templates.list_tenant",
                "List one tenant's own templates (copies name their source in copied_from; \
                 platform templates to copy are at /api/platform-templates)",
            )
            .resource(Template::KIND)
            .query::<ListQuery>()
            .response::<Page<Template>>(),
            list_tenant,
        )
        .add(
            Endpoint::get(
                "/api/templates/{id}/versions",
                "templates.versions",
                "List a template's published versions, oldest first",
            )
            .resource(Template::KIND)
            .response::<Vec<VersionSummary>>(),
            list_versions,
        )
        .add(
            Endpoint::post(
                "/api/templates/{id}/versions",
                "templates.create_version",
                "Start a new draft from the latest published content (409 while a draft exists)",
            )
            .access(Access::TenantWrite)
            .resource(Template::KIND)
            .response::<Template>()
            .status(201),
            create_version,
        )
        .add(
            Endpoint::get(
                "/api/templates/{id}/versions/{version}",
                "templates.version",
                "Get the exact content of one published version",
            )
            .resource(Template::KIND)
            .response::<TemplateVersion>(),
            get_version,
        );
    api.add(
        Endpoint::post(
            "/api/templates/{id}/publish",
            "templates.publish",
            "Check the draft, freeze it as the next version and make that version current",
        )
        .access(Access::TenantWrite)
        .resource(Template::KIND)
        .response::<TemplateVersion>()
        .status(201),
        publish,
    )
    .add(
        Endpoint::post(
            "/api/templates/{id}/validate",
            "templates.validate",
            "Check record data against a published version (the current one by default)",
        )
        .access(Access::Read)
        .resource(Template::KIND)
        .query::<ValidateQuery>()
        .request::<RecordData>()
        .response::<ValidationReport>()
        // Changes nothing, and the body is patient data that must stay out of the audit log.
        .unaudited(),
        validate_record,
    )
}

/// Query of the validate endpoint.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateQuery {
    /// The version the record is pinned to; the highest active version when left out.
    pub version: Option<i64>,
    /// The record was captured earlier on `version` (re-checking, displaying, amending it):
    /// a retired version still checks it. A new record (the default) needs an active version.
    #[serde(default)]
    pub existing: bool,
}

async fn validate_record(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ValidateQuery>,
    headers: axum::http::HeaderMap,
    ApiJson(record): ApiJson<RecordData>,
) -> ApiResult<Json<ValidationReport>> {
    let template = visible(&state, &principal, &id).await?;
    if record.items.len() > record::MAX_RECORD_ITEMS {
        return Err(ApiError::invalid(
            "items",
            format!("at most {} items", record::MAX_RECORD_ITEMS),
        ));
    }
    let mut conn = state.store().reader().acquire().await?;
    let version = lifecycle::record_version(&mut conn, &template, q.version, q.existing).await?;
    let language = super::rules::Language::from_headers(&headers);
    Ok(Json(record::report(&version, &record, language)))
}

async fn list_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(mut q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Template>>> {
    if q.tenant_id.as_deref().is_some_and(|t| t != tenant_id) {
        return Err(ApiError::invalid(
            "tenant_id",
            "must be omitted or equal the tenant of the path",
        ));
    }
    principal.check_tenant(Some(&tenant_id), "tenant", &tenant_id)?;
    tenants::ensure_exists(state.store(), &tenant_id).await?;
    q.tenant_id = Some(tenant_id);
    let (page, size) = q.paging()?;
    let filter = q.filter(&principal, Scope::Tenant)?;
    Ok(Json(
        resource::list::<Template>(state.store(), &filter, page, size).await?,
    ))
}

/// The template if the caller may read it (another tenant's is 404; a published platform
/// template is readable by all).
async fn visible(state: &AppState, principal: &Principal, id: &str) -> ApiResult<Template> {
    let stored = resource::load::<Template>(state.store(), id).await?;
    Ok(resource::readable(principal, stored, id)?.value)
}

async fn list_versions(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<VersionSummary>>> {
    visible(&state, &principal, &id).await?;
    let mut conn = state.store().reader().acquire().await?;
    Ok(Json(versions::list(&mut conn, &id).await?))
}

async fn get_version(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, version)): ApiPath<(String, i64)>,
) -> ApiResult<Json<TemplateVersion>> {
    visible(&state, &principal, &id).await?;
    let mut conn = state.store().reader().acquire().await?;
    versions::get(&mut conn, &id, version)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("template_version", format!("{id} v{version}")))
}

async fn create_version(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let template = resource::retrying(Template::LABEL, || async {
        let mut tx = state.store().begin().await?;
        let loaded = resource::load_tx::<Template>(&mut tx, &id).await?;
        let mut stored = resource::visible(&principal, loaded, &id)?;
        if stored.value.draft.is_some() {
            return Err(ApiError::conflict(
                "draft_exists",
                "the template already has a draft; edit or publish it",
            ));
        }
        let latest = versions::latest(&mut tx, &id).await?.ok_or_else(no_draft)?;
        let published = versions::get(&mut tx, &id, latest)
            .await?
            .ok_or_else(|| ApiError::internal(format!("template {id} v{latest} vanished")))?;
        stored.value.draft = Some(published.content);
        resource::replace(&mut tx, &mut stored).await?;
        tx.commit().await?;
        Ok(stored.value)
    })
    .await?;
    let target = AuditTarget::new(&id, template.tenant_id());
    Ok(target.attach((StatusCode::CREATED, Json(template))))
}

/// Freezes the draft as version MAX+1. Two publishes racing for one number collide on the
/// primary key (or on the template's revision) and the loser retries with fresh state, so
/// numbers are unique and consecutive.
async fn publish(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let version = resource::retrying(Template::LABEL, || async {
        let mut tx = state.store().begin().await?;
        let loaded = resource::load_tx::<Template>(&mut tx, &id).await?;
        let mut stored = resource::visible(&principal, loaded, &id)?;
        let mut content = stored.value.draft.take().ok_or_else(|| {
            ApiError::conflict("no_draft", "the template has no draft to publish")
        })?;
        structure::check(&content)?;
        super::rules::freeze(&mut tx, &mut content, stored.value.tenant_id.as_deref()).await?;
        let number = versions::latest(&mut tx, &id).await?.unwrap_or(0) + 1;
        let (_, sha) = versions::canonical(&content)?;
        let version = TemplateVersion {
            template_id: id.clone(),
            version: number,
            status: TemplateStatus::Active.as_str().to_owned(),
            content_sha256: sha,
            published_at: store::now(),
            content,
        };
        match versions::insert(&mut tx, &version).await {
            Ok(()) => {}
            Err(e) if store::is_unique_violation(&e) => {
                return Err(ApiError::conflict("concurrent_modification", "retry"))
            }
            Err(e) => return Err(e.into()),
        }
        stored.value.current_version = Some(number);
        stored.value.status = TemplateStatus::Active;
        resource::replace(&mut tx, &mut stored).await?;
        tx.commit().await?;
        Ok((version, stored.value.tenant_id))
    })
    .await?;
    let (version, tenant) = version;
    let target = AuditTarget::new(&id, tenant.as_deref()).with_details(
        serde_json::json!({ "version": version.version, "content_sha256": version.content_sha256 }),
    );
    Ok(target.attach((StatusCode::CREATED, Json(version))))
}
