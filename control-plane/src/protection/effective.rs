//! `GET /api/tenants/{tenantId}/rate-limits`: every rate limit that applies to one tenant's
//! traffic, as the proxies compile them: the platform's rules, the tenant's own rules and the
//! quotas of the tenant's plan, which proxies enforce as the rules `plan:<tenant>:rpm` and
//! `plan:<tenant>:tpm` (scope `tenant`, per minute).

use axum::extract::State;
use axum::Json;
use medgate_config::{
    LimitMetric, LimitMode, LimitScope, LimitWindow, RateLimitEntry, StoreFailureMode,
};
use serde::Serialize;

use super::RateLimit;
use crate::api::extract::ApiPath;
use crate::api::{ApiBuilder, Endpoint};
use crate::auth::Access;
use crate::error::ApiResult;
use crate::resource::{self, Resource};
use crate::state::AppState;
use crate::tenants::{self, TenantPlan};

/// Where an applicable limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    /// A rule of `/api/rate-limits` (platform or the tenant's own).
    Rule,
    /// A quota of the tenant's plan (change it through the plan).
    Plan,
}

/// One limit applying to the tenant's traffic.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EffectiveRateLimit {
    pub source: RuleSource,
    /// The rule; a plan quota shows `mode` `local`, although proxies with a Redis store
    /// count it cluster-wide.
    #[serde(flatten)]
    pub rule: RateLimitEntry,
}

/// The answer of `GET /api/tenants/{tenantId}/rate-limits`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TenantRateLimits {
    pub tenant_id: String,
    /// Plan quotas first, then rules, oldest first.
    pub items: Vec<EffectiveRateLimit>,
    pub total: u64,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/tenants/{tenantId}/rate-limits",
            "rate_limits.list_tenant",
            "Every rate limit applying to one tenant's traffic (platform rules, its own, its plan's quotas)",
        )
        .access(Access::Read)
        .resource(RateLimit::KIND)
        .response::<TenantRateLimits>(),
        list_tenant,
    )
}

fn plan_rule(tenant: &str, suffix: &str, metric: LimitMetric, limit: u64) -> EffectiveRateLimit {
    EffectiveRateLimit {
        source: RuleSource::Plan,
        rule: RateLimitEntry {
            id: format!("plan:{tenant}:{suffix}"),
            tenant_id: Some(tenant.to_owned()),
            scope: LimitScope::Tenant,
            target: None,
            metric,
            window: LimitWindow::Minute,
            limit,
            burst: None,
            mode: LimitMode::Local,
            on_store_error: StoreFailureMode::LocalFallback,
            fallback_limit: None,
        },
    }
}

/// The guard has already answered 404 for another tenant's id (tenant roles).
async fn list_tenant(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
) -> ApiResult<Json<TenantRateLimits>> {
    super::findable("tenant", &tenant_id)?;
    let tenant = tenants::ensure_exists(state.store(), &tenant_id).await?;
    let mut items = Vec::new();
    if let Some(plan_id) = &tenant.plan_id {
        if let Some(plan) = resource::load::<TenantPlan>(state.store(), plan_id).await? {
            let quotas = &plan.value.quotas;
            // A quota of 0 is treated as absent by the proxies.
            if let Some(rpm) = quotas.requests_per_minute.filter(|l| *l > 0) {
                items.push(plan_rule(&tenant.id, "rpm", LimitMetric::Requests, rpm));
            }
            if let Some(tpm) = quotas.tokens_per_minute.filter(|l| *l > 0) {
                items.push(plan_rule(&tenant.id, "tpm", LimitMetric::Tokens, tpm));
            }
        }
    }
    let rules = resource::load_all::<RateLimit>(state.store()).await?;
    items.extend(
        rules
            .into_iter()
            .filter(|r| r.rule.tenant_id.as_deref().is_none_or(|t| t == tenant.id))
            .map(|r| EffectiveRateLimit {
                source: RuleSource::Rule,
                rule: r.rule,
            }),
    );
    Ok(Json(TenantRateLimits {
        total: items.len() as u64,
        tenant_id: tenant.id,
        items,
    }))
}
