//! The tenant resource.

use async_trait::async_trait;
use medgate_config::TenantStatus;
use serde::{Deserialize, Serialize};

use super::config::TenantConfig;
use super::plans::TenantPlan;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::protection::RuleKind;
use crate::resource::{self, Crud, Resource, Scope};
use crate::store::{resources, Tx};
use crate::validate;

/// A hospital or clinic using the platform.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// Unique slug, e.g. `city-hospital`.
    pub code: String,
    pub contact: Contact,
    /// `pending -> active <-> suspended -> terminated`; terminated is final.
    pub status: TenantStatus,
    pub plan_id: Option<String>,
    /// IANA time zone; daily usage is bucketed in it.
    pub timezone: String,
    /// ISO 4217 currency of the tenant's balance and invoices.
    pub currency: String,
    pub isolation_policy_id: Option<String>,
    pub config: TenantConfig,
    /// Every plan change, oldest first.
    pub plan_history: Vec<PlanChange>,
    /// When the tenant first became active (a tenant that never did may be deleted).
    pub activated_at: Option<String>,
    pub suspended_at: Option<String>,
    pub terminated_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Who to talk to at the tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// One plan change.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanChange {
    pub from_plan_id: Option<String>,
    pub to_plan_id: String,
    pub changed_at: String,
    pub changed_by: String,
    pub reason: Option<String>,
}

/// Body of `POST /api/tenants`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    pub name: String,
    pub code: String,
    #[serde(default)]
    pub contact: Contact,
    pub plan_id: Option<String>,
    /// Default `Asia/Shanghai`.
    pub timezone: Option<String>,
    /// Default `CNY`.
    pub currency: Option<String>,
}

/// Body of `PUT /api/tenants/{id}`; omitted fields keep their value. Status, plan and
/// isolation have their own endpoints.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    pub name: Option<String>,
    pub code: Option<String>,
    pub contact: Option<Contact>,
    pub timezone: Option<String>,
    pub currency: Option<String>,
}

impl Contact {
    fn validate(&self) -> ApiResult<()> {
        if let Some(name) = &self.name {
            validate::text("contact.name", name, 1, 200)?;
        }
        if let Some(email) = &self.email {
            validate::email("contact.email", email)?;
        }
        if let Some(phone) = &self.phone {
            let ok = (3..=32).contains(&phone.len())
                && phone
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b' ' | b'(' | b')'));
            if !ok {
                return Err(ApiError::invalid(
                    "contact.phone",
                    "must be a phone number (digits, spaces, + - ( ))",
                ));
            }
        }
        Ok(())
    }
}

impl Tenant {
    fn validate(&self) -> ApiResult<()> {
        validate::text("name", &self.name, 1, 200)?;
        validate::slug("code", &self.code)?;
        self.contact.validate()?;
        validate::timezone("timezone", &self.timezone)?;
        validate::currency("currency", &self.currency)?;
        Ok(())
    }
}

impl Resource for Tenant {
    const KIND: &'static str = "tenant";
    const ID_PREFIX: &'static str = "tnt";
    const LABEL: &'static str = "tenant";
    const SCOPE: Scope = Scope::TenantItself;
    const AFFECTS_SNAPSHOT: bool = true;

    crate::resource_timestamps!();

    fn tenant_id(&self) -> Option<&str> {
        Some(&self.id)
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.code.clone())
    }
    fn unique_field() -> &'static str {
        "code"
    }
    fn status(&self) -> Option<String> {
        Some(self.status.as_str().to_owned())
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn ref_id(&self) -> Option<&str> {
        self.plan_id.as_deref()
    }
}

#[async_trait]
impl Crud for Tenant {
    type Create = TenantCreate;
    type View = Self;
    type Update = TenantUpdate;
    const PATH: &'static str = "/api/tenants";
    const TAG: &'static str = "tenants";

    /// A new tenant's time zone and currency default to the system settings'.
    async fn fill_defaults(
        input: &mut TenantCreate,
        state: &crate::state::AppState,
    ) -> ApiResult<()> {
        if input.timezone.is_none() || input.currency.is_none() {
            let general = crate::settings::general::load(state.store()).await?;
            input.timezone.get_or_insert(general.default_timezone);
            input.currency.get_or_insert(general.default_currency);
        }
        Ok(())
    }

    fn build(id: String, input: TenantCreate, principal: &Principal) -> ApiResult<Self> {
        let tenant = Tenant {
            id,
            name: input.name,
            code: input.code,
            contact: input.contact,
            status: TenantStatus::Pending,
            plan_history: input
                .plan_id
                .iter()
                .map(|p| PlanChange {
                    from_plan_id: None,
                    to_plan_id: p.clone(),
                    changed_at: crate::store::now(),
                    changed_by: principal.subject.clone(),
                    reason: Some("initial plan".into()),
                })
                .collect(),
            plan_id: input.plan_id,
            timezone: input.timezone.unwrap_or_else(|| "Asia/Shanghai".into()),
            currency: input.currency.unwrap_or_else(|| "CNY".into()),
            isolation_policy_id: None,
            config: TenantConfig::default(),
            activated_at: None,
            suspended_at: None,
            terminated_at: None,
            created_at: String::new(),
            updated_at: String::new(),
        };
        tenant.validate()?;
        Ok(tenant)
    }

    fn view(&self) -> Self {
        self.clone()
    }

    fn apply(&mut self, input: TenantUpdate) -> ApiResult<()> {
        if self.status == TenantStatus::Terminated {
            return Err(ApiError::conflict(
                "tenant_terminated",
                "a terminated tenant cannot be changed",
            ));
        }
        if let Some(v) = input.name {
            self.name = v;
        }
        if let Some(v) = input.code {
            self.code = v;
        }
        if let Some(v) = input.contact {
            self.contact = v;
        }
        if let Some(v) = input.timezone {
            self.timezone = v;
        }
        if let Some(v) = input.currency {
            self.currency = v;
        }
        self.validate()
    }

    async fn check_references(&self, tx: &mut Tx) -> ApiResult<()> {
        if let Some(plan_id) = &self.plan_id {
            if resource::load_tx::<TenantPlan>(tx, plan_id)
                .await?
                .is_none()
            {
                return Err(ApiError::invalid(
                    "plan_id",
                    format!("plan {plan_id} does not exist"),
                ));
            }
        }
        Ok(())
    }

    /// A deleted tenant takes its keys, model configs, routes, domains, protection rules and
    /// alert rules along; its usage history and alert history stay.
    async fn on_delete(&self, tx: &mut Tx) -> ApiResult<()> {
        for kind in [
            crate::keys::ApiKey::KIND,
            crate::tenant_models::TenantModel::KIND,
            crate::routing::Route::KIND,
            crate::domains::Domain::KIND,
            <medgate_config::RateLimitEntry as RuleKind>::KIND,
            <medgate_config::BreakerEntry as RuleKind>::KIND,
            <medgate_config::DegradationEntry as RuleKind>::KIND,
            crate::alerts::AlertRule::KIND,
        ] {
            resources::delete_by_tenant(tx, kind, &self.id).await?;
        }
        crate::domains::remove_certificates_of_tenant(tx, &self.id).await?;
        Ok(())
    }

    async fn check_delete(&self, _tx: &mut Tx) -> ApiResult<()> {
        let deletable = match self.status {
            TenantStatus::Terminated => true,
            TenantStatus::Pending => self.activated_at.is_none(),
            TenantStatus::Active | TenantStatus::Suspended => false,
        };
        if deletable {
            Ok(())
        } else {
            Err(ApiError::conflict(
                "tenant_in_service",
                format!(
                    "a tenant in status {} cannot be deleted; terminate it first",
                    self.status.as_str()
                ),
            ))
        }
    }
}
