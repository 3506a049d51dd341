//! The tenant-model config resource.

use medgate_config::TenantModelEntry;
use serde::{Deserialize, Serialize};

use crate::error::ApiResult;
use crate::models::parameters::{self, ParameterRules};
use crate::resource::{Resource, Scope};
use crate::validate;

/// One tenant's configuration of one model.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TenantModel {
    pub id: String,
    pub tenant_id: String,
    pub model_id: String,
    /// Enables a model that is not available to all tenants, or disables one that is.
    pub enabled: bool,
    /// Another name the tenant's clients may send in `model`.
    pub alias: Option<String>,
    /// Replace the model's rule of the same parameter.
    pub parameters: ParameterRules,
    pub created_at: String,
    pub updated_at: String,
}

/// Body of `POST /api/tenants/{tenantId}/models/{modelId}`: the whole configuration; omitted
/// fields take their defaults.
///
/// Tenant admins may disable a model, name an alias and narrow the model's parameter rules
/// (bounds inside the model's, forced parameters left alone); enabling a model that is not
/// available to all tenants, or loosening its rules, takes a platform admin.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantModelInput {
    /// Default true.
    pub enabled: Option<bool>,
    /// Model-name rules; unique within the tenant, and no other model's name.
    pub alias: Option<String>,
    #[serde(default)]
    pub parameters: ParameterRules,
}

impl TenantModelInput {
    pub fn validate(&self) -> ApiResult<()> {
        if let Some(alias) = &self.alias {
            validate::model_name("alias", alias)?;
        }
        parameters::validate("parameters", &self.parameters)
    }
}

impl TenantModel {
    pub fn unique_key_of(tenant_id: &str, model_id: &str) -> String {
        format!("{tenant_id}/{model_id}")
    }

    pub fn new(id: String, tenant_id: &str, model_id: &str, input: TenantModelInput) -> Self {
        let mut config = TenantModel {
            id,
            tenant_id: tenant_id.to_owned(),
            model_id: model_id.to_owned(),
            enabled: true,
            alias: None,
            parameters: ParameterRules::new(),
            created_at: String::new(),
            updated_at: String::new(),
        };
        config.set(input);
        config
    }

    /// Replaces the configuration with a validated body.
    pub fn set(&mut self, input: TenantModelInput) {
        self.enabled = input.enabled.unwrap_or(true);
        self.alias = input.alias;
        self.parameters = input.parameters;
    }

    pub fn snapshot_entry(&self) -> TenantModelEntry {
        TenantModelEntry {
            tenant_id: self.tenant_id.clone(),
            model_id: self.model_id.clone(),
            enabled: self.enabled,
            alias: self.alias.clone(),
            parameters: self.parameters.clone(),
        }
    }
}

impl Resource for TenantModel {
    const KIND: &'static str = "tenant_model";
    const ID_PREFIX: &'static str = "tmc";
    const LABEL: &'static str = "tenant model config";
    const SCOPE: Scope = Scope::Tenant;
    const AFFECTS_SNAPSHOT: bool = true;

    crate::resource_timestamps!();

    fn tenant_id(&self) -> Option<&str> {
        Some(&self.tenant_id)
    }
    fn unique_key(&self) -> Option<String> {
        Some(Self::unique_key_of(&self.tenant_id, &self.model_id))
    }
    fn unique_field() -> &'static str {
        "model_id"
    }
    /// The alias, so clashes within a tenant and with model names can be looked up.
    fn name(&self) -> Option<&str> {
        self.alias.as_deref()
    }
    fn ref_id(&self) -> Option<&str> {
        Some(&self.model_id)
    }
}
