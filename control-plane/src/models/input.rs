//! The body of model create and update, and the rules a model must follow.

use std::collections::HashSet;

use serde::Deserialize;

use super::model::{Model, Pricing, Provider, Upstream};
use super::parameters::{self, ParameterRules};
use crate::api::extract::present;
use crate::error::{ApiError, ApiResult};
use crate::validate;

pub const MAX_UPSTREAMS: usize = 16;
pub const MAX_WEIGHT: u32 = 1000;
pub const MAX_POOL_LEN: usize = 64;
pub const MAX_CONCURRENCY: u32 = 100_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_READ_TIMEOUT_MS: u64 = 300_000;

/// Body of `POST /api/models` and `PUT /api/models/{id}`.
///
/// An update replaces the model's fields; omitted optional fields take their defaults, except
/// the two that have their own endpoints and keep their value when omitted: `enabled`
/// (`/toggle`) and `parameters` (`/parameters`). Upstream API keys are write-only: on update,
/// an upstream whose `api_key` is omitted keeps the key stored for the same URL, and
/// `"api_key": null` removes it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelInput {
    /// What clients send in `model`: letters, digits and `-._:/`, unique.
    pub name: String,
    /// Default: the name.
    pub display_name: Option<String>,
    #[serde(default)]
    pub provider: Provider,
    /// 1 to 16 endpoints with distinct URLs; at least one with a positive weight.
    pub upstreams: Vec<UpstreamInput>,
    /// The model name sent upstream; default: the name.
    pub upstream_model: Option<String>,
    /// 1 to 120000; default 5000.
    pub connect_timeout_ms: Option<u64>,
    /// 1 to 3600000; default 300000.
    pub read_timeout_ms: Option<u64>,
    #[serde(default)]
    pub pricing: Pricing,
    /// Default true on create; kept when omitted on update.
    pub enabled: Option<bool>,
    /// Default true.
    pub available_to_all_tenants: Option<bool>,
    /// Default none on create; kept when omitted on update.
    pub parameters: Option<ParameterRules>,
}

/// One upstream endpoint in a model body.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamInput {
    /// Base URL of an OpenAI-compatible API, e.g. `https://api.example.com/v1`.
    pub url: String,
    /// 0 to 1000 (default 1); 0 keeps the endpoint configured but sends it nothing.
    pub weight: Option<u32>,
    /// Sent upstream as a bearer token; write-only. Omitted on update: keeps the key stored
    /// for the same URL; `null`: no key.
    #[serde(default, deserialize_with = "present")]
    pub api_key: Option<Option<String>>,
    /// Dedicated pool the upstream belongs to (tenants whose isolation policy names
    /// `dedicated:<pool>` use it): 1 to 64 of `a-z0-9_-`. Omitted: the shared pool.
    pub pool: Option<String>,
    /// Concurrent requests the upstream is sized for, 1 to 100000 (tenants' share caps are
    /// computed from it). Omitted: unknown.
    pub max_concurrency: Option<u32>,
    /// PEM CA certificate(s) that sign an `https://` upstream's certificate, trusted instead
    /// of the system roots. Omitted: the system roots.
    pub ca_pem: Option<String>,
}

impl ModelInput {
    /// The model this body describes; `current` is the model being updated, if any.
    pub fn into_model(self, id: String, current: Option<&Model>) -> ApiResult<Model> {
        validate::model_name("name", &self.name)?;
        let display_name = self.display_name.unwrap_or_else(|| self.name.clone());
        validate::text("display_name", &display_name, 1, 200)?;
        let upstream_model = self.upstream_model.unwrap_or_else(|| self.name.clone());
        validate::model_name("upstream_model", &upstream_model)?;
        let upstreams = upstreams(self.upstreams, current.map(|m| m.upstreams.as_slice()))?;
        let connect_timeout_ms = self
            .connect_timeout_ms
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
        if !(1..=120_000).contains(&connect_timeout_ms) {
            return Err(ApiError::invalid(
                "connect_timeout_ms",
                "must be between 1 and 120000",
            ));
        }
        let read_timeout_ms = self.read_timeout_ms.unwrap_or(DEFAULT_READ_TIMEOUT_MS);
        if !(1..=3_600_000).contains(&read_timeout_ms) {
            return Err(ApiError::invalid(
                "read_timeout_ms",
                "must be between 1 and 3600000",
            ));
        }
        validate_pricing(&self.pricing)?;
        let parameters = match (self.parameters, current) {
            (Some(p), _) => p,
            (None, Some(m)) => m.parameters.clone(),
            (None, None) => ParameterRules::new(),
        };
        parameters::validate("parameters", &parameters)?;
        Ok(Model {
            id,
            name: self.name,
            display_name,
            provider: self.provider,
            upstreams,
            upstream_model,
            connect_timeout_ms,
            read_timeout_ms,
            pricing: self.pricing,
            enabled: self.enabled.or(current.map(|m| m.enabled)).unwrap_or(true),
            available_to_all_tenants: self.available_to_all_tenants.unwrap_or(true),
            parameters,
            created_at: current.map(|m| m.created_at.clone()).unwrap_or_default(),
            updated_at: current.map(|m| m.updated_at.clone()).unwrap_or_default(),
        })
    }
}

fn upstreams(inputs: Vec<UpstreamInput>, current: Option<&[Upstream]>) -> ApiResult<Vec<Upstream>> {
    if inputs.is_empty() || inputs.len() > MAX_UPSTREAMS {
        return Err(ApiError::invalid(
            "upstreams",
            format!("must have 1 to {MAX_UPSTREAMS} endpoints"),
        ));
    }
    let mut urls = HashSet::new();
    let mut out = Vec::with_capacity(inputs.len());
    for (i, u) in inputs.into_iter().enumerate() {
        let field = |part: &str| format!("upstreams[{i}].{part}");
        validate::http_url(&field("url"), &u.url)?;
        if !urls.insert(u.url.clone()) {
            return Err(ApiError::invalid(
                &field("url"),
                "appears twice; each endpoint once",
            ));
        }
        let weight = u.weight.unwrap_or(1);
        if weight > MAX_WEIGHT {
            return Err(ApiError::invalid(
                &field("weight"),
                format!("must be between 0 and {MAX_WEIGHT}"),
            ));
        }
        // Omitted: the key stored for the same URL, as stored (sealed).
        let (api_key, api_key_sealed) = match u.api_key {
            Some(key) => (key, None),
            None => current
                .and_then(|c| c.iter().find(|o| o.url == u.url))
                .map(|o| (o.api_key.clone(), o.api_key_sealed.clone()))
                .unwrap_or_default(),
        };
        if let Some(key) = &api_key {
            validate::text(&field("api_key"), key, 1, 4096)?;
        }
        if let Some(pool) = &u.pool {
            let ok = (1..=MAX_POOL_LEN).contains(&pool.len())
                && pool.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok {
                return Err(ApiError::invalid(
                    &field("pool"),
                    format!("must be 1 to {MAX_POOL_LEN} of a-z, 0-9, _ and -"),
                ));
            }
        }
        if u.max_concurrency
            .is_some_and(|c| !(1..=MAX_CONCURRENCY).contains(&c))
        {
            return Err(ApiError::invalid(
                &field("max_concurrency"),
                format!("must be between 1 and {MAX_CONCURRENCY}"),
            ));
        }
        if let Some(ca) = &u.ca_pem {
            validate::upstream_ca(&field("ca_pem"), &u.url, ca)?;
        }
        out.push(Upstream {
            url: u.url,
            weight,
            api_key,
            api_key_sealed,
            pool: u.pool,
            max_concurrency: u.max_concurrency,
            ca_pem: u.ca_pem,
        });
    }
    if !out.iter().any(|u| u.weight > 0) {
        return Err(ApiError::invalid(
            "upstreams",
            "at least one endpoint needs a weight above 0",
        ));
    }
    Ok(out)
}

fn validate_pricing(p: &Pricing) -> ApiResult<()> {
    validate::non_negative_money(
        "pricing.input_per_1k_tokens_minor",
        p.input_per_1k_tokens_minor,
    )?;
    validate::non_negative_money(
        "pricing.output_per_1k_tokens_minor",
        p.output_per_1k_tokens_minor,
    )?;
    validate::non_negative_money("pricing.per_request_minor", p.per_request_minor)?;
    validate::currency("pricing.currency", &p.currency)
}
