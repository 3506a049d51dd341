//! The model resource (API §3.1): the name clients send in `model`, and where and how the
//! gateway forwards it.

use async_trait::async_trait;
use medgate_config::{ModelEntry, Settings, UpstreamEntry};
use serde::{Deserialize, Serialize};

use super::input::ModelInput;
use super::parameters::ParameterRules;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::notifier::sealed::SealKey;
use crate::resource::{Crud, Resource, Scope};
use crate::state::AppState;
use crate::store::{resources, Tx};
use crate::tenant_models::TenantModel;

/// A model of the registry. Holds upstream credentials: the API shows [`ModelView`] instead.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Model {
    pub id: String,
    /// What clients send in `model` (unique), e.g. `gpt-4o`.
    pub name: String,
    pub display_name: String,
    pub provider: Provider,
    /// Upstream endpoints, chosen by weight.
    pub upstreams: Vec<Upstream>,
    /// The model name sent upstream.
    pub upstream_model: String,
    pub connect_timeout_ms: u64,
    /// Longest silence while waiting for the upstream (first byte, and between chunks).
    pub read_timeout_ms: u64,
    pub pricing: Pricing,
    /// Disabled models answer a clear error on the data plane.
    pub enabled: bool,
    /// Every tenant may use the model unless its tenant-model config disables it; otherwise
    /// only tenants whose config enables it.
    pub available_to_all_tenants: bool,
    /// Request parameter rules: defaults, bounds and forced values.
    pub parameters: ParameterRules,
    pub created_at: String,
    pub updated_at: String,
}

/// The kind of upstream API; a seam for providers other than OpenAI-compatible ones.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    #[default]
    OpenaiCompatible,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenaiCompatible => "openai_compatible",
        }
    }
}

/// One upstream endpoint as stored, with its credential sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Upstream {
    pub url: String,
    pub weight: u32,
    /// A key in plaintext: only between a request body and [`Model::seal_upstream_keys`] (and
    /// in rows written before keys were sealed, which the control plane seals at start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The key sealed with the server's [`SealKey`], bound to the model and this URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_sealed: Option<String>,
    /// Dedicated pool the upstream belongs to; None: the shared pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// Concurrent requests the upstream is sized for.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// PEM CA certificate(s) trusted for this `https://` upstream instead of the system roots.
    #[serde(default)]
    pub ca_pem: Option<String>,
}

/// The model's list price in integer minor units of `currency`, as shown in the catalogue.
/// What usage is charged comes from the versioned rates (`/api/billing/rates`), which have
/// sub-minor precision and an effective time; this field does not change them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    #[serde(default)]
    pub input_per_1k_tokens_minor: i64,
    #[serde(default)]
    pub output_per_1k_tokens_minor: i64,
    #[serde(default)]
    pub per_request_minor: i64,
    /// ISO 4217; default `CNY`.
    #[serde(default = "default_currency")]
    pub currency: String,
}

fn default_currency() -> String {
    "CNY".into()
}

impl Default for Pricing {
    fn default() -> Self {
        Self {
            input_per_1k_tokens_minor: 0,
            output_per_1k_tokens_minor: 0,
            per_request_minor: 0,
            currency: default_currency(),
        }
    }
}

/// A model as the API shows it: upstream credentials are write-only.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ModelView {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub provider: Provider,
    pub upstreams: Vec<UpstreamView>,
    pub upstream_model: String,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub pricing: Pricing,
    pub enabled: bool,
    pub available_to_all_tenants: bool,
    pub parameters: ParameterRules,
    pub created_at: String,
    pub updated_at: String,
}

/// An upstream as the API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UpstreamView {
    pub url: String,
    pub weight: u32,
    /// Whether an API key is stored (the key itself is never returned).
    pub has_api_key: bool,
    /// Dedicated pool the upstream belongs to; None: the shared pool.
    pub pool: Option<String>,
    /// Concurrent requests the upstream is sized for.
    pub max_concurrency: Option<u32>,
    /// CA certificate(s) trusted for the upstream instead of the system roots (PEM).
    pub ca_pem: Option<String>,
}

impl Upstream {
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some() || self.api_key_sealed.is_some()
    }
}

/// What a sealed upstream key is bound to: copied to another model or URL, it does not open.
fn key_context(model_id: &str, url: &str) -> String {
    format!("model-upstream-key\0{model_id}\0{url}")
}

impl Model {
    /// Whether an upstream holds a key in plaintext, which must be sealed before it is stored.
    pub fn has_plaintext_keys(&self) -> bool {
        self.upstreams.iter().any(|u| u.api_key.is_some())
    }

    /// Seals every plaintext upstream key (503 when the server has no secret to seal with).
    pub fn seal_upstream_keys(&mut self, settings: &Settings) -> ApiResult<()> {
        if !self.has_plaintext_keys() {
            return Ok(());
        }
        let seal = SealKey::from_settings(settings, "an upstream API key")?;
        for upstream in &mut self.upstreams {
            if let Some(plain) = upstream.api_key.take() {
                let context = key_context(&self.id, &upstream.url);
                upstream.api_key_sealed = Some(seal.seal_bound(&context, plain.as_bytes()));
            }
        }
        Ok(())
    }

    /// The plaintext of an upstream's key. A key that cannot be unsealed (the server secret
    /// changed) is left out with a warning: the upstream then gets requests without one.
    fn upstream_key(&self, upstream: &Upstream, seal: Option<&SealKey>) -> Option<String> {
        if let Some(plain) = &upstream.api_key {
            return Some(plain.clone());
        }
        let sealed = upstream.api_key_sealed.as_deref()?;
        let opened = seal
            .and_then(|k| k.unseal_bound(&key_context(&self.id, &upstream.url), sealed))
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if opened.is_none() {
            tracing::warn!(model = %self.name, url = %upstream.url, "the upstream API key cannot be unsealed with this server secret; set it again");
        }
        opened
    }

    /// The model as the data plane needs it, credentials unsealed with `seal`.
    pub fn snapshot_entry(&self, seal: Option<&SealKey>) -> ModelEntry {
        ModelEntry {
            id: self.id.clone(),
            name: self.name.clone(),
            enabled: self.enabled,
            provider: self.provider.as_str().to_owned(),
            upstreams: self
                .upstreams
                .iter()
                .map(|u| UpstreamEntry {
                    url: u.url.clone(),
                    weight: u.weight,
                    api_key: self.upstream_key(u, seal),
                    pool: u.pool.clone(),
                    max_concurrency: u.max_concurrency,
                    ca_pem: u.ca_pem.clone(),
                })
                .collect(),
            upstream_model: self.upstream_model.clone(),
            connect_timeout_ms: self.connect_timeout_ms,
            read_timeout_ms: self.read_timeout_ms,
            available_to_all_tenants: self.available_to_all_tenants,
            parameters: self.parameters.clone(),
            rates: Vec::new(),
        }
    }
}

impl Resource for Model {
    const KIND: &'static str = "model";
    const ID_PREFIX: &'static str = "mdl";
    const LABEL: &'static str = "model";
    const SCOPE: Scope = Scope::Platform;
    const AFFECTS_SNAPSHOT: bool = true;

    crate::resource_timestamps!();

    fn unique_key(&self) -> Option<String> {
        Some(self.name.clone())
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn status(&self) -> Option<String> {
        Some(if self.enabled { "enabled" } else { "disabled" }.to_owned())
    }
}

#[async_trait]
impl Crud for Model {
    type Create = ModelInput;
    type Update = ModelInput;
    type View = ModelView;
    const PATH: &'static str = "/api/models";
    const TAG: &'static str = "models";

    fn build(id: String, input: ModelInput, _principal: &Principal) -> ApiResult<Self> {
        input.into_model(id, None)
    }

    fn apply(&mut self, input: ModelInput) -> ApiResult<()> {
        *self = input.into_model(self.id.clone(), Some(self))?;
        Ok(())
    }

    fn seal_secrets(&mut self, state: &AppState) -> ApiResult<()> {
        self.seal_upstream_keys(state.settings())
    }

    fn view(&self) -> ModelView {
        ModelView {
            id: self.id.clone(),
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            provider: self.provider,
            upstreams: self
                .upstreams
                .iter()
                .map(|u| UpstreamView {
                    url: u.url.clone(),
                    weight: u.weight,
                    has_api_key: u.has_api_key(),
                    pool: u.pool.clone(),
                    max_concurrency: u.max_concurrency,
                    ca_pem: u.ca_pem.clone(),
                })
                .collect(),
            upstream_model: self.upstream_model.clone(),
            connect_timeout_ms: self.connect_timeout_ms,
            read_timeout_ms: self.read_timeout_ms,
            pricing: self.pricing.clone(),
            enabled: self.enabled,
            available_to_all_tenants: self.available_to_all_tenants,
            parameters: self.parameters.clone(),
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        }
    }

    /// A model name must not shadow a tenant's alias of another model: the data plane would
    /// resolve that tenant's requests differently from everyone else's.
    async fn check_references(&self, tx: &mut Tx) -> ApiResult<()> {
        let clash = resources::by_name(tx, TenantModel::KIND, &self.name, None)
            .await?
            .into_iter()
            .any(|row| row.ref_id.as_deref() != Some(self.id.as_str()));
        if clash {
            return Err(ApiError::conflict(
                "name_taken_by_alias",
                format!("a tenant uses {:?} as an alias of another model", self.name),
            ));
        }
        Ok(())
    }

    /// Tenant-model configs exist only for their model.
    async fn on_delete(&self, tx: &mut Tx) -> ApiResult<()> {
        resources::delete_refs(tx, TenantModel::KIND, &self.id).await?;
        Ok(())
    }
}
