//! `/api/alerts`: list (paginated, filtered), create, get (with live state and history),
//! update and delete. Every role reads (tenant roles their own tenant's rules only; another
//! tenant's rule is a 404); platform admins and tenant admins (own tenant) write. Mutations
//! are audited by the API guard.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::history::{self, AlertEvent, LiveState};
use super::input::AlertRuleInput;
use super::model::{AlertRule, AlertRuleView, Metric};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::Page;
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, ListQuery, Resource, Scope};
use crate::state::AppState;
use crate::store;

const PATH: &str = "/api/alerts";
const ITEM: &str = "/api/alerts/{id}";

/// Query of `GET /api/alerts`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertListQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// Only this tenant's rules (platform-wide callers).
    pub tenant_id: Option<String>,
    /// `enabled` or `disabled`.
    pub status: Option<String>,
    /// Only rules on this metric.
    pub metric: Option<String>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    /// Created at or after this RFC 3339 time.
    pub created_after: Option<String>,
    /// Created before this RFC 3339 time.
    pub created_before: Option<String>,
}

/// A rule in a list: its settings and its live state.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AlertRuleItem {
    #[serde(flatten)]
    pub rule: AlertRuleView,
    #[serde(flatten)]
    pub live: LiveState,
}

/// One rule with its live state and its last 50 transitions (newest first).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AlertRuleDetail {
    #[serde(flatten)]
    pub rule: AlertRuleView,
    #[serde(flatten)]
    pub live: LiveState,
    pub history: Vec<AlertEvent>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    let kind = AlertRule::KIND;
    api.add(
        Endpoint::get(
            PATH,
            "alerts.list",
            "List alert rules with their live state",
        )
        .access(Access::Read)
        .resource(kind)
        .query::<AlertListQuery>()
        .response::<Page<AlertRuleItem>>(),
        list,
    )
    .add(
        Endpoint::post(PATH, "alerts.create", "Create an alert rule")
            .access(Access::TenantWrite)
            .resource(kind)
            .request::<AlertRuleInput>()
            .response::<AlertRuleView>()
            .status(201),
        create,
    )
    .add(
        Endpoint::get(
            ITEM,
            "alerts.get",
            "Get an alert rule, its state and history",
        )
        .access(Access::Read)
        .resource(kind)
        .response::<AlertRuleDetail>(),
        get,
    )
    .add(
        Endpoint::put(ITEM, "alerts.update", "Update an alert rule")
            .access(Access::TenantWrite)
            .resource(kind)
            .request::<AlertRuleInput>()
            .response::<AlertRuleView>(),
        update,
    )
    .add(
        Endpoint::delete(
            ITEM,
            "alerts.delete",
            "Delete an alert rule (its history stays)",
        )
        .access(Access::TenantWrite)
        .resource(kind),
        delete,
    )
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<AlertListQuery>,
) -> ApiResult<Json<Page<AlertRuleItem>>> {
    let generic = ListQuery {
        page: q.page,
        page_size: q.page_size,
        tenant_id: q.tenant_id,
        status: q.status,
        q: q.q,
        created_after: q.created_after,
        created_before: q.created_before,
    };
    let (page, size) = generic.paging()?;
    let mut filter = generic.filter(&principal, Scope::Tenant)?;
    if let Some(m) = &q.metric {
        let metric = Metric::parse(m).ok_or_else(|| ApiError::invalid("metric", "unknown"))?;
        filter.ref_id = Some(metric.as_str().to_owned());
    }
    let rules = resource::list::<AlertRule>(state.store(), &filter, page, size).await?;
    let ids: Vec<String> = rules.items.iter().map(|r| r.id.clone()).collect();
    let mut states = history::states(state.store(), &ids).await?;
    Ok(Json(rules.map(|r| AlertRuleItem {
        live: states.remove(&r.id).unwrap_or_else(LiveState::unknown),
        rule: r.view(),
    })))
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(input): ApiJson<AlertRuleInput>,
) -> ApiResult<Response> {
    let tenant_id = match principal.tenant_scope() {
        Some(_) => Some(resource::owning_tenant(
            &principal,
            input.tenant_id.clone(),
        )?),
        None => input.tenant_id.clone(),
    };
    match &tenant_id {
        Some(t) => {
            principal.check_tenant(Some(t), "tenant", t)?;
            crate::tenants::ensure_exists(state.store(), t).await?;
        }
        // A platform rule watches every tenant's traffic: platform admins only.
        None => principal.require_platform_admin()?,
    }
    let mut rule = input.into_rule(store::new_id(AlertRule::ID_PREFIX), tenant_id, None)?;
    let mut tx = state.store().begin().await?;
    resource::insert(&mut tx, &mut rule).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&rule.id, rule.tenant_id.as_deref());
    Ok(target.attach((StatusCode::CREATED, Json(rule.view()))))
}

async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AlertRuleDetail>> {
    let rule = resource::visible(
        &principal,
        resource::load::<AlertRule>(state.store(), &id).await?,
        &id,
    )?
    .value;
    let live = history::states(state.store(), std::slice::from_ref(&rule.id))
        .await?
        .remove(&rule.id)
        .unwrap_or_else(LiveState::unknown);
    Ok(Json(AlertRuleDetail {
        history: history::recent(state.store(), &rule.id).await?,
        rule: rule.view(),
        live,
    }))
}

async fn update(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<AlertRuleInput>,
) -> ApiResult<Response> {
    let mut tx = state.store().begin().await?;
    let mut stored = resource::visible(
        &principal,
        resource::load_tx::<AlertRule>(&mut tx, &id).await?,
        &id,
    )?;
    if input.tenant_id.is_some() && input.tenant_id != stored.value.tenant_id {
        return Err(ApiError::invalid(
            "tenant_id",
            "an alert rule cannot move to another owner; omit it or repeat the rule's own",
        ));
    }
    let current = &stored.value;
    let mut updated = input.into_rule(id.clone(), current.tenant_id.clone(), Some(current))?;
    updated.created_at = current.created_at.clone();
    stored.value = updated;
    resource::replace(&mut tx, &mut stored).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&id, stored.value.tenant_id.as_deref());
    Ok(target.attach(Json(stored.value.view())))
}

async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let mut tx = state.store().begin().await?;
    let stored = resource::visible(
        &principal,
        resource::load_tx::<AlertRule>(&mut tx, &id).await?,
        &id,
    )?;
    resource::remove(&mut tx, &stored).await?;
    // The live state goes with the rule; its events and deliveries stay (append-only).
    sqlx::query("DELETE FROM alert_states WHERE rule_id = $1")
        .bind(id.clone())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let target = AuditTarget::new(&id, stored.value.tenant_id.as_deref());
    Ok(target.attach(StatusCode::NO_CONTENT))
}
