//! One way to declare a resource.
//!
//! A resource type implements [`Resource`] (how it maps onto the generic store columns) and,
//! for plain CRUD, [`Crud`] (how it is built from a create body, changed by an update body, and
//! what blocks its deletion). [`crud_routes`] then gives it list (paginated, filtered), create,
//! get, update and delete endpoints with validation, tenant scoping, snapshot versioning and
//! audit. Resources with richer behaviour (tenant lifecycle) reuse the typed operations below.

use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{self, resources, ResourceFilter, ResourceRow, Store, Tx};

/// Whether a resource belongs to the platform or to one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Shared by the platform; tenant roles may read, only platform admins write.
    Platform,
    /// Owned by one tenant (`tenant_id`); tenant admins manage their own.
    Tenant,
    /// The tenant record itself: tenant roles see their own, platform admins manage all.
    TenantItself,
}

impl Scope {
    fn is_tenant_bound(self) -> bool {
        matches!(self, Scope::Tenant | Scope::TenantItself)
    }
}

/// How a typed resource maps onto the generic store.
pub trait Resource:
    Serialize + DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static
{
    /// Stored kind, also the audit resource type (e.g. `tenant_plan`).
    const KIND: &'static str;
    /// Prefix of generated ids (e.g. `plan`).
    const ID_PREFIX: &'static str;
    /// Human name for messages (e.g. `tenant plan`).
    const LABEL: &'static str;
    const SCOPE: Scope;
    /// Whether changes must bump the snapshot version (the data plane needs it).
    const AFFECTS_SNAPSHOT: bool;

    fn id(&self) -> &str;
    fn tenant_id(&self) -> Option<&str> {
        None
    }
    /// Value that must be unique within the kind (e.g. the tenant code).
    fn unique_key(&self) -> Option<String> {
        None
    }
    /// Field that the unique key comes from, for the 409 message.
    fn unique_field() -> &'static str {
        "name"
    }
    fn status(&self) -> Option<String> {
        None
    }
    fn name(&self) -> Option<&str> {
        None
    }
    /// The main reference to another resource, indexed for "in use" checks.
    fn ref_id(&self) -> Option<&str> {
        None
    }
    fn set_timestamps(&mut self, created_at: &str, updated_at: &str);
}

/// A resource as loaded, with the revision used for optimistic concurrency.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub value: T,
    pub revision: i64,
    pub created_at: String,
}

fn to_row<T: Resource>(
    value: &T,
    revision: i64,
    created_at: &str,
    updated_at: &str,
) -> ApiResult<ResourceRow> {
    Ok(ResourceRow {
        kind: T::KIND.to_owned(),
        id: value.id().to_owned(),
        tenant_id: value.tenant_id().map(str::to_owned),
        unique_key: value.unique_key(),
        status: value.status(),
        name: value.name().map(str::to_owned),
        ref_id: value.ref_id().map(str::to_owned),
        body: serde_json::to_string(value).map_err(ApiError::internal)?,
        revision,
        created_at: created_at.to_owned(),
        updated_at: updated_at.to_owned(),
    })
}

fn from_row<T: Resource>(row: ResourceRow) -> ApiResult<Stored<T>> {
    let value = serde_json::from_str(&row.body).map_err(|e| {
        ApiError::internal(format!("stored {} {} is unreadable: {e}", T::KIND, row.id))
    })?;
    Ok(Stored {
        value,
        revision: row.revision,
        created_at: row.created_at,
    })
}

fn unique_conflict<T: Resource>() -> ApiError {
    ApiError::conflict(
        "already_exists",
        format!(
            "a {} with this {} already exists",
            T::LABEL,
            T::unique_field()
        ),
    )
}

/// Inserts a new resource (timestamps stamped here).
pub async fn insert<T: Resource>(tx: &mut Tx, value: &mut T) -> ApiResult<()> {
    let now = store::now();
    value.set_timestamps(&now, &now);
    let row = to_row(value, 1, &now, &now)?;
    match resources::insert(tx, &row).await {
        Ok(()) => {}
        Err(e) if store::is_unique_violation(&e) => return Err(unique_conflict::<T>()),
        Err(e) => return Err(e.into()),
    }
    if T::AFFECTS_SNAPSHOT {
        store::bump_config_version(tx).await?;
    }
    Ok(())
}

/// Writes back a modified resource; 409 if it changed since it was loaded.
pub async fn replace<T: Resource>(tx: &mut Tx, stored: &mut Stored<T>) -> ApiResult<()> {
    let now = store::now();
    let created = stored.created_at.clone();
    stored.value.set_timestamps(&created, &now);
    let row = to_row(&stored.value, stored.revision + 1, &created, &now)?;
    match resources::update(tx, &row, stored.revision).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::conflict(
                "concurrent_modification",
                format!("the {} changed while this request ran; retry", T::LABEL),
            ))
        }
        Err(e) if store::is_unique_violation(&e) => return Err(unique_conflict::<T>()),
        Err(e) => return Err(e.into()),
    }
    stored.revision += 1;
    if T::AFFECTS_SNAPSHOT {
        store::bump_config_version(tx).await?;
    }
    Ok(())
}

/// Deletes a loaded resource; 409 if it changed since it was loaded.
pub async fn remove<T: Resource>(tx: &mut Tx, stored: &Stored<T>) -> ApiResult<()> {
    if !resources::delete(tx, T::KIND, stored.value.id(), stored.revision).await? {
        return Err(ApiError::conflict(
            "concurrent_modification",
            format!("the {} changed while this request ran; retry", T::LABEL),
        ));
    }
    if T::AFFECTS_SNAPSHOT {
        store::bump_config_version(tx).await?;
    }
    Ok(())
}

/// Loads by id inside a transaction.
pub async fn load_tx<T: Resource>(tx: &mut Tx, id: &str) -> ApiResult<Option<Stored<T>>> {
    resources::get(tx, T::KIND, id)
        .await?
        .map(from_row)
        .transpose()
}

/// Loads by id from the read pool.
pub async fn load<T: Resource>(store: &Store, id: &str) -> ApiResult<Option<Stored<T>>> {
    resources::get(&mut *store.reader().acquire().await?, T::KIND, id)
        .await?
        .map(from_row)
        .transpose()
}

/// Loads by unique key from the read pool.
pub async fn load_by_unique<T: Resource>(store: &Store, key: &str) -> ApiResult<Option<Stored<T>>> {
    resources::get_by_unique_key(&mut *store.reader().acquire().await?, T::KIND, key)
        .await?
        .map(from_row)
        .transpose()
}

/// Every resource of a kind (for compilers and small lists).
pub async fn load_all<T: Resource>(store: &Store) -> ApiResult<Vec<T>> {
    resources::all(&mut *store.reader().acquire().await?, T::KIND)
        .await?
        .into_iter()
        .map(|row| from_row::<T>(row).map(|s| s.value))
        .collect()
}

/// The caller may see this resource: missing or another tenant's is the same 404.
pub fn visible<T: Resource>(
    principal: &Principal,
    stored: Option<Stored<T>>,
    id: &str,
) -> ApiResult<Stored<T>> {
    let stored = stored.ok_or_else(|| ApiError::not_found(T::KIND, id))?;
    if T::SCOPE.is_tenant_bound() {
        principal.check_tenant(stored.value.tenant_id(), T::KIND, id)?;
    }
    Ok(stored)
}

/// Loads, lets `change` modify, and writes back in one transaction, retrying when another
/// writer got there first. `change` sees the current value every time.
pub async fn mutate<T, F>(
    store: &Store,
    principal: &Principal,
    id: &str,
    mut change: F,
) -> ApiResult<T>
where
    T: Resource,
    F: FnMut(&mut T) -> ApiResult<()>,
{
    for _ in 0..5 {
        let mut tx = store.begin().await?;
        let mut stored = visible(principal, load_tx::<T>(&mut tx, id).await?, id)?;
        change(&mut stored.value)?;
        match replace(&mut tx, &mut stored).await {
            Err(ApiError::Conflict {
                code: "concurrent_modification",
                ..
            }) => continue,
            Err(e) => return Err(e),
            Ok(()) => {
                tx.commit().await?;
                return Ok(stored.value);
            }
        }
    }
    Err(ApiError::conflict(
        "concurrent_modification",
        format!("the {} is being changed by others; retry", T::LABEL),
    ))
}

/// Query of every generic list endpoint.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// Only this tenant's resources (platform-wide callers).
    pub tenant_id: Option<String>,
    /// Only resources in this status.
    pub status: Option<String>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    /// Created at or after this RFC 3339 time.
    pub created_after: Option<String>,
    /// Created before this RFC 3339 time.
    pub created_before: Option<String>,
}

impl ListQuery {
    /// The store filter, with tenant scoping applied for tenant-scoped callers.
    pub fn filter(&self, principal: &Principal, scope: Scope) -> ApiResult<ResourceFilter> {
        let tenant_id = match (scope, principal.tenant_scope()) {
            (scope, Some(own)) if scope.is_tenant_bound() => {
                if self.tenant_id.as_deref().is_some_and(|t| t != own) {
                    return Err(ApiError::not_found(
                        "tenant",
                        self.tenant_id.clone().unwrap_or_default(),
                    ));
                }
                Some(own.to_owned())
            }
            _ => self.tenant_id.clone(),
        };
        let time = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| crate::api::parse_time(field, t))
                .transpose()
        };
        Ok(ResourceFilter {
            tenant_id,
            status: self.status.clone(),
            ref_id: None,
            name_contains: self.q.clone(),
            created_after: time("created_after", &self.created_after)?,
            created_before: time("created_before", &self.created_before)?,
        })
    }

    pub fn paging(&self) -> ApiResult<(u32, u32)> {
        PageQuery {
            page: self.page,
            page_size: self.page_size,
        }
        .resolve()
    }
}

/// One page of resources.
pub async fn list<T: Resource>(
    store: &Store,
    filter: &ResourceFilter,
    page: u32,
    size: u32,
) -> ApiResult<Page<T>> {
    let (rows, total) = resources::list(
        &mut *store.reader().acquire().await?,
        T::KIND,
        filter,
        page,
        size,
    )
    .await?;
    let items = rows
        .into_iter()
        .map(|r| from_row::<T>(r).map(|s| s.value))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Page {
        items,
        total,
        page,
        page_size: size,
    })
}

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

    /// Builds and validates a new resource.
    fn build(id: String, input: Self::Create, principal: &Principal) -> ApiResult<Self>;

    /// Applies and validates an update.
    fn apply(&mut self, input: Self::Update) -> ApiResult<()>;

    /// The API representation.
    fn view(&self) -> Self::View;

    /// Checks references to other resources inside the write transaction.
    async fn check_references(&self, _tx: &mut Tx) -> ApiResult<()> {
        Ok(())
    }

    /// Refuses deletion while something depends on the resource (409).
    async fn check_delete(&self, _tx: &mut Tx) -> ApiResult<()> {
        Ok(())
    }
}

/// The tenant a new tenant-scoped resource belongs to: the caller's own tenant, or the one a
/// platform admin names.
pub fn owning_tenant(principal: &Principal, requested: Option<String>) -> ApiResult<String> {
    match (principal.tenant_scope(), requested) {
        (Some(own), None) => Ok(own.to_owned()),
        (Some(own), Some(t)) if t == own => Ok(t),
        (Some(_), Some(t)) => Err(ApiError::not_found("tenant", t)),
        (None, Some(t)) => Ok(t),
        (None, None) => Err(ApiError::invalid(
            "tenant_id",
            "is required for platform-wide callers",
        )),
    }
}

/// Registers list, create, get, update and delete for `T`.
pub fn crud_routes<T: Crud>(api: ApiBuilder) -> ApiBuilder {
    let (read, write) = match T::SCOPE {
        Scope::Platform => (Access::Read, Access::PlatformAdmin),
        Scope::Tenant => (Access::Read, Access::TenantWrite),
        Scope::TenantItself => (Access::Read, Access::PlatformAdmin),
    };
    let item = format!("{}/{{id}}", T::PATH);
    let op = |verb: &str| format!("{}.{verb}", T::TAG);
    api.add(
        Endpoint::get(T::PATH, op("list"), format!("List {}s", T::LABEL))
            .access(read)
            .resource(T::KIND)
            .query::<ListQuery>()
            .response::<Page<T::View>>(),
        list_handler::<T>,
    )
    .add(
        Endpoint::post(T::PATH, op("create"), format!("Create a {}", T::LABEL))
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
    ApiJson(input): ApiJson<T::Create>,
) -> ApiResult<Response> {
    let mut value = T::build(store::new_id(T::ID_PREFIX), input, &principal)?;
    if T::SCOPE == Scope::Tenant {
        let tenant = value.tenant_id().unwrap_or_default().to_owned();
        principal.check_tenant(Some(&tenant), "tenant", &tenant)?;
        crate::tenants::ensure_exists(state.store(), &tenant).await?;
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
        visible(&principal, load::<T>(state.store(), &id).await?, &id)?
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
    remove(&mut tx, &stored).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&id, stored.value.tenant_id());
    Ok(target.attach(StatusCode::NO_CONTENT))
}

/// Implements the boilerplate accessors of [`Resource`] for a struct with `id`,
/// `created_at` and `updated_at` fields.
#[macro_export]
macro_rules! resource_timestamps {
    () => {
        fn id(&self) -> &str {
            &self.id
        }
        fn set_timestamps(&mut self, created_at: &str, updated_at: &str) {
            self.created_at = created_at.to_owned();
            self.updated_at = updated_at.to_owned();
        }
    };
}
