//! `GET /api/tenants/{tenantId}/models`, `POST` and `GET /api/tenants/{tenantId}/models/{modelId}`.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use super::access::{effective, TenantModelView};
use super::model::{TenantModel, TenantModelInput};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::models::parameters;
use crate::models::Model;
use crate::resource::{self, Resource};
use crate::state::AppState;
use crate::store::{self, resources, Store, Tx};
use crate::tenants::{self, Tenant, TenantPlan};

/// Query of the tenant's model list.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantModelsQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/tenants/{tenantId}/models",
            "tenant_models.list",
            "List the models a tenant can use, with alias and parameter rules in force",
        )
        .resource(TenantModel::KIND)
        .query::<TenantModelsQuery>()
        .response::<Page<TenantModelView>>(),
        list,
    )
    .add(
        Endpoint::post(
            "/api/tenants/{tenantId}/models/{modelId}",
            "tenant_models.configure",
            "Configure a model for a tenant (enable, alias, parameter overrides)",
        )
        .access(Access::TenantWrite)
        .resource(TenantModel::KIND)
        .request::<TenantModelInput>()
        .response::<TenantModelView>(),
        configure,
    )
    .add(
        Endpoint::get(
            "/api/tenants/{tenantId}/models/{modelId}",
            "tenant_models.get",
            "Get a tenant's configuration of a model",
        )
        .resource(TenantModel::KIND)
        .response::<TenantModelView>(),
        get,
    )
}

async fn plan_of(store: &Store, tenant: &Tenant) -> ApiResult<Option<TenantPlan>> {
    Ok(match &tenant.plan_id {
        Some(id) => resource::load::<TenantPlan>(store, id)
            .await?
            .map(|s| s.value),
        None => None,
    })
}

async fn load_model(store: &Store, model_id: &str) -> ApiResult<Model> {
    resource::load::<Model>(store, model_id)
        .await?
        .map(|s| s.value)
        .ok_or_else(|| ApiError::not_found(Model::KIND, model_id))
}

async fn list(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<TenantModelsQuery>,
) -> ApiResult<Json<Page<TenantModelView>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let store = state.store();
    let tenant = tenants::ensure_exists(store, &tenant_id).await?;
    let plan = plan_of(store, &tenant).await?;
    let configs: HashMap<String, TenantModel> =
        resource::load_for_tenant::<TenantModel>(store, &tenant_id)
            .await?
            .into_iter()
            .map(|c| (c.model_id.clone(), c))
            .collect();
    let usable: Vec<TenantModelView> = resource::load_all::<Model>(store)
        .await?
        .iter()
        .map(|m| effective(&tenant_id, plan.as_ref(), m, configs.get(&m.id)))
        .filter(|v| v.available)
        .collect();
    let total = u64::try_from(usable.len()).unwrap_or_default();
    // In u64: a huge page number times the page size overflows u32.
    let skip = usize::try_from(u64::from(page - 1) * u64::from(size)).unwrap_or(usize::MAX);
    let items = usable.into_iter().skip(skip).take(size as usize).collect();
    Ok(Json(Page {
        items,
        total,
        page,
        page_size: size,
    }))
}

async fn get(
    State(state): State<AppState>,
    ApiPath((tenant_id, model_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<TenantModelView>> {
    let store = state.store();
    let tenant = tenants::ensure_exists(store, &tenant_id).await?;
    let model = load_model(store, &model_id).await?;
    let config = resource::load_by_unique::<TenantModel>(
        store,
        &TenantModel::unique_key_of(&tenant_id, &model_id),
    )
    .await?
    .map(|s| s.value);
    let plan = plan_of(store, &tenant).await?;
    Ok(Json(effective(
        &tenant_id,
        plan.as_ref(),
        &model,
        config.as_ref(),
    )))
}

async fn configure(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((tenant_id, model_id)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<TenantModelInput>,
) -> ApiResult<Response> {
    input.validate()?;
    let mut tx = state.store().begin().await?;
    let tenant = tenants::lock(&mut tx, &tenant_id).await?;
    tenants::refuse_terminated(&tenant, "change its model configuration")?;
    let model = resource::load_tx::<Model>(&mut tx, &model_id)
        .await?
        .ok_or_else(|| ApiError::not_found(Model::KIND, &model_id))?
        .value;
    let key = TenantModel::unique_key_of(&tenant_id, &model_id);
    let existing = resource::load_by_unique_tx::<TenantModel>(&mut tx, &key).await?;
    if let Some(alias) = &input.alias {
        check_alias(&mut tx, &tenant_id, &model, alias).await?;
    }
    if !principal.is_platform_admin() {
        check_tenant_admin(&model, existing.as_ref().map(|s| &s.value), &input)?;
    }
    let config = match existing {
        Some(mut stored) => {
            stored.value.set(input);
            resource::replace(&mut tx, &mut stored).await?;
            stored.value
        }
        None => {
            let id = store::new_id(TenantModel::ID_PREFIX);
            let mut config = TenantModel::new(id, &tenant_id, &model_id, input);
            resource::insert(&mut tx, &mut config).await?;
            config
        }
    };
    tx.commit().await?;
    let plan = plan_of(state.store(), &tenant).await?;
    let view = effective(&tenant_id, plan.as_ref(), &model, Some(&config));
    Ok(AuditTarget::new(&config.id, Some(&tenant_id))
        .with_details(serde_json::json!({ "model_id": model_id }))
        .attach(Json(view)))
}

/// An alias is unique within the tenant (the tenant row is locked) and names no other model.
async fn check_alias(tx: &mut Tx, tenant_id: &str, model: &Model, alias: &str) -> ApiResult<()> {
    if alias != model.name
        && resources::get_by_unique_key(tx, Model::KIND, alias)
            .await?
            .is_some()
    {
        return Err(ApiError::conflict(
            "alias_taken",
            format!("{alias:?} is the name of another model"),
        ));
    }
    let taken = resources::by_name(tx, TenantModel::KIND, alias, Some(tenant_id))
        .await?
        .into_iter()
        .any(|row| row.ref_id.as_deref() != Some(model.id.as_str()));
    if taken {
        return Err(ApiError::conflict(
            "alias_taken",
            format!("the tenant already uses {alias:?} for another model"),
        ));
    }
    Ok(())
}

/// What a tenant admin may not do alone: grant itself a restricted model, or loosen the
/// model's parameter rules.
fn check_tenant_admin(
    model: &Model,
    existing: Option<&TenantModel>,
    input: &TenantModelInput,
) -> ApiResult<()> {
    let granted = existing.is_some_and(|c| c.enabled);
    if input.enabled.unwrap_or(true) && !model.available_to_all_tenants && !granted {
        return Err(ApiError::forbidden(
            "this model is not available to all tenants; a platform admin must enable it for the tenant",
        ));
    }
    let kept = existing.map(|c| c.parameters.clone()).unwrap_or_default();
    parameters::check_narrows("parameters", &model.parameters, &input.parameters, &kept)
}
