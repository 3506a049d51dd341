//! `GET /api/templates/{id}/fhir` and `POST /api/templates/import/fhir`.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use super::{canonical, export, import, FHIR_JSON};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Crud, Resource};
use crate::state::AppState;
use crate::store;
use crate::templates::versions;
use crate::templates::{Template, TemplateCreate};
use crate::tenants;

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/templates/{id}/fhir",
            "templates.export_fhir",
            "Export a template as a FHIR R4 Questionnaire in canonical JSON (the latest \
             published version; ?version=N for another, ?draft=true for the draft; 404 when there \
             is none)",
        )
        .resource(Template::KIND)
        .query::<ExportQuery>()
        .produces(FHIR_JSON),
        export_fhir,
    )
    .add(
        Endpoint::post(
            "/api/templates/import/fhir",
            "templates.import_fhir",
            "Create a template draft from a FHIR R4 Questionnaire (422 naming the path of \
             anything a template cannot keep)",
        )
        .access(Access::TenantWrite)
        .resource(Template::KIND)
        .query::<ImportQuery>()
        .request::<QuestionnaireBody>()
        .response::<Template>()
        .status(201),
        import_fhir,
    )
}

/// Query of the export.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// A published version; the latest published one when left out.
    pub version: Option<i64>,
    /// Export the editable draft instead of a published version.
    #[serde(default)]
    pub draft: bool,
}

/// Query of the import.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Owner of the new template: tenant roles get their own tenant; a platform admin names
    /// one, or leaves it out for a platform template.
    pub tenant_id: Option<String>,
}

/// The request body: an R4 Questionnaire resource (`application/fhir+json` or
/// `application/json`).
pub struct QuestionnaireBody;

impl JsonSchema for QuestionnaireBody {
    fn schema_name() -> Cow<'static, str> {
        "FhirQuestionnaire".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "A FHIR R4 Questionnaire (resourceType \"Questionnaire\")",
        })
    }
}

async fn export_fhir(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let stored = resource::load::<Template>(state.store(), &id).await?;
    let template = resource::readable(&principal, stored, &id)?.value;
    let meta = |status, version| export::Meta {
        template_id: &template.id,
        title: &template.name,
        description: template.description.as_deref(),
        status,
        version,
        identity: template.fhir.as_ref(),
    };
    let doc = if q.draft {
        if q.version.is_some() {
            return Err(ApiError::invalid(
                "version",
                "leave out version with draft=true",
            ));
        }
        // A GET that finds nothing to export is a 404 (the template's state is not in conflict
        // with a read).
        let draft = template
            .draft
            .as_ref()
            .ok_or_else(|| ApiError::not_found("template_draft", &id))?;
        export::questionnaire(&meta("draft", None), draft)?
    } else {
        let number = q
            .version
            .or(template.current_version)
            .ok_or_else(|| ApiError::not_found("published_template_version", &id))?;
        let mut conn = state.store().reader().acquire().await?;
        let version = versions::get(&mut conn, &id, number)
            .await?
            .ok_or_else(|| ApiError::not_found("template_version", format!("{id} v{number}")))?;
        export::questionnaire(&meta(&version.status, Some(number)), &version.content)?
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, FHIR_JSON)],
        canonical::to_string(&doc),
    )
        .into_response())
}

async fn import_fhir(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ImportQuery>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Response> {
    let imported = import::questionnaire(&body)?;
    let input = TemplateCreate {
        tenant_id: q.tenant_id,
        name: imported.name,
        description: imported.description,
        content: imported.content,
    };
    let mut template = Template::build(store::new_id(Template::ID_PREFIX), input, &principal)?;
    template.fhir = Some(imported.identity);
    match template.tenant_id.clone() {
        Some(tenant) => {
            principal.check_tenant(Some(&tenant), "tenant", &tenant)?;
            tenants::ensure_exists(state.store(), &tenant).await?;
        }
        // No tenant: a platform template, which only platform admins create.
        None => principal.require_platform_admin()?,
    }
    let mut tx = state.store().begin().await?;
    template.check_references(&mut tx).await?;
    resource::insert(&mut tx, &mut template).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&template.id, template.tenant_id.as_deref());
    Ok(target.attach((StatusCode::CREATED, Json(template.view()))))
}
