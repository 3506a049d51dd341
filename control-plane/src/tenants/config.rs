//! Tenant configuration (API §1.3): typed settings kept inside the tenant record.

use serde::{Deserialize, Serialize};

use crate::api::extract::present;
use crate::error::{ApiError, ApiResult};
use crate::validate;

/// Settings a tenant tunes for itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Language of messages and documents, e.g. `zh-CN`.
    pub locale: String,
    /// Model used when a request names none.
    pub default_model: Option<String>,
    /// Store request payloads in logs (off by default: prompts may carry patient data).
    pub log_request_payloads: bool,
    /// Browser origins allowed to call the gateway (CORS); exact origins only.
    pub cors_allowed_origins: Vec<String>,
    /// Days access logs of this tenant are kept (1 to 3650).
    pub access_log_retention_days: u32,
    /// Where the tenant wants notifications (low balance, overage) sent.
    pub notification_email: Option<String>,
}

impl Default for TenantConfig {
    fn default() -> Self {
        Self {
            locale: "zh-CN".into(),
            default_model: None,
            log_request_payloads: false,
            cors_allowed_origins: Vec::new(),
            access_log_retention_days: 90,
            notification_email: None,
        }
    }
}

impl TenantConfig {
    pub fn validate(&self) -> ApiResult<()> {
        validate::locale("locale", &self.locale)?;
        if let Some(m) = &self.default_model {
            validate::model_name("default_model", m)?;
        }
        if self.cors_allowed_origins.len() > 50 {
            return Err(ApiError::invalid(
                "cors_allowed_origins",
                "at most 50 origins",
            ));
        }
        for (i, o) in self.cors_allowed_origins.iter().enumerate() {
            validate::origin(&format!("cors_allowed_origins[{i}]"), o)?;
        }
        if !(1..=3650).contains(&self.access_log_retention_days) {
            return Err(ApiError::invalid(
                "access_log_retention_days",
                "must be between 1 and 3650",
            ));
        }
        if let Some(e) = &self.notification_email {
            validate::email("notification_email", e)?;
        }
        Ok(())
    }
}

/// What `GET /api/tenants/{id}/config` returns: the settings plus the tenant's time zone,
/// which lives on the tenant record.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TenantConfigView {
    pub tenant_id: String,
    pub timezone: String,
    pub locale: String,
    pub default_model: Option<String>,
    pub log_request_payloads: bool,
    pub cors_allowed_origins: Vec<String>,
    pub access_log_retention_days: u32,
    pub notification_email: Option<String>,
}

impl TenantConfigView {
    pub fn new(tenant_id: &str, timezone: &str, c: &TenantConfig) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            timezone: timezone.to_owned(),
            locale: c.locale.clone(),
            default_model: c.default_model.clone(),
            log_request_payloads: c.log_request_payloads,
            cors_allowed_origins: c.cors_allowed_origins.clone(),
            access_log_retention_days: c.access_log_retention_days,
            notification_email: c.notification_email.clone(),
        }
    }
}

/// Body of `PUT /api/tenants/{id}/config`; omitted fields keep their value, `null` clears an
/// optional one.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantConfigUpdate {
    pub timezone: Option<String>,
    pub locale: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub default_model: Option<Option<String>>,
    pub log_request_payloads: Option<bool>,
    pub cors_allowed_origins: Option<Vec<String>>,
    pub access_log_retention_days: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    pub notification_email: Option<Option<String>>,
}

impl TenantConfigUpdate {
    pub fn apply_to(self, config: &mut TenantConfig) {
        if let Some(v) = self.locale {
            config.locale = v;
        }
        if let Some(v) = self.default_model {
            config.default_model = v;
        }
        if let Some(v) = self.log_request_payloads {
            config.log_request_payloads = v;
        }
        if let Some(v) = self.cors_allowed_origins {
            config.cors_allowed_origins = v;
        }
        if let Some(v) = self.access_log_retention_days {
            config.access_log_retention_days = v;
        }
        if let Some(v) = self.notification_email {
            config.notification_email = v;
        }
    }
}
