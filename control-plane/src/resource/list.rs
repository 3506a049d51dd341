//! Generic list endpoints: the query every list takes, tenant scoping and one page.

use serde::Deserialize;

use super::{from_row, Resource, Scope};
use crate::api::pagination::{Page, PageQuery};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::store::{resources, ResourceFilter, Store};

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
