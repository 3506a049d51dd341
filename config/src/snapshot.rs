//! The snapshot: everything the data plane needs, compiled by the control plane into one
//! immutable, versioned value (DESIGN.md §3.1).
//!
//! Later issues add models, keys, routes, limits and breakers; the rules stay the same: the
//! proxy applies a snapshot whole or not at all, and `hash` lets both sides check they hold the
//! same content.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::protection::{ProtectionEntry, RuleError};
use crate::routing::{DomainEntry, RouteEntry, RoutingError};

/// The compiled configuration of the data plane at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Monotonically increasing; bumped by every mutation that changes the snapshot.
    pub version: u64,
    /// SHA-256 (hex) of the canonical JSON of everything but `version` and `hash`.
    pub hash: String,
    pub tenants: Vec<TenantEntry>,
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    #[serde(default)]
    pub api_keys: Vec<ApiKeyEntry>,
    #[serde(default)]
    pub tenant_models: Vec<TenantModelEntry>,
    #[serde(default)]
    pub gateway: GatewayEntry,
    /// Enabled generic reverse-proxy routes (API §7.1). Left out of the JSON when empty, like
    /// `domains`, so proxies of a build without routes still accept such snapshots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteEntry>,
    /// Verified custom domains, each mapping a Host to its tenant (API §8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<DomainEntry>,
    /// Rate limits, circuit breakers, degradation rules, recovery commands (API §6, §7.2).
    #[serde(default, skip_serializing_if = "ProtectionEntry::is_empty")]
    pub protection: ProtectionEntry,
}

/// What the data plane knows about one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    pub id: String,
    pub code: String,
    pub status: TenantStatus,
    /// Plan quotas in force (None when the tenant has no plan).
    pub quotas: Option<PlanQuotas>,
    /// Models the plan allows; empty means every enabled model.
    pub allowed_models: Vec<String>,
    /// Request payload logging (off unless the tenant opted in).
    pub log_request_payloads: bool,
    /// Origins allowed for browser calls (CORS).
    pub cors_allowed_origins: Vec<String>,
    /// Compute isolation (bulkheads, network allowlist) from the tenant's isolation policy.
    pub isolation: Option<IsolationEntry>,
}

/// A tenant's lifecycle state: `pending -> active <-> suspended -> terminated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Pending,
    Active,
    Suspended,
    Terminated,
}

impl TenantStatus {
    /// Only active tenants may send traffic.
    pub fn may_send_traffic(self) -> bool {
        self == TenantStatus::Active
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Pending => "pending",
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Terminated => "terminated",
        }
    }
}

/// Per-tenant quotas from the tenant's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanQuotas {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub monthly_tokens: Option<u64>,
    pub max_api_keys: Option<u64>,
}

/// Compute isolation for one tenant, as the data plane enforces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IsolationEntry {
    pub policy_id: String,
    pub max_concurrent_requests: Option<u32>,
    pub max_concurrent_per_model: BTreeMap<String, u32>,
    pub max_queue_depth: Option<u32>,
    pub queue_timeout_ms: Option<u64>,
    pub max_share_of_upstream_pct: Option<u8>,
    pub allowed_cidrs: Vec<String>,
    /// Upstreams of this pool (`UpstreamEntry::pool`) serve the tenant; None: the shared pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated_pool: Option<String>,
    /// Whether the tenant may use the shared pool when its dedicated pool cannot serve.
    #[serde(default, skip_serializing_if = "is_false")]
    pub spillover_to_shared: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A model clients can call, and where the gateway sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub id: String,
    /// The name clients put in `model` (unique), e.g. `gpt-4o`.
    pub name: String,
    pub enabled: bool,
    /// `openai_compatible` is the only provider type so far.
    pub provider: String,
    /// Upstream endpoints, chosen by weight.
    pub upstreams: Vec<UpstreamEntry>,
    /// The model name sent upstream (rewritten into the body).
    pub upstream_model: String,
    pub connect_timeout_ms: u64,
    /// Longest silence while waiting for the upstream (first byte, and between chunks).
    pub read_timeout_ms: u64,
    /// Whether every tenant may use the model unless its tenant-model config disables it.
    pub available_to_all_tenants: bool,
    /// Request parameter rules (defaults, bounds, forced values).
    pub parameters: BTreeMap<String, ParameterRule>,
    /// The latest rate versions (by `effective_from`), to price a request's estimate before
    /// forwarding it (tenants on a spending limit); empty when the model is not priced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<crate::funds::RateEntry>,
}

/// One upstream endpoint of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamEntry {
    /// Base URL of an OpenAI-compatible API, e.g. `https://api.example.com/v1`.
    pub url: String,
    pub weight: u32,
    /// Sent upstream as a bearer token; never returned by the management API.
    pub api_key: Option<String>,
    /// Dedicated pool this upstream belongs to (only tenants of that pool use it); None: the
    /// shared pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Concurrent requests the upstream is sized for; tenants' share caps
    /// (`max_share_of_upstream_pct`) are computed from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// PEM CA certificate(s) trusted for an `https://` upstream instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// How one request parameter (e.g. `max_tokens`, `temperature`) is treated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParameterRule {
    /// Used when the request does not set the parameter.
    pub default: Option<serde_json::Value>,
    /// Inclusive numeric bounds.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Always sent, whatever the request says.
    pub forced: Option<serde_json::Value>,
    /// What to do with an out-of-bounds value.
    #[serde(default)]
    pub on_violation: OnViolation,
}

/// Out-of-bounds handling.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnViolation {
    /// Bring the value inside the bounds.
    #[default]
    Clamp,
    /// Refuse the request with 422.
    Reject,
}

/// An API key as the data plane checks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    pub id: String,
    pub tenant_id: String,
    /// Visible prefix, e.g. `mg_k7f3a9c2e1`.
    pub prefix: String,
    /// SHA-256 (hex) of every secret currently accepted; a rotated-out secret stays until its
    /// `valid_until`.
    pub secrets: Vec<KeySecret>,
    /// RFC 3339; the key is refused from then on.
    pub expires_at: Option<String>,
    /// Model names the key may call; empty means any the tenant may use.
    pub allowed_models: Vec<String>,
}

/// One accepted secret of a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySecret {
    pub sha256: String,
    /// RFC 3339; None for the current secret.
    pub valid_until: Option<String>,
}

/// A tenant's configuration of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantModelEntry {
    pub tenant_id: String,
    pub model_id: String,
    pub enabled: bool,
    /// Another name the tenant's clients may use for the model.
    pub alias: Option<String>,
    /// Overrides of the model's parameter rules.
    pub parameters: BTreeMap<String, ParameterRule>,
}

/// Gateway-wide settings of the data plane (`GET/PUT /api/gateway/config`).
///
/// Listener addresses and thread counts are process settings (`proxy.*`), not part of the
/// snapshot: a running Pingora server cannot rebind, so changing them needs a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayEntry {
    /// Largest inference request body, bytes.
    pub max_body_bytes: u64,
    /// Fraction of successful requests written to the access log (errors always are).
    pub access_log_sample_rate: f64,
    /// Connect timeout towards upstreams that set none of their own (the management API
    /// behind the proxy, and routes without a timeout), milliseconds.
    ///
    /// Left out of the JSON when at its default (as is the read timeout), so a snapshot saved
    /// by a build without these fields keeps its content hash.
    #[serde(
        default = "default_connect_timeout_ms",
        skip_serializing_if = "is_default_connect_timeout"
    )]
    pub upstream_connect_timeout_ms: u64,
    /// Longest silence from such an upstream (first byte, and between chunks), milliseconds.
    #[serde(
        default = "default_read_timeout_ms",
        skip_serializing_if = "is_default_read_timeout"
    )]
    pub upstream_read_timeout_ms: u64,
}

/// Defaults of [`GatewayEntry`], also the bounds the control plane validates against.
impl GatewayEntry {
    pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
    pub const MIN_MAX_BODY_BYTES: u64 = 1024;
    pub const MAX_MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;
    pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
    pub const MAX_CONNECT_TIMEOUT_MS: u64 = 120_000;
    pub const DEFAULT_READ_TIMEOUT_MS: u64 = 60_000;
    pub const MAX_READ_TIMEOUT_MS: u64 = 3_600_000;
}

impl GatewayEntry {
    /// The bounds the management API enforces, checked again by the data plane (a static
    /// gateway file is written by hand).
    pub fn validate(&self) -> Result<(), SnapshotError> {
        let bad = |field, message| Err(SnapshotError::BadGateway { field, message });
        if !(Self::MIN_MAX_BODY_BYTES..=Self::MAX_MAX_BODY_BYTES).contains(&self.max_body_bytes) {
            return bad("max_body_bytes", "must be between 1 KiB and 100 MiB");
        }
        if !(0.0..=1.0).contains(&self.access_log_sample_rate) {
            return bad("access_log_sample_rate", "must be between 0 and 1");
        }
        if !(1..=Self::MAX_CONNECT_TIMEOUT_MS).contains(&self.upstream_connect_timeout_ms) {
            return bad(
                "upstream_connect_timeout_ms",
                "must be between 1 and 120000",
            );
        }
        if !(1..=Self::MAX_READ_TIMEOUT_MS).contains(&self.upstream_read_timeout_ms) {
            return bad("upstream_read_timeout_ms", "must be between 1 and 3600000");
        }
        Ok(())
    }
}

fn default_connect_timeout_ms() -> u64 {
    GatewayEntry::DEFAULT_CONNECT_TIMEOUT_MS
}

fn default_read_timeout_ms() -> u64 {
    GatewayEntry::DEFAULT_READ_TIMEOUT_MS
}

fn is_default_connect_timeout(ms: &u64) -> bool {
    *ms == GatewayEntry::DEFAULT_CONNECT_TIMEOUT_MS
}

fn is_default_read_timeout(ms: &u64) -> bool {
    *ms == GatewayEntry::DEFAULT_READ_TIMEOUT_MS
}

impl Default for GatewayEntry {
    fn default() -> Self {
        Self {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            access_log_sample_rate: 1.0,
            upstream_connect_timeout_ms: Self::DEFAULT_CONNECT_TIMEOUT_MS,
            upstream_read_timeout_ms: Self::DEFAULT_READ_TIMEOUT_MS,
        }
    }
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("snapshot hash mismatch: carries {carried}, content hashes to {computed}")]
    HashMismatch { carried: String, computed: String },
    #[error("duplicate tenant id {0}")]
    DuplicateTenant(String),
    #[error("duplicate tenant code {0}")]
    DuplicateTenantCode(String),
    #[error("snapshot version must be at least 1")]
    ZeroVersion,
    #[error("duplicate model name {0}")]
    DuplicateModel(String),
    #[error("model {0} has no upstream with a positive weight")]
    NoUpstream(String),
    #[error("model {model}: upstream URL {url:?} must be http:// or https://")]
    BadUpstreamUrl { model: String, url: String },
    #[error("api key {0} belongs to no tenant of the snapshot")]
    OrphanKey(String),
    #[error("duplicate api key id {0}")]
    DuplicateKey(String),
    #[error(transparent)]
    Routing(#[from] RoutingError),
    #[error("protection rule {0}")]
    Protection(#[from] RuleError),
    #[error("gateway.{field}: {message}")]
    BadGateway {
        field: &'static str,
        message: &'static str,
    },
}

impl Snapshot {
    /// Builds a snapshot of tenants only and stamps its content hash.
    pub fn new(version: u64, tenants: Vec<TenantEntry>) -> Self {
        Self::from_parts(
            version,
            tenants,
            Vec::new(),
            Vec::new(),
            Vec::new(),
            GatewayEntry::default(),
        )
    }

    /// Builds a snapshot from all its parts (sorted, so equal content hashes equally).
    pub fn from_parts(
        version: u64,
        mut tenants: Vec<TenantEntry>,
        mut models: Vec<ModelEntry>,
        mut api_keys: Vec<ApiKeyEntry>,
        mut tenant_models: Vec<TenantModelEntry>,
        gateway: GatewayEntry,
    ) -> Self {
        tenants.sort_by(|a, b| a.id.cmp(&b.id));
        models.sort_by(|a, b| a.id.cmp(&b.id));
        api_keys.sort_by(|a, b| a.id.cmp(&b.id));
        tenant_models.sort_by(|a, b| (&a.tenant_id, &a.model_id).cmp(&(&b.tenant_id, &b.model_id)));
        let mut snapshot = Self {
            version,
            hash: String::new(),
            tenants,
            models,
            api_keys,
            tenant_models,
            gateway,
            routes: Vec::new(),
            domains: Vec::new(),
            protection: ProtectionEntry::default(),
        };
        snapshot.hash = snapshot.content_hash();
        snapshot
    }

    /// SHA-256 over the canonical JSON of the content (version and hash excluded), so two
    /// compilations of the same store state hash the same.
    pub fn content_hash(&self) -> String {
        let mut content = serde_json::json!({
            "tenants": self.tenants,
            "models": self.models,
            "api_keys": self.api_keys,
            "tenant_models": self.tenant_models,
            "gateway": self.gateway,
        });
        // Hashed only when present, so snapshots saved before routes existed keep their hash.
        if !self.routes.is_empty() {
            content["routes"] = serde_json::json!(self.routes);
        }
        if !self.domains.is_empty() {
            content["domains"] = serde_json::json!(self.domains);
        }
        if !self.protection.is_empty() {
            content["protection"] = serde_json::json!(self.protection);
        }
        // serde_json maps are ordered (BTreeMap) without the preserve_order feature, and
        // structs serialize in declaration order: the text is canonical for our types.
        let text = serde_json::to_string(&content).unwrap_or_default();
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// Checks the snapshot as a whole; the proxy refuses it on any error.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        if self.version == 0 {
            return Err(SnapshotError::ZeroVersion);
        }
        let computed = self.content_hash();
        if computed != self.hash {
            return Err(SnapshotError::HashMismatch {
                carried: self.hash.clone(),
                computed,
            });
        }
        let mut ids = HashSet::new();
        let mut codes = HashSet::new();
        for tenant in &self.tenants {
            if !ids.insert(tenant.id.as_str()) {
                return Err(SnapshotError::DuplicateTenant(tenant.id.clone()));
            }
            if !codes.insert(tenant.code.as_str()) {
                return Err(SnapshotError::DuplicateTenantCode(tenant.code.clone()));
            }
        }
        let mut names = HashSet::new();
        for model in &self.models {
            if !names.insert(model.name.as_str()) {
                return Err(SnapshotError::DuplicateModel(model.name.clone()));
            }
            if model.enabled && !model.upstreams.iter().any(|u| u.weight > 0) {
                return Err(SnapshotError::NoUpstream(model.name.clone()));
            }
            for u in &model.upstreams {
                if !(u.url.starts_with("http://") || u.url.starts_with("https://")) {
                    return Err(SnapshotError::BadUpstreamUrl {
                        model: model.name.clone(),
                        url: u.url.clone(),
                    });
                }
            }
        }
        self.gateway.validate()?;
        let mut key_ids = HashSet::new();
        for key in &self.api_keys {
            if !key_ids.insert(key.id.as_str()) {
                return Err(SnapshotError::DuplicateKey(key.id.clone()));
            }
            if !ids.contains(key.tenant_id.as_str()) {
                return Err(SnapshotError::OrphanKey(key.id.clone()));
            }
        }
        crate::routing::validate(self)?;
        self.protection.validate()?;
        Ok(())
    }

    pub fn tenant(&self, id: &str) -> Option<&TenantEntry> {
        self.tenants.iter().find(|t| t.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str, code: &str) -> TenantEntry {
        TenantEntry {
            id: id.into(),
            code: code.into(),
            status: TenantStatus::Active,
            quotas: None,
            allowed_models: vec![],
            log_request_payloads: false,
            cors_allowed_origins: vec![],
            isolation: None,
        }
    }

    #[test]
    fn hash_ignores_version_and_input_order() {
        let a = Snapshot::new(1, vec![tenant("t1", "a"), tenant("t2", "b")]);
        let b = Snapshot::new(7, vec![tenant("t2", "b"), tenant("t1", "a")]);
        assert_eq!(a.hash, b.hash);
        a.validate().expect("valid");
    }

    #[test]
    fn tampered_content_is_refused() {
        let mut s = Snapshot::new(1, vec![tenant("t1", "a")]);
        s.tenants[0].status = TenantStatus::Suspended;
        assert!(matches!(
            s.validate(),
            Err(SnapshotError::HashMismatch { .. })
        ));
    }

    #[test]
    fn duplicates_are_refused() {
        let s = Snapshot::new(1, vec![tenant("t1", "a"), tenant("t1", "b")]);
        assert_eq!(
            s.validate(),
            Err(SnapshotError::DuplicateTenant("t1".into()))
        );
        let s = Snapshot::new(1, vec![tenant("t1", "a"), tenant("t2", "a")]);
        assert_eq!(
            s.validate(),
            Err(SnapshotError::DuplicateTenantCode("a".into()))
        );
    }

    #[test]
    fn gateway_settings_out_of_bounds_are_refused() {
        let mut s = Snapshot::new(1, vec![tenant("t1", "a")]);
        s.gateway.access_log_sample_rate = f64::NAN;
        s.hash = s.content_hash();
        assert!(matches!(
            s.validate(),
            Err(SnapshotError::BadGateway {
                field: "access_log_sample_rate",
                ..
            })
        ));
        s.gateway = GatewayEntry {
            max_body_bytes: 10,
            ..GatewayEntry::default()
        };
        s.hash = s.content_hash();
        assert!(s.validate().is_err());
        s.gateway = GatewayEntry::default();
        s.hash = s.content_hash();
        s.validate().expect("defaults are valid");
    }

    #[test]
    fn gateway_entries_without_timeouts_get_the_defaults() {
        let g: GatewayEntry =
            serde_json::from_str(r#"{"max_body_bytes": 2048, "access_log_sample_rate": 0.5}"#)
                .expect("older snapshots still parse");
        assert_eq!(
            g.upstream_read_timeout_ms,
            GatewayEntry::DEFAULT_READ_TIMEOUT_MS
        );
        let text = serde_json::to_string(&GatewayEntry::default()).expect("json");
        assert!(
            !text.contains("timeout"),
            "defaults stay out of the hashed JSON: {text}"
        );
    }

    #[test]
    fn only_active_tenants_send_traffic() {
        assert!(TenantStatus::Active.may_send_traffic());
        for s in [
            TenantStatus::Pending,
            TenantStatus::Suspended,
            TenantStatus::Terminated,
        ] {
            assert!(!s.may_send_traffic(), "{s:?}");
        }
    }
}
