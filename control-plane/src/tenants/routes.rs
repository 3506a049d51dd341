//! Routes of API §1: CRUD from the generic resource layer plus lifecycle, plan change,
//! configuration and isolation assignment.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use medgate_config::TenantStatus;
use serde::{Deserialize, Serialize};

use super::config::{TenantConfigUpdate, TenantConfigView};
use super::lifecycle::Transition;
use super::{IsolationPolicy, PlanChange, Tenant, TenantPlan};
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::keys;
use crate::resource::{self, crud_routes, Resource};
use crate::state::AppState;
use crate::store::resources;
use crate::validate;

/// Body of `POST /api/tenants/{id}/change-plan`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePlan {
    pub plan_id: String,
    pub reason: Option<String>,
}

/// Body of `PUT /api/tenants/{id}/isolation`; `null` removes the assignment.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignIsolation {
    pub policy_id: Option<String>,
}

/// A tenant's isolation: the assigned policy, if any.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TenantIsolation {
    pub tenant_id: String,
    pub policy: Option<IsolationPolicy>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    let api = crud_routes::<TenantPlan>(crud_routes::<Tenant>(api));
    let api = crud_routes::<IsolationPolicy>(api);
    let lifecycle = |api: ApiBuilder, t: Transition, summary: &str| {
        let handler = move |state: State<AppState>, p: Principal, id: ApiPath<String>| {
            transition(state, p, id, t)
        };
        api.add(
            Endpoint::post(
                format!("/api/tenants/{{id}}/{}", t.name()),
                format!("tenants.{}", t.name()),
                summary,
            )
            .access(Access::PlatformAdmin)
            .resource("tenant")
            .response::<Tenant>(),
            handler,
        )
    };
    let api = lifecycle(
        api,
        Transition::Activate,
        "Activate a tenant (pending or suspended -> active)",
    );
    let api = lifecycle(api, Transition::Suspend, "Suspend an active tenant");
    let api = lifecycle(
        api,
        Transition::Terminate,
        "Terminate a tenant (final; revokes its API keys)",
    );
    api.add(
        Endpoint::post(
            "/api/tenants/{id}/change-plan",
            "tenants.change_plan",
            "Move a tenant to another plan, effective now",
        )
        .access(Access::PlatformAdmin)
        .resource("tenant")
        .request::<ChangePlan>()
        .response::<Tenant>(),
        change_plan,
    )
    .add(
        Endpoint::get(
            "/api/tenants/{id}/config",
            "tenants.get_config",
            "Get a tenant's configuration",
        )
        .resource("tenant_config")
        .response::<TenantConfigView>(),
        get_config,
    )
    .add(
        Endpoint::put(
            "/api/tenants/{id}/config",
            "tenants.update_config",
            "Update a tenant's configuration",
        )
        .access(Access::TenantWrite)
        .resource("tenant_config")
        .request::<TenantConfigUpdate>()
        .response::<TenantConfigView>(),
        update_config,
    )
    .add(
        Endpoint::get(
            "/api/tenants/{id}/isolation",
            "tenants.get_isolation",
            "Get a tenant's isolation policy",
        )
        .resource("tenant_isolation")
        .response::<TenantIsolation>(),
        get_isolation,
    )
    .add(
        Endpoint::put(
            "/api/tenants/{id}/isolation",
            "tenants.set_isolation",
            "Assign an isolation policy to a tenant",
        )
        .access(Access::PlatformAdmin)
        .resource("tenant_isolation")
        .request::<AssignIsolation>()
        .response::<TenantIsolation>(),
        set_isolation,
    )
}

async fn transition(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    t: Transition,
) -> ApiResult<Response> {
    let (from, tenant, revoked_keys) = resource::retrying(Tenant::LABEL, || {
        apply_transition(&state, &principal, &id, t)
    })
    .await?;
    let mut details = serde_json::json!({
        "from": from.as_str(),
        "to": tenant.status.as_str(),
    });
    if t == Transition::Terminate {
        details["revoked_api_keys"] = revoked_keys.into();
    }
    Ok(AuditTarget::new(&id, Some(&id))
        .with_details(details)
        .attach(Json(tenant)))
}

/// One attempt at a transition. Termination revokes every API key of the tenant in the same
/// transaction, so no snapshot ever shows a terminated tenant with a working key. It locks the
/// tenant (no key is created meanwhile) and its keys before anything bumps the version.
async fn apply_transition(
    state: &AppState,
    principal: &Principal,
    id: &str,
    t: Transition,
) -> ApiResult<(TenantStatus, Tenant, u64)> {
    let mut tx = state.store().begin().await?;
    if t == Transition::Terminate && resources::lock(&mut tx, Tenant::KIND, id).await? {
        keys::lock_all(&mut tx, id).await?;
    }
    let mut stored = resource::visible(
        principal,
        resource::load_tx::<Tenant>(&mut tx, id).await?,
        id,
    )?;
    let from = t.apply(&mut stored.value)?;
    resource::replace(&mut tx, &mut stored).await?;
    let revoked = if stored.value.status == TenantStatus::Terminated {
        keys::revoke_all(&mut tx, id).await?
    } else {
        0
    };
    tx.commit().await?;
    Ok((from, stored.value, revoked))
}

async fn change_plan(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ChangePlan>,
) -> ApiResult<Response> {
    if let Some(r) = &body.reason {
        validate::text("reason", r, 1, 500)?;
    }
    let mut tx = state.store().begin().await?;
    let mut stored = resource::visible(
        &principal,
        resource::load_tx::<Tenant>(&mut tx, &id).await?,
        &id,
    )?;
    if resource::load_tx::<TenantPlan>(&mut tx, &body.plan_id)
        .await?
        .is_none()
    {
        return Err(ApiError::invalid(
            "plan_id",
            format!("plan {} does not exist", body.plan_id),
        ));
    }
    let tenant = &mut stored.value;
    if tenant.status == TenantStatus::Terminated {
        return Err(ApiError::conflict(
            "tenant_terminated",
            "a terminated tenant cannot change plan",
        ));
    }
    if tenant.plan_id.as_deref() == Some(body.plan_id.as_str()) {
        return Err(ApiError::conflict(
            "same_plan",
            "the tenant is already on this plan",
        ));
    }
    let change = PlanChange {
        from_plan_id: tenant.plan_id.clone(),
        to_plan_id: body.plan_id.clone(),
        changed_at: crate::store::now(),
        changed_by: principal.subject.clone(),
        reason: body.reason,
    };
    tenant.plan_id = Some(body.plan_id);
    tenant.plan_history.push(change.clone());
    resource::replace(&mut tx, &mut stored).await?;
    tx.commit().await?;
    let details = serde_json::json!({ "from": change.from_plan_id, "to": change.to_plan_id });
    Ok(AuditTarget::new(&id, Some(&id))
        .with_details(details)
        .attach(Json(stored.value)))
}

async fn get_config(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TenantConfigView>> {
    let t = resource::visible(
        &principal,
        resource::load::<Tenant>(state.store(), &id).await?,
        &id,
    )?
    .value;
    Ok(Json(TenantConfigView::new(&t.id, &t.timezone, &t.config)))
}

async fn update_config(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(update): ApiJson<TenantConfigUpdate>,
) -> ApiResult<Response> {
    let tenant = resource::mutate::<Tenant, _>(state.store(), &principal, &id, |tenant| {
        if tenant.status == TenantStatus::Terminated {
            return Err(ApiError::conflict(
                "tenant_terminated",
                "a terminated tenant cannot be changed",
            ));
        }
        if let Some(tz) = &update.timezone {
            validate::timezone("timezone", tz)?;
            tenant.timezone = tz.clone();
        }
        update.clone().apply_to(&mut tenant.config);
        tenant.config.validate()
    })
    .await?;
    let view = TenantConfigView::new(&tenant.id, &tenant.timezone, &tenant.config);
    Ok(AuditTarget::new(&id, Some(&id)).attach(Json(view)))
}

async fn get_isolation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TenantIsolation>> {
    let t = resource::visible(
        &principal,
        resource::load::<Tenant>(state.store(), &id).await?,
        &id,
    )?
    .value;
    let policy = match &t.isolation_policy_id {
        Some(pid) => resource::load::<IsolationPolicy>(state.store(), pid)
            .await?
            .map(|s| s.value),
        None => None,
    };
    Ok(Json(TenantIsolation {
        tenant_id: t.id,
        policy,
    }))
}

async fn set_isolation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AssignIsolation>,
) -> ApiResult<Response> {
    let mut tx = state.store().begin().await?;
    let mut stored = resource::visible(
        &principal,
        resource::load_tx::<Tenant>(&mut tx, &id).await?,
        &id,
    )?;
    let policy = match &body.policy_id {
        Some(pid) => Some(
            resource::load_tx::<IsolationPolicy>(&mut tx, pid)
                .await?
                .ok_or_else(|| {
                    ApiError::invalid(
                        "policy_id",
                        format!("isolation policy {pid} does not exist"),
                    )
                })?
                .value,
        ),
        None => None,
    };
    if stored.value.status == TenantStatus::Terminated {
        return Err(ApiError::conflict(
            "tenant_terminated",
            "a terminated tenant cannot be changed",
        ));
    }
    stored.value.isolation_policy_id = body.policy_id;
    resource::replace(&mut tx, &mut stored).await?;
    tx.commit().await?;
    Ok(
        AuditTarget::new(&id, Some(&id)).attach(Json(TenantIsolation {
            tenant_id: id.clone(),
            policy,
        })),
    )
}
