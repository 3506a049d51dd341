//! Traffic protection on the data plane (DESIGN.md §4 steps 3, 4 and 7): network allowlists
//! and bulkheads, rate limits, circuit breakers and degradation.
//!
//! Rules arrive with the snapshot; live state (limiter counters, breaker states, bulkhead
//! slots, service figures) lives here, beside the snapshot, and survives swaps. Everything a
//! snapshot needs compiled for the request path sits in one [`View`] swapped whole.

pub mod breaker;
pub mod bulkhead;
pub mod clock;
pub mod degrade;
pub mod limit;
pub mod services;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use medgate_config::{BreakerReport, DegradationEntry, ServiceReport, Snapshot};

use breaker::Breakers;
use bulkhead::Bulkheads;
use clock::SharedClock;
use limit::{LimitRules, Limiter, RedisLimitStore};
use services::ServiceStats;

/// How often idle limiter state is reclaimed.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The live protection state of one proxy.
pub struct Protection {
    pub clock: SharedClock,
    pub limiter: Limiter,
    pub breakers: Breakers,
    pub bulkheads: Bulkheads,
    pub services: ServiceStats,
    view: ArcSwap<View>,
    /// Whether cluster-mode limits have a Redis to count in.
    cluster: bool,
    rate_limited: AtomicU64,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Default for Protection {
    fn default() -> Self {
        Self::new(clock::SystemClock::shared(), None)
    }
}

impl Protection {
    pub fn new(clock: SharedClock, redis: Option<RedisLimitStore>) -> Self {
        let cluster = redis.is_some();
        Self {
            limiter: Limiter::new(Arc::clone(&clock), redis),
            breakers: Breakers::new(Arc::clone(&clock)),
            bulkheads: Bulkheads::default(),
            services: ServiceStats::new(Arc::clone(&clock)),
            view: ArcSwap::from_pointee(View::default()),
            cluster,
            rate_limited: AtomicU64::new(0),
            clock,
        }
    }

    /// Takes in the rules of a newly installed snapshot.
    pub fn apply(&self, snapshot: &Snapshot) {
        let view = View::compile(snapshot, self.cluster);
        self.breakers.apply(
            &snapshot.protection.breakers,
            &snapshot.protection.recoveries,
        );
        let tenants: std::collections::HashSet<&str> =
            snapshot.tenants.iter().map(|t| t.id.as_str()).collect();
        self.bulkheads.retain_tenants(&|t| tenants.contains(t));
        let services: std::collections::HashSet<String> = snapshot
            .models
            .iter()
            .flat_map(|m| {
                std::iter::once(format!("model:{}", m.name))
                    .chain(m.upstreams.iter().map(|u| format!("upstream:{}", u.url)))
            })
            .collect();
        self.services.retain(&|s| services.contains(s));
        self.view.store(Arc::new(view));
    }

    /// The compiled rules in force.
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    pub fn count_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rate_limited_total(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// What the heartbeat reports: breaker states, and service figures since the last call.
    pub fn reports(&self) -> (Vec<BreakerReport>, Vec<ServiceReport>) {
        let services = self
            .services
            .report(&|service| self.breakers.state_of(service));
        (self.breakers.reports(), services)
    }

    /// Reclaims idle limiter state until `stop` resolves.
    pub async fn sweep_until(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = tokio::time::sleep(SWEEP_EVERY) => self.limiter.sweep(),
                () = &mut stop => return,
            }
        }
    }
}

/// A snapshot's protection rules, compiled for the request path.
#[derive(Default)]
pub struct View {
    pub limits: LimitRules,
    /// By protected model name, in priority order.
    degradations: HashMap<String, Vec<DegradationEntry>>,
    /// Tenants with a network allowlist.
    allowlists: HashMap<String, Vec<IpNet>>,
    /// Tenants stopped by a hard overage cap, until the given RFC 3339 time.
    quota_caps: HashMap<String, String>,
}

impl View {
    fn compile(snapshot: &Snapshot, cluster: bool) -> Self {
        let mut degradations: HashMap<String, Vec<DegradationEntry>> = HashMap::new();
        for rule in &snapshot.protection.degradations {
            degradations
                .entry(rule.model.clone())
                .or_default()
                .push(rule.clone());
        }
        for rules in degradations.values_mut() {
            rules.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
        }
        let allowlists = snapshot
            .tenants
            .iter()
            .filter_map(|t| {
                let iso = t.isolation.as_ref()?;
                if iso.allowed_cidrs.is_empty() {
                    return None;
                }
                let nets = iso
                    .allowed_cidrs
                    .iter()
                    .filter_map(|c| parse_cidr(c))
                    .collect();
                Some((t.id.clone(), nets))
            })
            .collect();
        Self {
            limits: LimitRules::compile(snapshot, cluster),
            degradations,
            allowlists,
            quota_caps: snapshot
                .protection
                .quota_caps
                .iter()
                .map(|(t, until)| (t.clone(), until.clone()))
                .collect(),
        }
    }

    /// When the tenant's hard overage cap lifts, if it is capped at `at` (RFC 3339 UTC,
    /// fixed width, so text order is time order).
    pub fn quota_capped_until(&self, tenant_id: &str, at: &str) -> Option<&str> {
        self.quota_caps
            .get(tenant_id)
            .map(String::as_str)
            .filter(|until| *until > at)
    }

    /// Degradation rules for a model that apply to the tenant, in priority order.
    pub fn degradations_for<'a>(
        &'a self,
        tenant_id: &'a str,
        model: &str,
    ) -> impl Iterator<Item = &'a DegradationEntry> + 'a {
        self.degradations
            .get(model)
            .into_iter()
            .flatten()
            .filter(move |r| r.tenant_id.as_deref().is_none_or(|t| t == tenant_id))
    }

    /// Whether the tenant's network allowlist (if any) admits the client address. A tenant
    /// with an allowlist refuses clients whose address is unknown.
    pub fn client_allowed(&self, tenant_id: &str, client: Option<IpAddr>) -> bool {
        match self.allowlists.get(tenant_id) {
            None => true,
            Some(nets) => client.is_some_and(|ip| {
                let ip = canonical(ip);
                nets.iter().any(|n| n.contains(&ip))
            }),
        }
    }
}

/// A CIDR or a single address (as a /32 or /128).
fn parse_cidr(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// IPv4 clients reached over an IPv6 socket appear as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_single_addresses_are_understood() {
        let nets: Vec<IpNet> = ["10.0.0.0/8", "192.168.1.7", "::1"]
            .iter()
            .filter_map(|c| parse_cidr(c))
            .collect();
        assert_eq!(nets.len(), 3);
        let view = View {
            allowlists: [("t".to_owned(), nets)].into_iter().collect(),
            ..View::default()
        };
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(view.client_allowed("t", ip("10.1.2.3")));
        assert!(view.client_allowed("t", ip("::ffff:192.168.1.7")));
        assert!(!view.client_allowed("t", ip("192.168.1.8")));
        assert!(!view.client_allowed("t", None));
        assert!(view.client_allowed("other", None), "no allowlist, no check");
    }
}
