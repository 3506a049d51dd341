//! Store -> snapshot.
//!
//! The snapshot is a function of the store state at its version only, never of the clock:
//! two compilations of one version (on two control-plane replicas, say) carry the same hash.
//! So expired keys and rotated-out secrets past their grace stay in it until the next write
//! removes them; the data plane checks `expires_at` and `valid_until` itself.

use std::collections::{HashMap, HashSet};

use medgate_config::snapshot::{IsolationEntry, PlanQuotas};
use medgate_config::{
    DomainCertificate, DomainEntry, GatewayEntry, RouteEntry, Snapshot, TenantEntry,
};

use crate::domains::{self, Domain, DomainStatus};
use crate::error::ApiResult;
use crate::keys::{ApiKey, KeyStatus};
use crate::models::Model;
use crate::notifier::sealed::SealKey;
use crate::resource;
use crate::routing::Route;
use crate::store::Store;
use crate::tenant_models::TenantModel;
use crate::tenants::{IsolationPolicy, Tenant, TenantPlan};

/// Compiles the store into a snapshot. Reads the version before and after and retries when a
/// write slipped in between, so the content always matches the version it carries.
///
/// `seal` opens the private keys of domain certificates and the upstream API keys; without it
/// (no server secret) the snapshot carries neither.
pub async fn compile(store: &Store, seal: Option<&SealKey>) -> ApiResult<Snapshot> {
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
        let models = resource::load_all::<Model>(store).await?;
        let keys = resource::load_all::<ApiKey>(store).await?;
        let configs = resource::load_all::<TenantModel>(store).await?;
        let gateway: GatewayEntry = crate::gateway::current_config(store).await?.entry();
        let routes = resource::load_all::<Route>(store).await?;
        let domains = resource::load_all::<Domain>(store).await?;
        let certificates = domains::certificates_for_snapshot(store, seal).await?;
        let protection = crate::protection::load(store).await?;
        let mut rates = crate::billing::rates::snapshot_entries(store).await?;
        let quota_caps = crate::billing::overage::snapshot_caps(store).await?;
        if store.config_version().await? != version {
            continue;
        }
        let tenant_ids: HashSet<String> = tenants.iter().map(|t| t.id.clone()).collect();
        let model_ids: HashSet<&str> = models.iter().map(|m| m.id.as_str()).collect();
        // Only working keys, and only rows whose owners are in the snapshot: the data plane
        // refuses a snapshot with an orphan key, so a stray row must not stop config updates.
        let api_keys = keys
            .iter()
            .filter(|k| k.status == KeyStatus::Active && tenant_ids.contains(&k.tenant_id))
            .map(ApiKey::snapshot_entry)
            .collect();
        let tenant_models = configs
            .iter()
            .filter(|c| {
                tenant_ids.contains(&c.tenant_id) && model_ids.contains(c.model_id.as_str())
            })
            .map(TenantModel::snapshot_entry)
            .collect();
        let (routes, domains) = routing_entries(&routes, &domains, certificates, &tenant_ids);
        let mut protection = protection.entry(&tenant_ids);
        protection.quota_caps = quota_caps
            .into_iter()
            .filter(|(tenant, _)| tenant_ids.contains(tenant))
            .collect();
        let tenants = tenants
            .into_iter()
            .map(|t| tenant_entry(t, &plans, &policies))
            .collect();
        return Ok(Snapshot::from_parts(
            version,
            tenants,
            models
                .iter()
                .map(|m| {
                    let mut entry = m.snapshot_entry(seal);
                    entry.rates = rates.remove(&m.id).unwrap_or_default();
                    entry
                })
                .collect(),
            api_keys,
            tenant_models,
            gateway,
        )
        .with_routing(routes, domains)
        .with_protection(protection));
    }
}

/// Verified domains of existing tenants (with their certificates), and enabled routes of
/// existing owners. A tenant's route keeps only the hosts its tenant's verified domains cover,
/// and is left out when none remain: an unverified claim must not route anything.
fn routing_entries(
    routes: &[Route],
    domains: &[Domain],
    mut certificates: HashMap<String, DomainCertificate>,
    tenant_ids: &HashSet<String>,
) -> (Vec<RouteEntry>, Vec<DomainEntry>) {
    let verified: Vec<&Domain> = domains
        .iter()
        .filter(|d| d.status == DomainStatus::Verified && tenant_ids.contains(&d.tenant_id))
        .collect();
    let routes = routes
        .iter()
        .filter(|r| r.enabled)
        .filter_map(|r| match &r.tenant_id {
            None => Some(r.snapshot_entry(r.matcher.hosts.clone())),
            Some(t) if tenant_ids.contains(t) => {
                let hosts: Vec<String> = r
                    .matcher
                    .hosts
                    .iter()
                    .filter(|h| {
                        verified
                            .iter()
                            .any(|d| &d.tenant_id == t && domains::covers(&d.hostname, h))
                    })
                    .cloned()
                    .collect();
                (!hosts.is_empty()).then(|| r.snapshot_entry(hosts))
            }
            Some(_) => None,
        })
        .collect();
    let domains = verified
        .into_iter()
        .map(|d| d.snapshot_entry(certificates.remove(&d.id)))
        .collect();
    (routes, domains)
}

fn tenant_entry(
    t: Tenant,
    plans: &HashMap<String, TenantPlan>,
    policies: &HashMap<String, IsolationPolicy>,
) -> TenantEntry {
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
            dedicated_pool: p
                .spec
                .upstreams
                .pool
                .strip_prefix("dedicated:")
                .map(str::to_owned),
            spillover_to_shared: p.spec.upstreams.spillover_to_shared,
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
}
