//! Lookups of what rules name: models (by name), upstreams (by URL), routes, API keys and
//! tenants. Each takes a connection, so the write path checks inside its transaction and the
//! recovery endpoint on the read pool.

use serde::de::DeserializeOwned;
use sqlx::AnyConnection;

use crate::error::{ApiError, ApiResult};
use crate::keys::ApiKey;
use crate::models::Model;
use crate::resource::Resource;
use crate::routing::Route;
use crate::store::resources;
use crate::tenants::Tenant;

async fn get<T: Resource + DeserializeOwned>(
    conn: &mut AnyConnection,
    id: &str,
) -> ApiResult<Option<T>> {
    resources::get(conn, T::KIND, id)
        .await?
        .map(|row| serde_json::from_str::<T>(&row.body).map_err(ApiError::internal))
        .transpose()
}

/// Whether a model of this name exists (names are the models' unique key).
pub async fn model_exists(conn: &mut AnyConnection, name: &str) -> ApiResult<bool> {
    Ok(resources::get_by_unique_key(conn, Model::KIND, name)
        .await?
        .is_some())
}

/// Whether some model has an upstream with this URL (a trailing `/` does not count).
pub async fn upstream_exists(conn: &mut AnyConnection, url: &str) -> ApiResult<bool> {
    let wanted = url.trim_end_matches('/');
    for row in resources::all(conn, Model::KIND).await? {
        let model: Model = serde_json::from_str(&row.body).map_err(ApiError::internal)?;
        if model
            .upstreams
            .iter()
            .any(|u| u.url.trim_end_matches('/') == wanted)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a route with this id exists and is one a rule of `tenant` may name: a platform
/// route, or (for a tenant's rule) one of the tenant's own. A platform rule may name any.
pub async fn route_usable(
    conn: &mut AnyConnection,
    id: &str,
    tenant: Option<&str>,
) -> ApiResult<bool> {
    Ok(get::<Route>(conn, id).await?.is_some_and(|r| {
        tenant.is_none() || r.tenant_id.is_none() || r.tenant_id.as_deref() == tenant
    }))
}

/// Whether an API key with this id exists and (for a tenant's rule) belongs to `tenant`.
pub async fn key_usable(
    conn: &mut AnyConnection,
    id: &str,
    tenant: Option<&str>,
) -> ApiResult<bool> {
    Ok(get::<ApiKey>(conn, id)
        .await?
        .is_some_and(|k| tenant.is_none_or(|t| k.tenant_id == t)))
}

/// Whether a tenant with this id exists.
pub async fn tenant_exists(conn: &mut AnyConnection, id: &str) -> ApiResult<bool> {
    Ok(get::<Tenant>(conn, id).await?.is_some())
}

/// 422 naming `field` when `found` is false.
pub fn require(found: bool, field: &str, what: &str, name: &str) -> ApiResult<()> {
    if found {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{what} {name:?} does not exist"),
        ))
    }
}
