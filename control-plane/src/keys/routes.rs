//! Routes of API §3.2, plus `GET /api/api-keys/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;

use super::model::{ApiKey, ApiKeyCreate, ApiKeyIssued, ApiKeyView, KeyStatus, RotateKey};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::Page;
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, ListQuery, Resource, Scope};
use crate::state::AppState;
use crate::store::{self, Tx};
use crate::tenants::{self, Tenant, TenantPlan};

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get("/api/api-keys", "api_keys.list", "List API keys")
            .resource(ApiKey::KIND)
            .query::<ListQuery>()
            .response::<Page<ApiKeyView>>(),
        list,
    )
    .add(
        Endpoint::post(
            "/api/api-keys",
            "api_keys.create",
            "Create an API key (the plaintext is in this answer only)",
        )
        .access(Access::TenantWrite)
        .resource(ApiKey::KIND)
        .request::<ApiKeyCreate>()
        .response::<ApiKeyIssued>()
        .status(201),
        create,
    )
    .add(
        Endpoint::get("/api/api-keys/{id}", "api_keys.get", "Get an API key")
            .resource(ApiKey::KIND)
            .response::<ApiKeyView>(),
        get,
    )
    .add(
        Endpoint::delete(
            "/api/api-keys/{id}",
            "api_keys.revoke",
            "Revoke an API key (final; the record stays for history)",
        )
        .access(Access::TenantWrite)
        .resource(ApiKey::KIND),
        revoke,
    )
    .add(
        Endpoint::put(
            "/api/api-keys/{id}/rotate",
            "api_keys.rotate",
            "Issue a new secret; the previous one works for a grace period",
        )
        .access(Access::TenantWrite)
        .resource(ApiKey::KIND)
        .request::<RotateKey>()
        .response::<ApiKeyIssued>(),
        rotate,
    )
    .add(
        Endpoint::get(
            "/api/tenants/{tenantId}/api-keys",
            "api_keys.list_tenant",
            "List one tenant's API keys",
        )
        .resource(ApiKey::KIND)
        .query::<ListQuery>()
        .response::<Page<ApiKeyView>>(),
        list_tenant,
    )
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<ApiKeyView>>> {
    let (page, size) = q.paging()?;
    let filter = q.filter(&principal, Scope::Tenant)?;
    let keys = resource::list::<ApiKey>(state.store(), &filter, page, size).await?;
    Ok(Json(keys.map(|k| k.view())))
}

async fn list_tenant(
    state: State<AppState>,
    principal: Principal,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(mut q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<ApiKeyView>>> {
    if q.tenant_id.as_deref().is_some_and(|t| t != tenant_id) {
        return Err(ApiError::invalid(
            "tenant_id",
            "must be omitted or equal the tenant of the path",
        ));
    }
    tenants::ensure_exists(state.store(), &tenant_id).await?;
    q.tenant_id = Some(tenant_id);
    list(state, principal, ApiQuery(q)).await
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(input): ApiJson<ApiKeyCreate>,
) -> ApiResult<Response> {
    let tenant_id = resource::owning_tenant(&principal, input.tenant_id.clone())?;
    let expires_at = input.validate()?;
    let (mut key, plaintext) = ApiKey::issue(tenant_id.clone(), input, expires_at);
    let mut tx = state.store().begin().await?;
    let tenant = tenants::lock(&mut tx, &tenant_id).await?;
    tenants::refuse_terminated(&tenant, "get new API keys")?;
    check_quota(&mut tx, &tenant).await?;
    // A prefix collision (48 random bits) is a 409 the caller can simply retry.
    resource::insert(&mut tx, &mut key).await?;
    tx.commit().await?;
    let issued = ApiKeyIssued {
        api_key: key.view(),
        key: plaintext,
    };
    Ok(AuditTarget::new(&key.id, Some(&tenant_id)).attach((StatusCode::CREATED, Json(issued))))
}

/// The plan's `max_api_keys` counts keys that still work: active and not expired. The
/// tenant row is locked, so concurrent creations cannot both take the last slot.
async fn check_quota(tx: &mut Tx, tenant: &Tenant) -> ApiResult<()> {
    let Some(plan_id) = &tenant.plan_id else {
        return Ok(());
    };
    let Some(plan) = resource::load_tx::<TenantPlan>(tx, plan_id).await? else {
        return Ok(());
    };
    let Some(max) = plan.value.quotas.max_api_keys else {
        return Ok(());
    };
    let now = store::now();
    let active =
        resource::load_for_tenant_tx::<ApiKey>(tx, &tenant.id, Some(KeyStatus::Active.as_str()))
            .await?
            .iter()
            .filter(|k| !k.value.is_expired(&now))
            .count();
    if u64::try_from(active).unwrap_or(u64::MAX) >= max {
        return Err(ApiError::conflict(
            "key_limit_reached",
            format!("the tenant's plan allows {max} active API keys; revoke one first"),
        ));
    }
    Ok(())
}

async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ApiKeyView>> {
    let key = resource::visible(
        &principal,
        resource::load::<ApiKey>(state.store(), &id).await?,
        &id,
    )?;
    Ok(Json(key.value.view()))
}

async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let key = resource::mutate::<ApiKey, _>(state.store(), &principal, &id, ApiKey::revoke).await?;
    Ok(AuditTarget::new(&id, Some(&key.tenant_id)).attach(StatusCode::NO_CONTENT))
}

async fn rotate(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RotateKey>,
) -> ApiResult<Response> {
    let grace = body.grace()?;
    let mut plaintext = String::new();
    let key = resource::mutate::<ApiKey, _>(state.store(), &principal, &id, |k| {
        plaintext = k.rotate(grace, chrono::Utc::now())?;
        Ok(())
    })
    .await?;
    let details = serde_json::json!({ "grace_period_secs": grace });
    let issued = ApiKeyIssued {
        api_key: key.view(),
        key: plaintext,
    };
    Ok(AuditTarget::new(&id, Some(&key.tenant_id))
        .with_details(details)
        .attach(Json(issued)))
}
