//! Store -> snapshot.

use std::collections::HashMap;

use medgate_config::snapshot::{IsolationEntry, PlanQuotas};
use medgate_config::{Snapshot, TenantEntry};

use crate::error::ApiResult;
use crate::resource;
use crate::store::Store;
use crate::tenants::{IsolationPolicy, Tenant, TenantPlan};

/// Compiles the store into a snapshot. Reads the version before and after and retries when a
/// write slipped in between, so the content always matches the version it carries.
pub async fn compile(store: &Store) -> ApiResult<Snapshot> {
    loop {
        let version = store.config_version().await?;
        let tenants = resource::load_all::<Tenant>(store).await?;
        let plans: HashMap<String, TenantPlan> = resource::load_all::<TenantPlan>(store)
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let policies: HashMap<String, IsolationPolicy> =
            resource::load_all::<IsolationPolicy>(store)
                .await?
                .into_iter()
                .map(|p| (p.id.clone(), p))
                .collect();
        if store.config_version().await? != version {
            continue;
        }
        let entries = tenants
            .into_iter()
            .map(|t| {
                let plan = t.plan_id.as_ref().and_then(|id| plans.get(id));
                let isolation = t
                    .isolation_policy_id
                    .as_ref()
                    .and_then(|id| policies.get(id))
                    .filter(|p| p.spec.enabled)
                    .map(|p| IsolationEntry {
                        policy_id: p.id.clone(),
                        max_concurrent_requests: p.spec.compute.max_concurrent_requests,
                        max_concurrent_per_model: p.spec.compute.max_concurrent_per_model.clone(),
                        max_queue_depth: p.spec.compute.max_queue_depth,
                        queue_timeout_ms: p.spec.compute.queue_timeout_ms,
                        max_share_of_upstream_pct: p.spec.compute.max_share_of_upstream_pct,
                        allowed_cidrs: p.spec.network.allowed_cidrs.clone(),
                    });
                TenantEntry {
                    id: t.id,
                    code: t.code,
                    status: t.status,
                    quotas: plan.map(|p| PlanQuotas {
                        requests_per_minute: p.quotas.requests_per_minute,
                        tokens_per_minute: p.quotas.tokens_per_minute,
                        monthly_tokens: p.quotas.monthly_tokens,
                        max_api_keys: p.quotas.max_api_keys,
                    }),
                    allowed_models: plan.map(|p| p.allowed_models.clone()).unwrap_or_default(),
                    log_request_payloads: t.config.log_request_payloads,
                    cors_allowed_origins: t.config.cors_allowed_origins,
                    isolation,
                }
            })
            .collect();
        return Ok(Snapshot::new(version, entries));
    }
}
