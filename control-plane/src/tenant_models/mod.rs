//! Per-tenant model configuration (API §3.3, tenant part): which models a tenant may use,
//! under which alias, with which parameter overrides.
//!
//! A tenant may use a model when the model is enabled, the tenant's plan allows it (an empty
//! plan list allows all), and either the model is available to all tenants and the tenant's
//! config does not disable it, or the tenant's config enables it. The data plane applies the
//! same rule to the snapshot.

mod access;
mod model;
mod routes;

pub use access::{effective, TenantModelView};
pub use model::{TenantModel, TenantModelInput};
pub use routes::routes;
