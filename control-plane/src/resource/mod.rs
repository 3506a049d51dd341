//! One way to declare a resource.
//!
//! A resource type implements [`Resource`] (how it maps onto the generic store columns) and,
//! for plain CRUD, [`Crud`] (how it is built from a create body, changed by an update body, and
//! what blocks its deletion). [`crud_routes`] then gives it list (paginated, filtered), create,
//! get, update and delete endpoints with validation, tenant scoping, snapshot versioning and
//! audit. Resources with richer behaviour (tenant lifecycle) reuse the typed operations below.

mod crud;
mod list;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crud::{crud_routes, crud_routes_at, Crud};
pub use list::{list, ListQuery};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::store::{self, resources, ResourceRow, Store, Tx};

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
    /// Whether every caller may read this resource although it belongs to no tenant (a
    /// published platform template that tenants copy). Only reads widen: tenant-scoped callers
    /// writing it get 403, since they can see it.
    fn shared(&self) -> bool {
        false
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

/// Loads by unique key inside a transaction.
pub async fn load_by_unique_tx<T: Resource>(
    tx: &mut Tx,
    key: &str,
) -> ApiResult<Option<Stored<T>>> {
    resources::get_by_unique_key(tx, T::KIND, key)
        .await?
        .map(from_row)
        .transpose()
}

/// Every resource of a kind owned by one tenant (optionally in one status), inside a
/// transaction, ready to be written back.
pub async fn load_for_tenant_tx<T: Resource>(
    tx: &mut Tx,
    tenant_id: &str,
    status: Option<&str>,
) -> ApiResult<Vec<Stored<T>>> {
    resources::by_tenant(tx, T::KIND, tenant_id, status)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// Every resource of a kind owned by one tenant, from the read pool.
pub async fn load_for_tenant<T: Resource>(store: &Store, tenant_id: &str) -> ApiResult<Vec<T>> {
    resources::by_tenant(
        &mut *store.reader().acquire().await?,
        T::KIND,
        tenant_id,
        None,
    )
    .await?
    .into_iter()
    .map(|row| from_row::<T>(row).map(|s| s.value))
    .collect()
}

/// Every resource of a kind (for compilers and small lists).
pub async fn load_all<T: Resource>(store: &Store) -> ApiResult<Vec<T>> {
    resources::all(&mut *store.reader().acquire().await?, T::KIND)
        .await?
        .into_iter()
        .map(|row| from_row::<T>(row).map(|s| s.value))
        .collect()
}

/// The caller may see (and, with the endpoint's role check, change) this resource: missing or
/// another tenant's is the same 404; a shared platform resource is 403 for tenant roles.
pub fn visible<T: Resource>(
    principal: &Principal,
    stored: Option<Stored<T>>,
    id: &str,
) -> ApiResult<Stored<T>> {
    let stored = stored.ok_or_else(|| ApiError::not_found(T::KIND, id))?;
    if T::SCOPE.is_tenant_bound() {
        let shared = stored.value.tenant_id().is_none() && stored.value.shared();
        if shared && principal.tenant_scope().is_some() {
            return Err(ApiError::forbidden(format!(
                "this {} is shared by the platform; only platform admins change it",
                T::LABEL
            )));
        }
        principal.check_tenant(stored.value.tenant_id(), T::KIND, id)?;
    }
    Ok(stored)
}

/// [`visible`] for reads: a [`Resource::shared`] resource without a tenant is readable by
/// every caller; anything else as [`visible`] (missing or another tenant's is 404).
pub fn readable<T: Resource>(
    principal: &Principal,
    stored: Option<Stored<T>>,
    id: &str,
) -> ApiResult<Stored<T>> {
    match stored {
        Some(s) if s.value.tenant_id().is_none() && s.value.shared() => Ok(s),
        other => visible(principal, other, id),
    }
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

/// Runs `attempt` (one whole transaction) again when another writer changed a resource it
/// read, like [`mutate`] does, for writes that touch more than one resource.
pub async fn retrying<R, F, Fut>(label: &str, mut attempt: F) -> ApiResult<R>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ApiResult<R>>,
{
    for _ in 0..5 {
        match attempt().await {
            Err(ApiError::Conflict {
                code: "concurrent_modification",
                ..
            }) => continue,
            other => return other,
        }
    }
    Err(ApiError::conflict(
        "concurrent_modification",
        format!("the {label} is being changed by others; retry"),
    ))
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
