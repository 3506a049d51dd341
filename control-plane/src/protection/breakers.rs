//! Circuit-breaker rules (API §6.1): `/api/circuit-breakers`.
//!
//! Sentinel's rule model with resilience4j's half-open state: the breaker trips on
//! consecutive failures, an error count, an error ratio or a slow-call ratio over a window,
//! stays open for `open_ms` (doubling per failed probe up to `max_open_ms`), then lets
//! `half_open_probes` calls through. The target (a model, an upstream URL or a route) must
//! exist. Views carry `live`: the state the proxies report (see [`super::live`]).

use async_trait::async_trait;
use medgate_config::{BreakerEntry, BreakerStrategy, BreakerTarget, BreakerTargetKind, RuleError};
use serde::{Deserialize, Serialize};

use super::live::{self, BreakerLive};
use super::refs::{self, require};
use super::rules::{RuleKind, RuleQuery, Stamped};
use super::{rule_error, within, MAX_MS};
use crate::api::extract::present;
use crate::api::pagination::PageQuery;
use crate::error::ApiResult;
use crate::store::{Store, Tx};
use crate::validate;

/// Largest count threshold, `min_requests` and `half_open_probes`.
const MAX_COUNT: u64 = 1_000_000;

/// Body of `POST /api/circuit-breakers` and `PUT /api/circuit-breakers/{id}`: the whole
/// rule; omitted fields take their defaults.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerInput {
    /// The owning tenant: the breaker then counts only that tenant's traffic. Tenant admins
    /// get their own tenant when omitted; platform admins create a platform rule by omitting
    /// it or sending null. On update: omitted, or the rule's own.
    #[serde(default, deserialize_with = "present")]
    pub tenant_id: Option<Option<String>>,
    /// What the breaker protects: a model name, an upstream URL (of some model) or a route
    /// id, all existing.
    pub target: BreakerTarget,
    /// One breaker state per tenant instead of one shared state (default false).
    #[serde(default)]
    pub per_tenant: bool,
    /// Default `consecutive_failures`.
    #[serde(default = "consecutive_failures")]
    pub strategy: BreakerStrategy,
    /// A whole count of at least 1 (`consecutive_failures`, `error_count`) or a ratio in
    /// (0, 1] (`error_ratio`, `slow_ratio`); default 5.
    #[serde(default = "five")]
    pub threshold: f64,
    /// Time to first byte above which a call is slow (`slow_ratio` only, required there).
    pub slow_call_ms: Option<u64>,
    /// Calls in the window before the breaker may trip, at least 1; default 5.
    #[serde(default = "five_u32")]
    pub min_requests: u32,
    /// Statistics window in milliseconds; default 10000.
    #[serde(default = "ten_seconds")]
    pub window_ms: u64,
    /// Time open before probing, milliseconds, at least 1; default 10000.
    #[serde(default = "ten_seconds")]
    pub open_ms: u64,
    /// Cap of the open time doubling after each failed probe; omitted: no doubling.
    pub max_open_ms: Option<u64>,
    /// Calls let through while half-open; default 1.
    #[serde(default = "one")]
    pub half_open_probes: u32,
    /// A half-open breaker whose probes have not all reported by then reopens; default 30000.
    #[serde(default = "thirty_seconds")]
    pub half_open_max_wait_ms: u64,
    /// Whether an upstream 429 counts as a failure (default false).
    #[serde(default)]
    pub count_429: bool,
}

fn consecutive_failures() -> BreakerStrategy {
    BreakerStrategy::ConsecutiveFailures
}
fn five() -> f64 {
    5.0
}
fn five_u32() -> u32 {
    5
}
fn one() -> u32 {
    1
}
fn ten_seconds() -> u64 {
    10_000
}
fn thirty_seconds() -> u64 {
    30_000
}

/// Query of `GET /api/circuit-breakers`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// Only this tenant's rules.
    pub tenant_id: Option<String>,
    /// Only breakers in front of this kind of target.
    pub target_kind: Option<BreakerTargetKind>,
    /// Only breakers in front of this model name, upstream URL or route id.
    pub target: Option<String>,
}

impl RuleQuery for BreakerQuery {
    fn paging(&self) -> PageQuery {
        PageQuery {
            page: self.page,
            page_size: self.page_size,
        }
    }
    fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }
}

/// A breaker rule as the API shows it, with its live state.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BreakerView {
    #[serde(flatten)]
    pub rule: Stamped<BreakerEntry>,
    /// Read-only: what the proxies report (ignored on input).
    pub live: BreakerLive,
}

#[async_trait]
impl RuleKind for BreakerEntry {
    const KIND: &'static str = "circuit_breaker";
    const ID_PREFIX: &'static str = "cb";
    const LABEL: &'static str = "circuit breaker";
    const PATH: &'static str = "/api/circuit-breakers";
    const TAG: &'static str = "circuit_breakers";

    type Input = BreakerInput;
    type Query = BreakerQuery;
    type View = BreakerView;

    fn id(&self) -> &str {
        &self.id
    }
    fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }

    fn take_tenant(input: &mut BreakerInput) -> Option<Option<String>> {
        input.tenant_id.take()
    }

    fn from_input(input: BreakerInput, id: String, tenant_id: Option<String>) -> ApiResult<Self> {
        let rule = BreakerEntry {
            id,
            tenant_id,
            target: input.target,
            per_tenant: input.per_tenant,
            strategy: input.strategy,
            threshold: input.threshold,
            slow_call_ms: input.slow_call_ms,
            min_requests: input.min_requests,
            window_ms: input.window_ms,
            open_ms: input.open_ms,
            max_open_ms: input.max_open_ms,
            half_open_probes: input.half_open_probes,
            half_open_max_wait_ms: input.half_open_max_wait_ms,
            count_429: input.count_429,
        };
        rule.validate().map_err(rule_error)?;
        if rule.threshold > MAX_COUNT as f64 {
            let message = format!("must be at most {MAX_COUNT}");
            return Err(rule_error(RuleError::new("threshold", message)));
        }
        within("min_requests", rule.min_requests.into(), 1, MAX_COUNT)?;
        within(
            "half_open_probes",
            rule.half_open_probes.into(),
            1,
            MAX_COUNT,
        )?;
        within("window_ms", rule.window_ms, 1, MAX_MS)?;
        within("open_ms", rule.open_ms, 1, MAX_MS)?;
        within(
            "half_open_max_wait_ms",
            rule.half_open_max_wait_ms,
            1,
            MAX_MS,
        )?;
        if let Some(ms) = rule.max_open_ms {
            within("max_open_ms", ms, 1, MAX_MS)?;
        }
        if let Some(ms) = rule.slow_call_ms {
            within("slow_call_ms", ms, 1, MAX_MS)?;
        }
        validate::text("target.name", &rule.target.name, 1, 2048)?;
        Ok(rule)
    }

    fn matches(&self, q: &BreakerQuery) -> bool {
        q.target_kind.is_none_or(|k| k == self.target.kind)
            && q.target.as_deref().is_none_or(|t| t == self.target.name)
    }

    async fn check_references(&self, tx: &mut Tx) -> ApiResult<()> {
        let name = self.target.name.as_str();
        let (found, what) = match self.target.kind {
            BreakerTargetKind::Model => (refs::model_exists(tx, name).await?, "model"),
            BreakerTargetKind::Upstream => (refs::upstream_exists(tx, name).await?, "upstream"),
            BreakerTargetKind::Route => (
                refs::route_usable(tx, name, self.tenant_id.as_deref()).await?,
                "route",
            ),
        };
        require(found, "target.name", what, name)
    }

    async fn views(store: &Store, rules: Vec<Stamped<Self>>) -> ApiResult<Vec<BreakerView>> {
        let reports = crate::gateway::live_reports(store).await?;
        Ok(rules
            .into_iter()
            .map(|rule| BreakerView {
                live: live::aggregate(&rule.rule.id, &reports),
                rule,
            })
            .collect())
    }
}
