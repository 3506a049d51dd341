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
use crate::resource;
use crate::store::Store;

/// 404 unless the tenant exists.
pub async fn ensure_exists(store: &Store, tenant_id: &str) -> ApiResult<Tenant> {
    resource::load::<Tenant>(store, tenant_id)
        .await?
        .map(|s| s.value)
        .ok_or_else(|| ApiError::not_found("tenant", tenant_id))
}
