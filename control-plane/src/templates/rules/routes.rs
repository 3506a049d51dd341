//! `/api/validation-rules` (API §4.4): list (filtered, paginated), create, get, replace and
//! delete. Declared here rather than through `resource::crud_routes` because platform rules
//! are readable by tenant roles (a shared library) while only platform admins change them.
//! Every mutation is audited by the API guard with the rule's id and owner.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::resource::{self as rules, RuleInput, RuleKind, ValidationRule};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Resource};
use crate::state::AppState;
use crate::store::{self, Tx};
use crate::templates::record::Severity;
use crate::templates::Template;

const PATH: &str = "/api/validation-rules";
const ITEM: &str = "/api/validation-rules/{id}";

/// Whose rules a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleScope {
    /// Platform rules only.
    Platform,
    /// Tenant rules only.
    Tenant,
}

/// Query of `GET /api/validation-rules`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationRuleQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// Platform rules plus this tenant's (platform-wide callers; tenant callers always get
    /// their own, and naming another tenant is a 404).
    pub tenant_id: Option<String>,
    pub scope: Option<RuleScope>,
    pub kind: Option<RuleKind>,
    pub severity: Option<Severity>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
}

impl ValidationRuleQuery {
    fn matches(&self, rule: &ValidationRule) -> bool {
        let def = &rule.definition;
        let kind = self.kind.and_then(|k| serde_json::to_value(k).ok());
        self.scope
            .is_none_or(|s| (s == RuleScope::Platform) == rule.tenant_id.is_none())
            && kind.is_none_or(|k| k.as_str() == Some(def.check.kind()))
            && self.severity.is_none_or(|s| s == def.severity)
            && self
                .q
                .as_ref()
                .is_none_or(|q| def.name.to_lowercase().contains(&q.to_lowercase()))
    }
}

/// Registers the five endpoints.
pub fn routes(api: ApiBuilder) -> ApiBuilder {
    let kind = ValidationRule::KIND;
    api.add(
        Endpoint::get(
            PATH,
            "validation_rules.list",
            "List validation rules: platform rules and the caller's tenant's",
        )
        .access(Access::Read)
        .resource(kind)
        .query::<ValidationRuleQuery>()
        .response::<Page<ValidationRule>>(),
        list,
    )
    .add(
        Endpoint::post(
            PATH,
            "validation_rules.create",
            "Create a validation rule (platform rules: platform admins only)",
        )
        .access(Access::TenantWrite)
        .resource(kind)
        .request::<RuleInput>()
        .response::<ValidationRule>()
        .status(201),
        create,
    )
    .add(
        Endpoint::get(ITEM, "validation_rules.get", "Get a validation rule")
            .access(Access::Read)
            .resource(kind)
            .response::<ValidationRule>(),
        get,
    )
    .add(
        Endpoint::put(
            ITEM,
            "validation_rules.update",
            "Replace a validation rule; published template versions keep the definition they froze",
        )
        .access(Access::TenantWrite)
        .resource(kind)
        .request::<RuleInput>()
        .response::<ValidationRule>(),
        update,
    )
    .add(
        Endpoint::delete(
            ITEM,
            "validation_rules.delete",
            "Delete a validation rule no template draft attaches (409 otherwise)",
        )
        .access(Access::TenantWrite)
        .resource(kind),
        delete,
    )
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ValidationRuleQuery>,
) -> ApiResult<Json<Page<ValidationRule>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let matching: Vec<ValidationRule> =
        rules::visible(state.store(), &principal, q.tenant_id.clone())
            .await?
            .into_iter()
            .filter(|r| q.matches(r))
            .collect();
    let total = matching.len() as u64;
    let skip = usize::try_from(u64::from(page - 1) * u64::from(size)).unwrap_or(usize::MAX);
    let items = matching
        .into_iter()
        .skip(skip)
        .take(size as usize)
        .collect();
    Ok(Json(Page {
        items,
        total,
        page,
        page_size: size,
    }))
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(input): ApiJson<RuleInput>,
) -> ApiResult<Response> {
    let tenant_id = match (principal.tenant_scope(), input.tenant_id.clone()) {
        (None, None) => None,
        (_, requested) => Some(resource::owning_tenant(&principal, requested)?),
    };
    match &tenant_id {
        Some(t) => {
            rules::findable(t).map_err(|_| ApiError::not_found("tenant", t))?;
            crate::tenants::ensure_exists(state.store(), t).await?;
        }
        None => principal.require_platform_admin()?,
    }
    let (description, definition) = input.definition()?;
    let mut rule = ValidationRule {
        id: store::new_id(ValidationRule::ID_PREFIX),
        tenant_id,
        description,
        definition,
        created_at: String::new(),
        updated_at: String::new(),
    };
    let mut tx = state.store().begin().await?;
    resource::insert(&mut tx, &mut rule).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&rule.id, rule.tenant_id.as_deref());
    Ok(target.attach((StatusCode::CREATED, Json(rule))))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(ValidationRule::KIND, id)
}

async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ValidationRule>> {
    rules::findable(&id)?;
    let rule = resource::load::<ValidationRule>(state.store(), &id)
        .await?
        .map(|s| s.value)
        .filter(|r| rules::sees(&principal, r))
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(rule))
}

async fn update(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<RuleInput>,
) -> ApiResult<Response> {
    rules::findable(&id)?;
    let mut tx = state.store().begin().await?;
    let mut stored = resource::load_tx::<ValidationRule>(&mut tx, &id)
        .await?
        .filter(|s| rules::sees(&principal, &s.value))
        .ok_or_else(|| not_found(&id))?;
    rules::may_change(&principal, &stored.value)?;
    if input.tenant_id.is_some() && input.tenant_id != stored.value.tenant_id {
        return Err(ApiError::invalid(
            "tenant_id",
            "a rule cannot move to another owner; omit it or repeat the rule's own",
        ));
    }
    let (description, definition) = input.definition()?;
    stored.value.description = description;
    stored.value.definition = definition;
    resource::replace(&mut tx, &mut stored).await?;
    tx.commit().await?;
    let rule = stored.value;
    let target = AuditTarget::new(&id, rule.tenant_id.as_deref());
    Ok(target.attach(Json(rule)))
}

async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    rules::findable(&id)?;
    let mut tx = state.store().begin().await?;
    let stored = resource::load_tx::<ValidationRule>(&mut tx, &id)
        .await?
        .filter(|s| rules::sees(&principal, &s.value))
        .ok_or_else(|| not_found(&id))?;
    rules::may_change(&principal, &stored.value)?;
    if let Some(template) = attached_by_draft(&mut tx, &state, &stored.value).await? {
        return Err(ApiError::conflict(
            "rule_in_use",
            format!("the draft of template {template} attaches this rule; detach it first (published versions keep their own copy)"),
        ));
    }
    resource::remove(&mut tx, &stored).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&id, stored.value.tenant_id.as_deref());
    Ok(target.attach(StatusCode::NO_CONTENT))
}

/// A template whose draft attaches the rule, if any. Published versions do not count: they
/// froze their own copy of the definition.
async fn attached_by_draft(
    tx: &mut Tx,
    state: &AppState,
    rule: &ValidationRule,
) -> ApiResult<Option<String>> {
    let templates: Vec<Template> = match &rule.tenant_id {
        Some(t) => resource::load_for_tenant_tx::<Template>(tx, t, None)
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect(),
        None => resource::load_all::<Template>(state.store()).await?,
    };
    Ok(templates.into_iter().find_map(|t| {
        let draft = t.draft.as_ref()?;
        draft
            .walk()
            .iter()
            .any(|(item, _)| item.rules.contains(&rule.id))
            .then(|| t.id.clone())
    }))
}
