//! Tenant management (API §1): tenants and their lifecycle, plans, configuration and
//! isolation policies.

mod config;
mod isolation;
mod lifecycle;
mod model;
mod plans;
mod routes;

pub use config::TenantConfig;
pub use isolation::IsolationPolicy;
pub use model::{Contact, PlanChange, Tenant, TenantCreate};
pub use plans::{PlanQuotasInput, TenantPlan, TenantPlanInput};
pub use routes::routes;

use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Resource};
use crate::store::{resources, Store, Tx};

/// 404 unless the tenant exists.
pub async fn ensure_exists(store: &Store, tenant_id: &str) -> ApiResult<Tenant> {
    resource::load::<Tenant>(store, tenant_id)
        .await?
        .map(|s| s.value)
        .ok_or_else(|| ApiError::not_found("tenant", tenant_id))
}

/// Locks a tenant's row for the rest of the transaction and loads it (404 when missing), for
/// writes whose checks span the tenant's resources (key quota, alias uniqueness).
pub async fn lock(tx: &mut Tx, tenant_id: &str) -> ApiResult<Tenant> {
    if !resources::lock(tx, Tenant::KIND, tenant_id).await? {
        return Err(ApiError::not_found("tenant", tenant_id));
    }
    resource::load_tx::<Tenant>(tx, tenant_id)
        .await?
        .map(|s| s.value)
        .ok_or_else(|| ApiError::not_found("tenant", tenant_id))
}

/// 409 for changes to a terminated tenant; `what` completes "a terminated tenant cannot ...".
pub fn refuse_terminated(tenant: &Tenant, what: &str) -> ApiResult<()> {
    if tenant.status == medgate_config::TenantStatus::Terminated {
        return Err(ApiError::conflict(
            "tenant_terminated",
            format!("a terminated tenant cannot {what}"),
        ));
    }
    Ok(())
}
