//! Tenant plans (API §1.3): quotas and price of a tier. A plan in use cannot be deleted.
//! The same resource is also served as the billing plans of API §2.2 (`/api/billing/plans`):
//! one plan concept, two addresses.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Tenant;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::resource::{Crud, Resource, Scope};
use crate::store::{resources, Tx};
use crate::validate;

/// A tier tenants subscribe to.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TenantPlan {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub quotas: PlanQuotasInput,
    /// Models the plan allows; empty means every enabled model.
    pub allowed_models: Vec<String>,
    /// Credit included each month, in minor units of `currency`.
    pub included_credit_minor: i64,
    /// Monthly price, in minor units of `currency`.
    pub monthly_price_minor: i64,
    pub currency: String,
    /// Tokens included each month; None: no allowance (every token is billed at the rates).
    #[serde(default)]
    pub included_tokens: Option<u64>,
    /// Price of 1,000 tokens beyond `included_tokens`, in micros of `currency`; None: tokens
    /// beyond the allowance are billed at the model rates.
    #[serde(default)]
    pub overage_per_1k_micros: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

/// Quotas of a plan; absent means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanQuotasInput {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub monthly_tokens: Option<u64>,
    pub max_api_keys: Option<u64>,
}

/// Body of create and update (update replaces the plan's fields).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPlanInput {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub quotas: PlanQuotasInput,
    #[serde(default)]
    pub allowed_models: Vec<String>,
    #[serde(default)]
    pub included_credit_minor: i64,
    #[serde(default)]
    pub monthly_price_minor: i64,
    /// Default `CNY`.
    pub currency: Option<String>,
    /// Tokens included each month (more than 0).
    pub included_tokens: Option<u64>,
    /// Price of 1,000 tokens beyond the included ones, micros of `currency` (0 or more).
    pub overage_per_1k_micros: Option<i64>,
}

impl TenantPlan {
    fn set(&mut self, input: TenantPlanInput) -> ApiResult<()> {
        validate::text("name", &input.name, 1, 100)?;
        if let Some(d) = &input.description {
            validate::text("description", d, 0, 2000)?;
        }
        validate::positive(
            "quotas.requests_per_minute",
            input.quotas.requests_per_minute,
        )?;
        validate::positive("quotas.tokens_per_minute", input.quotas.tokens_per_minute)?;
        validate::positive("quotas.monthly_tokens", input.quotas.monthly_tokens)?;
        validate::positive("quotas.max_api_keys", input.quotas.max_api_keys)?;
        if input.allowed_models.len() > 500 {
            return Err(ApiError::invalid("allowed_models", "at most 500 models"));
        }
        for (i, m) in input.allowed_models.iter().enumerate() {
            validate::model_name(&format!("allowed_models[{i}]"), m)?;
        }
        validate::non_negative_money("included_credit_minor", input.included_credit_minor)?;
        validate::non_negative_money("monthly_price_minor", input.monthly_price_minor)?;
        let currency = input.currency.unwrap_or_else(|| "CNY".into());
        validate::currency("currency", &currency)?;
        validate::positive("included_tokens", input.included_tokens)?;
        if input
            .included_tokens
            .is_some_and(|t| i64::try_from(t).is_err())
        {
            return Err(ApiError::invalid("included_tokens", "is too large"));
        }
        if let Some(price) = input.overage_per_1k_micros {
            validate::non_negative_money("overage_per_1k_micros", price)?;
        }
        self.name = input.name;
        self.description = input.description;
        self.quotas = input.quotas;
        self.allowed_models = input.allowed_models;
        self.included_credit_minor = input.included_credit_minor;
        self.monthly_price_minor = input.monthly_price_minor;
        self.currency = currency;
        self.included_tokens = input.included_tokens;
        self.overage_per_1k_micros = input.overage_per_1k_micros;
        Ok(())
    }
}

impl Resource for TenantPlan {
    const KIND: &'static str = "tenant_plan";
    const ID_PREFIX: &'static str = "plan";
    const LABEL: &'static str = "tenant plan";
    const SCOPE: Scope = Scope::Platform;
    const AFFECTS_SNAPSHOT: bool = true;

    crate::resource_timestamps!();

    fn unique_key(&self) -> Option<String> {
        Some(self.name.clone())
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

#[async_trait]
impl Crud for TenantPlan {
    type Create = TenantPlanInput;
    type View = Self;
    type Update = TenantPlanInput;
    const PATH: &'static str = "/api/tenant-plans";
    const TAG: &'static str = "tenant_plans";

    fn build(id: String, input: TenantPlanInput, _principal: &Principal) -> ApiResult<Self> {
        let mut plan = TenantPlan {
            id,
            name: String::new(),
            description: None,
            quotas: PlanQuotasInput::default(),
            allowed_models: Vec::new(),
            included_credit_minor: 0,
            monthly_price_minor: 0,
            currency: String::new(),
            included_tokens: None,
            overage_per_1k_micros: None,
            created_at: String::new(),
            updated_at: String::new(),
        };
        plan.set(input)?;
        Ok(plan)
    }

    fn view(&self) -> Self {
        self.clone()
    }

    fn apply(&mut self, input: TenantPlanInput) -> ApiResult<()> {
        self.set(input)
    }

    async fn check_delete(&self, tx: &mut Tx) -> ApiResult<()> {
        let users = resources::count_refs(tx, Tenant::KIND, &self.id).await?;
        if users > 0 {
            return Err(ApiError::conflict(
                "plan_in_use",
                format!("{users} tenant(s) are on this plan; move them to another plan first"),
            ));
        }
        Ok(())
    }
}
