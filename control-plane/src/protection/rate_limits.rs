//! Rate-limit rules (API §7.2): `/api/rate-limits`.
//!
//! A rule counts requests or tokens per window in one counter per `scope` subject (global,
//! tenant, API key, model, route, tenant+model). `target` narrows the rule to one subject:
//! a tenant id (`tenant`), an API key id (`api_key`), a model name (`model`,
//! `tenant_model`) or a route id (`route`, required); `global` takes none. Targets must
//! exist; a tenant's rule may only name its own tenant, keys and routes (or platform routes).

use async_trait::async_trait;
use medgate_config::{
    LimitMetric, LimitMode, LimitScope, LimitWindow, RateLimitEntry, StoreFailureMode,
};
use serde::Deserialize;

use super::refs::{self, require};
use super::rules::{RuleKind, RuleQuery, Stamped};
use super::{rule_error, within};
use crate::api::extract::present;
use crate::api::pagination::PageQuery;
use crate::error::ApiResult;
use crate::store::{Store, Tx};
use crate::validate;

/// Largest limit, burst or fallback limit (requests or tokens per window).
const MAX_LIMIT: u64 = 1_000_000_000_000;

/// Body of `POST /api/rate-limits` and `PUT /api/rate-limits/{id}`: the whole rule; omitted
/// optional fields take their defaults.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitInput {
    /// The owning tenant: the rule applies only to its traffic. Tenant admins get their own
    /// tenant when omitted; platform admins create a platform rule (every tenant's traffic)
    /// by omitting it or sending null. On update: omitted, or the rule's own.
    #[serde(default, deserialize_with = "present")]
    pub tenant_id: Option<Option<String>>,
    pub scope: LimitScope,
    /// The one subject of `scope` the rule counts: tenant id, API key id, model name or route
    /// id (required for `route`, refused for `global`); omitted: every subject.
    pub target: Option<String>,
    pub metric: LimitMetric,
    pub window: LimitWindow,
    /// Requests or tokens per window, 1 to 10^12.
    pub limit: u64,
    /// Most that may be spent at once; default: `limit`.
    pub burst: Option<u64>,
    /// `local` (each proxy counts alone; default) or `cluster` (shared counters in Redis).
    #[serde(default = "local")]
    pub mode: LimitMode,
    /// What a cluster rule does while Redis is unreachable; default `local_fallback`.
    #[serde(default)]
    pub on_store_error: StoreFailureMode,
    /// The limit each proxy enforces alone in `local_fallback`; default: `limit`.
    pub fallback_limit: Option<u64>,
}

fn local() -> LimitMode {
    LimitMode::Local
}

/// Query of `GET /api/rate-limits`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// Only this tenant's rules.
    pub tenant_id: Option<String>,
    /// Only rules of this scope.
    pub scope: Option<LimitScope>,
    /// Only rules counting this.
    pub metric: Option<LimitMetric>,
}

impl RuleQuery for RateLimitQuery {
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

#[async_trait]
impl RuleKind for RateLimitEntry {
    const KIND: &'static str = "rate_limit";
    const ID_PREFIX: &'static str = "rl";
    const LABEL: &'static str = "rate-limit rule";
    const PATH: &'static str = "/api/rate-limits";
    const TAG: &'static str = "rate_limits";

    type Input = RateLimitInput;
    type Query = RateLimitQuery;
    type View = Stamped<RateLimitEntry>;

    fn id(&self) -> &str {
        &self.id
    }
    fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }

    fn take_tenant(input: &mut RateLimitInput) -> Option<Option<String>> {
        input.tenant_id.take()
    }

    fn from_input(input: RateLimitInput, id: String, tenant_id: Option<String>) -> ApiResult<Self> {
        let rule = RateLimitEntry {
            id,
            tenant_id,
            scope: input.scope,
            target: input.target,
            metric: input.metric,
            window: input.window,
            limit: input.limit,
            burst: input.burst,
            mode: input.mode,
            on_store_error: input.on_store_error,
            fallback_limit: input.fallback_limit,
        };
        rule.validate().map_err(rule_error)?;
        within("limit", rule.limit, 1, MAX_LIMIT)?;
        if let Some(burst) = rule.burst {
            within("burst", burst, 1, MAX_LIMIT)?;
        }
        if let Some(fallback) = rule.fallback_limit {
            within("fallback_limit", fallback, 1, MAX_LIMIT)?;
        }
        if let Some(target) = &rule.target {
            validate::text("target", target, 1, 128)?;
        }
        Ok(rule)
    }

    fn matches(&self, q: &RateLimitQuery) -> bool {
        q.scope.is_none_or(|s| s == self.scope) && q.metric.is_none_or(|m| m == self.metric)
    }

    async fn check_references(&self, tx: &mut Tx) -> ApiResult<()> {
        let Some(target) = self.target.as_deref() else {
            return Ok(());
        };
        let tenant = self.tenant_id.as_deref();
        match self.scope {
            LimitScope::Global => Ok(()),
            LimitScope::Tenant => {
                if tenant.is_some_and(|t| t != target) {
                    return require(false, "target", "tenant (of this rule)", target);
                }
                require(
                    refs::tenant_exists(tx, target).await?,
                    "target",
                    "tenant",
                    target,
                )
            }
            LimitScope::ApiKey => require(
                refs::key_usable(tx, target, tenant).await?,
                "target",
                "API key",
                target,
            ),
            LimitScope::Model | LimitScope::TenantModel => require(
                refs::model_exists(tx, target).await?,
                "target",
                "model",
                target,
            ),
            LimitScope::Route => require(
                refs::route_usable(tx, target, tenant).await?,
                "target",
                "route",
                target,
            ),
        }
    }

    async fn views(_store: &Store, rules: Vec<Stamped<Self>>) -> ApiResult<Vec<Self::View>> {
        Ok(rules)
    }
}
