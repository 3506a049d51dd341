//! Traffic protection in the snapshot (API §6.1, §6.2, §7.2): rate-limit rules, circuit
//! breakers, degradation rules, and the recovery commands that reset live breaker state.
//!
//! The rules are compiled by the control plane and enforced by every proxy; live state
//! (limiter counters, breaker states) never travels through the snapshot, it lives beside it
//! in each proxy (and in Redis for cluster-mode limits). Each rule checks itself with
//! `validate`, used by the management API (400 on a bad rule) and by the proxy (a snapshot
//! with a bad rule is refused whole).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

/// Everything about traffic protection, one field of the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectionEntry {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimitEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breakers: Vec<BreakerEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degradations: Vec<DegradationEntry>,
    /// Manual recovery commands (`POST /api/health/recovery`): target -> a counter bumped on
    /// every command. A proxy that sees a counter grow closes the matching breakers and
    /// un-ejects the matching upstream. Targets: a breaker id, `model:<name>` or
    /// `upstream:<label>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recoveries: BTreeMap<String, u64>,
    /// Tenants stopped by a hard overage cap (API §2.4): tenant id -> RFC 3339 UTC time the
    /// cap lifts (the end of its billing period). The proxy answers 429 `quota_exceeded`
    /// until then; a passed time is ignored.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quota_caps: BTreeMap<String, String>,
}

impl crate::Snapshot {
    /// Sets the protection rules (sorted by id, so equal content hashes equally) and
    /// re-stamps the hash.
    pub fn with_protection(mut self, mut protection: ProtectionEntry) -> Self {
        protection.rate_limits.sort_by(|a, b| a.id.cmp(&b.id));
        protection.breakers.sort_by(|a, b| a.id.cmp(&b.id));
        protection.degradations.sort_by(|a, b| a.id.cmp(&b.id));
        self.protection = protection;
        self.hash = self.content_hash();
        self
    }
}

impl ProtectionEntry {
    pub fn is_empty(&self) -> bool {
        self.rate_limits.is_empty()
            && self.breakers.is_empty()
            && self.degradations.is_empty()
            && self.recoveries.is_empty()
            && self.quota_caps.is_empty()
    }

    /// Checks every rule and that ids are unique.
    pub fn validate(&self) -> Result<(), RuleError> {
        let mut ids = HashSet::new();
        for rule in &self.rate_limits {
            rule.validate()?;
            if !ids.insert(rule.id.as_str()) {
                return Err(RuleError::new(
                    "id",
                    format!("duplicate rule id {}", rule.id),
                ));
            }
        }
        for rule in &self.breakers {
            rule.validate()?;
            if !ids.insert(rule.id.as_str()) {
                return Err(RuleError::new(
                    "id",
                    format!("duplicate rule id {}", rule.id),
                ));
            }
        }
        for rule in &self.degradations {
            rule.validate()?;
            if !ids.insert(rule.id.as_str()) {
                return Err(RuleError::new(
                    "id",
                    format!("duplicate rule id {}", rule.id),
                ));
            }
        }
        Ok(())
    }
}

/// A rule that does not make sense, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

impl RuleError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------------

/// One rate-limit rule (API §7.2).
///
/// The counter a request charges is chosen by `scope`: one counter for `global`, one per
/// tenant for `tenant`, per API key for `api_key`, per model for `model`, per route for
/// `route`, per (tenant, model) for `tenant_model`. `tenant_id` and `target` narrow which
/// requests the rule applies to: a rule with `tenant_id` applies only to that tenant's
/// traffic; `target` names the model (scopes `model`, `tenant_model`), the route id (`route`)
/// or the API key id (`api_key`) the rule is about, None meaning every one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitEntry {
    pub id: String,
    pub tenant_id: Option<String>,
    pub scope: LimitScope,
    pub target: Option<String>,
    pub metric: LimitMetric,
    pub window: LimitWindow,
    /// Requests or tokens per window.
    pub limit: u64,
    /// Most that may be spent at once; None means `limit`. A single request costing more is
    /// refused as non-retryable (it could never pass).
    pub burst: Option<u64>,
    pub mode: LimitMode,
    /// What a `cluster` rule does while Redis cannot be reached.
    pub on_store_error: StoreFailureMode,
    /// The limit each proxy enforces alone in `local_fallback` (e.g. limit / replicas); None
    /// means `limit`.
    pub fallback_limit: Option<u64>,
}

impl RateLimitEntry {
    /// The largest cost one request may have.
    pub fn capacity(&self) -> u64 {
        self.burst.unwrap_or(self.limit)
    }

    pub fn validate(&self) -> Result<(), RuleError> {
        if self.limit == 0 {
            return Err(RuleError::new("limit", "must be at least 1"));
        }
        if self.burst == Some(0) {
            return Err(RuleError::new("burst", "must be at least 1"));
        }
        if self.fallback_limit == Some(0) {
            return Err(RuleError::new("fallback_limit", "must be at least 1"));
        }
        let needs_target = matches!(self.scope, LimitScope::Route);
        if needs_target && self.target.is_none() {
            return Err(RuleError::new("target", "a route rule names its route id"));
        }
        if matches!(self.scope, LimitScope::Global) && self.target.is_some() {
            return Err(RuleError::new("target", "a global rule has no target"));
        }
        Ok(())
    }
}

/// Which counter a request charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    Global,
    Tenant,
    ApiKey,
    Model,
    Route,
    TenantModel,
}

/// What a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitMetric {
    Requests,
    /// Input plus output tokens: admitted on an estimate, reconciled with actual usage.
    Tokens,
}

/// The period `limit` is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitWindow {
    Second,
    Minute,
    Hour,
    Day,
}

impl LimitWindow {
    pub fn as_millis(self) -> u64 {
        match self {
            LimitWindow::Second => 1_000,
            LimitWindow::Minute => 60_000,
            LimitWindow::Hour => 3_600_000,
            LimitWindow::Day => 86_400_000,
        }
    }
}

/// Where the counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitMode {
    /// In each proxy's memory: with R replicas the cluster admits up to R x limit.
    Local,
    /// In Redis, shared by every proxy (exact cluster-wide).
    Cluster,
}

/// Behaviour of a cluster rule while Redis is unreachable.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailureMode {
    /// Admit (availability first).
    FailOpen,
    /// Refuse with 503.
    FailClosed,
    /// Enforce `fallback_limit` in the proxy's memory.
    #[default]
    LocalFallback,
}

// ---------------------------------------------------------------------------------------------
// Circuit breakers
// ---------------------------------------------------------------------------------------------

/// A circuit-breaker rule (API §6.1): Sentinel's rule model with resilience4j's half-open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerEntry {
    pub id: String,
    /// Applies only to this tenant's traffic when set.
    pub tenant_id: Option<String>,
    /// What the breaker protects.
    pub target: BreakerTarget,
    /// One breaker state per tenant (one tenant's failures never open another's breaker)
    /// instead of one shared state.
    pub per_tenant: bool,
    pub strategy: BreakerStrategy,
    /// Consecutive failures or errors in the window (counts), or a ratio in (0, 1].
    pub threshold: f64,
    /// A call is slow when its time to first byte/token exceeds this (`slow_ratio` only).
    pub slow_call_ms: Option<u64>,
    /// Calls in the window before a ratio or count can trip the breaker.
    pub min_requests: u32,
    /// Statistics window (tumbling), milliseconds.
    pub window_ms: u64,
    /// How long the breaker stays open before probing, milliseconds.
    pub open_ms: u64,
    /// With a value, each failed probe doubles the open time up to this cap (exponential
    /// backoff); None keeps `open_ms` fixed.
    pub max_open_ms: Option<u64>,
    /// Exactly this many calls are let through while half-open; all must succeed to close.
    pub half_open_probes: u32,
    /// A half-open breaker whose probes have not all reported within this time reopens.
    pub half_open_max_wait_ms: u64,
    /// Whether an upstream 429 counts as a failure (5xx, connect errors and timeouts always
    /// do; other 4xx and local refusals never do).
    pub count_429: bool,
}

impl BreakerEntry {
    pub fn validate(&self) -> Result<(), RuleError> {
        if self.target.name.trim().is_empty() {
            return Err(RuleError::new("target.name", "must not be empty"));
        }
        match self.strategy {
            BreakerStrategy::ErrorRatio | BreakerStrategy::SlowRatio => {
                if !(self.threshold > 0.0 && self.threshold <= 1.0) {
                    return Err(RuleError::new(
                        "threshold",
                        "a ratio must be greater than 0 and at most 1",
                    ));
                }
            }
            BreakerStrategy::ConsecutiveFailures | BreakerStrategy::ErrorCount => {
                if !(self.threshold >= 1.0 && self.threshold.fract() == 0.0) {
                    return Err(RuleError::new(
                        "threshold",
                        "a count must be a whole number of at least 1",
                    ));
                }
            }
        }
        if self.strategy == BreakerStrategy::SlowRatio && self.slow_call_ms.unwrap_or(0) == 0 {
            return Err(RuleError::new(
                "slow_call_ms",
                "the slow_ratio strategy needs a positive slow_call_ms",
            ));
        }
        if self.min_requests == 0 {
            return Err(RuleError::new("min_requests", "must be at least 1"));
        }
        if self.window_ms == 0 {
            return Err(RuleError::new("window_ms", "must be positive"));
        }
        if self.open_ms == 0 {
            return Err(RuleError::new("open_ms", "must be positive"));
        }
        if self.max_open_ms.is_some_and(|m| m < self.open_ms) {
            return Err(RuleError::new("max_open_ms", "must be at least open_ms"));
        }
        if self.half_open_probes == 0 {
            return Err(RuleError::new("half_open_probes", "must be at least 1"));
        }
        if self.half_open_max_wait_ms == 0 {
            return Err(RuleError::new("half_open_max_wait_ms", "must be positive"));
        }
        Ok(())
    }
}

/// What a breaker sits in front of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerTarget {
    pub kind: BreakerTargetKind,
    /// Model name, upstream label (its URL), or route id.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerTargetKind {
    Model,
    Upstream,
    Route,
}

/// When a breaker trips (compared with `>=`, resilience4j's semantics: a threshold of 0.5
/// trips at exactly half the calls failing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerStrategy {
    ConsecutiveFailures,
    ErrorRatio,
    ErrorCount,
    SlowRatio,
}

// ---------------------------------------------------------------------------------------------
// Degradation
// ---------------------------------------------------------------------------------------------

/// A degradation rule (API §6.2): what to serve instead of a model that cannot be used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DegradationEntry {
    pub id: String,
    /// Applies only to this tenant's traffic when set.
    pub tenant_id: Option<String>,
    /// The model name the rule protects.
    pub model: String,
    pub trigger: DegradationTrigger,
    /// Models tried in order (each only while its own breakers admit); the request body is
    /// rewritten for the model that serves it.
    pub fallback_models: Vec<String>,
    /// What to answer when no fallback model can serve; None answers 503 with Retry-After.
    pub final_action: Option<FinalAction>,
    /// Lower runs first when several rules match.
    pub priority: i32,
}

impl DegradationEntry {
    pub fn validate(&self) -> Result<(), RuleError> {
        if self.model.trim().is_empty() {
            return Err(RuleError::new("model", "must not be empty"));
        }
        if self.fallback_models.iter().any(|m| m == &self.model) {
            return Err(RuleError::new(
                "fallback_models",
                "a model cannot be its own fallback",
            ));
        }
        if let DegradationTrigger::Latency {
            threshold_ms,
            window_ms,
            min_requests,
        } = self.trigger
        {
            if threshold_ms == 0 || window_ms == 0 || min_requests == 0 {
                return Err(RuleError::new(
                    "trigger",
                    "threshold_ms, window_ms and min_requests must be positive",
                ));
            }
        }
        match &self.final_action {
            Some(FinalAction::StaticResponse { status, .. }) if !(200..=599).contains(status) => {
                Err(RuleError::new(
                    "final_action.status",
                    "must be an HTTP status",
                ))
            }
            Some(FinalAction::Reject { status, .. }) if !(400..=599).contains(status) => Err(
                RuleError::new("final_action.status", "must be a 4xx or 5xx status"),
            ),
            _ => Ok(()),
        }
    }
}

/// What puts a model into degraded service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DegradationTrigger {
    /// A breaker of the model (or of the upstream chosen for it) refuses the call.
    BreakerOpen,
    /// The model's mean latency over the last window is above the threshold.
    Latency {
        threshold_ms: u64,
        window_ms: u64,
        min_requests: u32,
    },
    /// Always on while the rule exists (an operator switch).
    Manual,
}

/// The answer when no fallback model can serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FinalAction {
    /// A fixed body (JSON text), e.g. a canned chat completion.
    StaticResponse { status: u16, body: String },
    /// An error with a Retry-After.
    Reject { status: u16, retry_after_secs: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> BreakerEntry {
        BreakerEntry {
            id: "cb1".into(),
            tenant_id: None,
            target: BreakerTarget {
                kind: BreakerTargetKind::Model,
                name: "m".into(),
            },
            per_tenant: false,
            strategy: BreakerStrategy::ConsecutiveFailures,
            threshold: 5.0,
            slow_call_ms: None,
            min_requests: 1,
            window_ms: 10_000,
            open_ms: 10_000,
            max_open_ms: None,
            half_open_probes: 1,
            half_open_max_wait_ms: 30_000,
            count_429: false,
        }
    }

    #[test]
    fn sentinel_style_invalid_breakers_are_refused() {
        breaker().validate().expect("valid");
        let bad = [
            BreakerEntry {
                open_ms: 0,
                ..breaker()
            },
            BreakerEntry {
                strategy: BreakerStrategy::ErrorRatio,
                threshold: 1.5,
                ..breaker()
            },
            BreakerEntry {
                min_requests: 0,
                ..breaker()
            },
            BreakerEntry {
                threshold: 2.5,
                ..breaker()
            },
            BreakerEntry {
                strategy: BreakerStrategy::SlowRatio,
                threshold: 0.5,
                slow_call_ms: None,
                ..breaker()
            },
        ];
        for rule in bad {
            assert!(rule.validate().is_err(), "{rule:?}");
        }
    }

    #[test]
    fn empty_protection_stays_out_of_the_json() {
        let text = serde_json::to_string(&ProtectionEntry::default()).expect("json");
        assert_eq!(text, "{}");
    }
}
