//! Plain CRUD: the [`Crud`] trait and the five endpoints [`crud_routes`] declares for it.

use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    insert, list, load, load_tx, readable, remove, replace, visible, ListQuery, Resource, Scope,
};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::Page;
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::store::{self, Tx};

/// Plain CRUD behaviour of a resource.
#[async_trait]
pub trait Crud: Resource {
    /// Body of create; `deny_unknown_fields`.
    type Create: DeserializeOwned + JsonSchema + Send + 'static;
    /// Body of update; `deny_unknown_fields`.
    type Update: DeserializeOwned + JsonSchema + Send + 'static;
    /// What the API returns (`Self`, or a redacted form when the resource holds secrets).
    type View: Serialize + JsonSchema + Send + 'static;
    /// Collection path, e.g. `/api/tenant-plans`.
    const PATH: &'static str;
    /// OpenAPI tag and operation prefix, e.g. `tenant_plans`.
    const TAG: &'static str;

    /// Fills omitted fields of a create body whose defaults are platform settings (before
    /// [`Crud::build`]); by default nothing.
    async fn fill_defaults(_input: &mut Self::Create, _state: &AppState) -> ApiResult<()> {
        Ok(())
    }

    /// Builds and validates a new resource.
    fn build(id: String, input: Self::Create, principal: &Principal) -> ApiResult<Self>;

    /// Applies and validates an update.
    fn apply(&mut self, input: Self::Update) -> ApiResult<()>;

    /// The API representation.
    fn view(&self) -> Self::View;

    /// Seals the secrets a create or update body carried, after [`Crud::build`] or
    /// [`Crud::apply`] and before the value is stored; by default nothing.
    fn seal_secrets(&mut self, _state: &AppState) -> ApiResult<()> {
        Ok(())
    }

    /// Checks references to other resources inside the write transaction.
    async fn check_references(&self, _tx: &mut Tx) -> ApiResult<()> {
        Ok(())
    }

    /// Refuses deletion while something depends on the resource (409).
    async fn check_delete(&self, _tx: &mut Tx) -> ApiResult<()> {
        Ok(())
    }

    /// Removes what exists only for this resource, in the deleting transaction (after
    /// `check_delete` allowed it).
    async fn on_delete(&self, _tx: &mut Tx) -> ApiResult<()> {
        Ok(())
    }
}

/// Registers list, create, get, update and delete for `T`.
pub fn crud_routes<T: Crud>(api: ApiBuilder) -> ApiBuilder {
    crud_routes_at::<T>(api, T::PATH, T::TAG)
}

/// The same five endpoints for `T` under another collection path, with operation ids under
/// `tag`: a second address of the same resource (e.g. tenant plans as `/api/billing/plans`).
pub fn crud_routes_at<T: Crud>(api: ApiBuilder, path: &str, tag: &str) -> ApiBuilder {
    let (read, write) = match T::SCOPE {
        Scope::Platform => (Access::Read, Access::PlatformAdmin),
        Scope::Tenant => (Access::Read, Access::TenantWrite),
        Scope::TenantItself => (Access::Read, Access::PlatformAdmin),
    };
    let item = format!("{path}/{{id}}");
    let op = |verb: &str| format!("{tag}.{verb}");
    api.add(
        Endpoint::get(path, op("list"), format!("List {}s", T::LABEL))
            .access(read)
            .resource(T::KIND)
            .query::<ListQuery>()
            .response::<Page<T::View>>(),
        list_handler::<T>,
    )
    .add(
        Endpoint::post(path, op("create"), format!("Create a {}", T::LABEL))
            .access(write)
            .resource(T::KIND)
            .request::<T::Create>()
            .response::<T::View>()
            .status(201),
        create_handler::<T>,
    )
    .add(
        Endpoint::get(&item, op("get"), format!("Get a {}", T::LABEL))
            .access(read)
            .resource(T::KIND)
            .response::<T::View>(),
        get_handler::<T>,
    )
    .add(
        Endpoint::put(&item, op("update"), format!("Update a {}", T::LABEL))
            .access(write)
            .resource(T::KIND)
            .request::<T::Update>()
            .response::<T::View>(),
        update_handler::<T>,
    )
    .add(
        Endpoint::delete(&item, op("delete"), format!("Delete a {}", T::LABEL))
            .access(write)
            .resource(T::KIND),
        delete_handler::<T>,
    )
}

async fn list_handler<T: Crud>(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<T::View>>> {
    let (page, size) = q.paging()?;
    let filter = q.filter(&principal, T::SCOPE)?;
    Ok(Json(
        list::<T>(state.store(), &filter, page, size)
            .await?
            .map(|t| t.view()),
    ))
}

async fn create_handler<T: Crud>(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(mut input): ApiJson<T::Create>,
) -> ApiResult<Response> {
    T::fill_defaults(&mut input, &state).await?;
    let mut value = T::build(store::new_id(T::ID_PREFIX), input, &principal)?;
    value.seal_secrets(&state)?;
    if T::SCOPE == Scope::Tenant {
        match value.tenant_id().map(str::to_owned) {
            Some(tenant) => {
                principal.check_tenant(Some(&tenant), "tenant", &tenant)?;
                crate::tenants::ensure_exists(state.store(), &tenant).await?;
            }
            // A tenant-scoped resource without a tenant is the platform's own (a platform
            // route): tenant roles never see it, so only platform admins create one.
            None => principal.require_platform_admin()?,
        }
    }
    let mut tx = state.store().begin().await?;
    value.check_references(&mut tx).await?;
    insert(&mut tx, &mut value).await?;
    tx.commit().await?;
    let target = AuditTarget::new(value.id(), value.tenant_id());
    Ok(target.attach((StatusCode::CREATED, Json(value.view()))))
}

async fn get_handler<T: Crud>(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<T::View>> {
    Ok(Json(
        readable(&principal, load::<T>(state.store(), &id).await?, &id)?
            .value
            .view(),
    ))
}

async fn update_handler<T: Crud>(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<T::Update>,
) -> ApiResult<Response> {
    let mut tx = state.store().begin().await?;
    let mut stored = visible(&principal, load_tx::<T>(&mut tx, &id).await?, &id)?;
    stored.value.apply(input)?;
    stored.value.seal_secrets(&state)?;
    stored.value.check_references(&mut tx).await?;
    replace(&mut tx, &mut stored).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&id, stored.value.tenant_id());
    Ok(target.attach(Json(stored.value.view())))
}

async fn delete_handler<T: Crud>(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let mut tx = state.store().begin().await?;
    let stored = visible(&principal, load_tx::<T>(&mut tx, &id).await?, &id)?;
    stored.value.check_delete(&mut tx).await?;
    stored.value.on_delete(&mut tx).await?;
    remove(&mut tx, &stored).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&id, stored.value.tenant_id());
    Ok(target.attach(StatusCode::NO_CONTENT))
}
