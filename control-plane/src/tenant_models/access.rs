//! What a tenant gets from a model: availability, alias and the parameter rules in force.

use serde::Serialize;

use super::model::TenantModel;
use crate::models::parameters::{self, ParameterRules};
use crate::models::Model;
use crate::tenants::TenantPlan;

/// A model as one tenant sees it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TenantModelView {
    pub tenant_id: String,
    pub model_id: String,
    /// The model's name, always accepted in `model`.
    pub model_name: String,
    pub display_name: String,
    /// The tenant's alias, also accepted in `model`.
    pub alias: Option<String>,
    /// Whether the tenant has its own configuration of this model.
    pub configured: bool,
    /// The configuration's switch; without one, whether the model is available to all tenants.
    pub enabled: bool,
    /// Whether the tenant can use the model now: the model is enabled, the plan allows it,
    /// and it is enabled for the tenant.
    pub available: bool,
    /// The tenant's own rules.
    pub parameter_overrides: ParameterRules,
    /// The rules in force: the model's, each replaced by the tenant's rule of that parameter.
    pub parameters: ParameterRules,
    pub updated_at: Option<String>,
}

/// The view of `model` for `tenant_id` on `plan` with its `config`, if any.
pub fn effective(
    tenant_id: &str,
    plan: Option<&TenantPlan>,
    model: &Model,
    config: Option<&TenantModel>,
) -> TenantModelView {
    let plan_allows =
        plan.is_none_or(|p| p.allowed_models.is_empty() || p.allowed_models.contains(&model.name));
    let enabled = config.map_or(model.available_to_all_tenants, |c| c.enabled);
    let overrides = config.map(|c| c.parameters.clone()).unwrap_or_default();
    TenantModelView {
        tenant_id: tenant_id.to_owned(),
        model_id: model.id.clone(),
        model_name: model.name.clone(),
        display_name: model.display_name.clone(),
        alias: config.and_then(|c| c.alias.clone()),
        configured: config.is_some(),
        enabled,
        available: model.enabled && plan_allows && enabled,
        parameters: parameters::merge(&model.parameters, &overrides),
        parameter_overrides: overrides,
        updated_at: config.map(|c| c.updated_at.clone()),
    }
}
