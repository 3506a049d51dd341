//! Choosing who serves an inference call (DESIGN.md §4 step 7): an upstream of the model
//! that its breakers, the tenant's upstream pool and its share caps admit; or, when the model
//! cannot serve and a degradation rule says so, a fallback model, a static response or a
//! refusal with Retry-After.
//!
//! Upstreams: a tenant with a dedicated pool uses that pool's upstreams, and the shared ones
//! only with `spillover_to_shared`; other tenants use only shared upstreams. The weighted
//! pick comes first, the remaining upstreams follow as failover.

use std::time::Duration;

use medgate_config::snapshot::IsolationEntry;
use medgate_config::{DegradationEntry, DegradationTrigger, FinalAction};

use super::breaker::{BreakerRefusal, CallTarget, Permits};
use super::bulkhead::{share_cap, UpstreamShare};
use super::Protection;
use super::View;
use crate::catalog::{Catalog, ModelRecord};
use crate::upstream::UpstreamTarget;

/// Retry-After of a breaker refusal with nothing better to say.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The model and upstream that will serve the call, with what it holds while it runs.
pub struct Serving<'c> {
    pub model: &'c ModelRecord,
    pub target: &'c UpstreamTarget,
    pub permits: Permits,
    pub share: Option<UpstreamShare>,
    /// `x-medgate-degraded` header value when a fallback model serves.
    pub degraded: Option<String>,
}

/// Why nobody serves the call.
#[derive(Debug)]
pub enum Unserved {
    /// A degradation rule's static answer.
    Static {
        rule_id: String,
        status: u16,
        body: String,
    },
    /// A degradation rule's refusal (or the breaker's own when no rule applies).
    Reject {
        rule_id: Option<String>,
        status: u16,
        retry_after: Duration,
    },
    /// Every allowed upstream is at the tenant's share cap.
    ShareExhausted,
    /// The model has no upstream this tenant may use.
    NoUpstream,
}

/// Picks who serves `primary` for `tenant_id`, falling back as degradation rules say.
pub fn choose<'c>(
    protection: &Protection,
    view: &View,
    catalog: &'c Catalog,
    tenant_id: &str,
    isolation: Option<&IsolationEntry>,
    primary: &'c ModelRecord,
    roll: u32,
) -> Result<Serving<'c>, Unserved> {
    let rules: Vec<&DegradationEntry> = view
        .degradations_for(tenant_id, &primary.entry.name)
        .collect();
    let forced = rules
        .iter()
        .copied()
        .find(|r| fires_before_call(protection, r));
    let (rule, primary_failure) = match forced {
        Some(rule) => (Some(rule), None),
        None => match pick(protection, tenant_id, isolation, primary, roll) {
            Ok(serving) => return Ok(serving),
            Err(Failure::Breaker(refusal)) => (
                rules
                    .iter()
                    .copied()
                    .find(|r| r.trigger == DegradationTrigger::BreakerOpen),
                Some(refusal),
            ),
            Err(Failure::Share) => return Err(Unserved::ShareExhausted),
            Err(Failure::NoUpstream) => return Err(Unserved::NoUpstream),
        },
    };
    let Some(rule) = rule else {
        // The breaker refused and no rule degrades: refuse with its retry time.
        let retry_after = primary_failure.map_or(DEFAULT_RETRY_AFTER, |r| r.retry_after);
        return Err(Unserved::Reject {
            rule_id: None,
            status: 503,
            retry_after,
        });
    };
    for name in &rule.fallback_models {
        let Some(fallback) = catalog.model_named(name) else {
            continue;
        };
        if !fallback.entry.enabled {
            continue;
        }
        if let Ok(mut serving) = pick(protection, tenant_id, isolation, fallback, roll) {
            serving.degraded = Some(format!("fallback; model={name}; rule={}", rule.id));
            return Ok(serving);
        }
    }
    Err(match &rule.final_action {
        Some(FinalAction::StaticResponse { status, body }) => Unserved::Static {
            rule_id: rule.id.clone(),
            status: *status,
            body: body.clone(),
        },
        Some(FinalAction::Reject {
            status,
            retry_after_secs,
        }) => Unserved::Reject {
            rule_id: Some(rule.id.clone()),
            status: *status,
            retry_after: Duration::from_secs(*retry_after_secs),
        },
        None => Unserved::Reject {
            rule_id: Some(rule.id.clone()),
            status: 503,
            retry_after: primary_failure.map_or(DEFAULT_RETRY_AFTER, |r| r.retry_after),
        },
    })
}

/// Whether a rule takes the model out of service before any call is tried.
fn fires_before_call(protection: &Protection, rule: &DegradationEntry) -> bool {
    match rule.trigger {
        DegradationTrigger::Manual => true,
        DegradationTrigger::BreakerOpen => false,
        DegradationTrigger::Latency {
            threshold_ms,
            window_ms,
            min_requests,
        } => protection
            .services
            .mean_latency(
                &format!("model:{}", rule.model),
                Duration::from_millis(window_ms),
            )
            .is_some_and(|(mean, calls)| {
                calls >= u64::from(min_requests) && mean > threshold_ms as f64
            }),
    }
}

enum Failure {
    Breaker(BreakerRefusal),
    Share,
    NoUpstream,
}

/// The first upstream of `model` (weighted pick first) that the pool, share cap and breakers
/// admit.
fn pick<'c>(
    protection: &Protection,
    tenant_id: &str,
    isolation: Option<&IsolationEntry>,
    model: &'c ModelRecord,
    roll: u32,
) -> Result<Serving<'c>, Failure> {
    let dedicated = isolation.and_then(|i| i.dedicated_pool.as_deref());
    let spillover = isolation.is_some_and(|i| i.spillover_to_shared);
    let share_pct = isolation.and_then(|i| i.max_share_of_upstream_pct);
    let first = weighted_index(&model.targets, roll);
    let ordered = (0..model.targets.len()).map(|i| (first + i) % model.targets.len());
    // Dedicated pool first; shared upstreams after it only with spill-over.
    let passes: &[Option<&str>] = match dedicated {
        Some(pool) if spillover => &[Some(pool), None],
        Some(pool) => &[Some(pool)],
        None => &[None],
    };
    let mut failure = Failure::NoUpstream;
    for pool in passes.iter().copied() {
        for i in ordered.clone() {
            let target = &model.targets[i];
            // A dedicated pool of an upstream only serves its own tenants.
            let in_pool = match (pool, target.pool.as_deref()) {
                (Some(want), Some(have)) => want == have,
                (None, None) => true,
                _ => false,
            };
            if !in_pool {
                continue;
            }
            let share = match (share_pct, target.max_concurrency, pool) {
                (Some(pct), Some(max), None) => {
                    match protection.bulkheads.take_upstream_share(
                        tenant_id,
                        &target.url,
                        share_cap(pct, max),
                    ) {
                        Some(share) => Some(share),
                        None => {
                            if !matches!(failure, Failure::Breaker(_)) {
                                failure = Failure::Share;
                            }
                            continue;
                        }
                    }
                }
                _ => None,
            };
            let call = CallTarget {
                tenant_id,
                model: Some(&model.entry.name),
                upstream: Some(&target.url),
                route: None,
            };
            match protection.breakers.acquire(&call) {
                Ok(permits) => {
                    return Ok(Serving {
                        model,
                        target,
                        permits,
                        share,
                        degraded: None,
                    })
                }
                Err(refusal) => failure = Failure::Breaker(refusal),
            }
        }
    }
    Err(failure)
}

/// Index of the target a weighted roll in `0..total_weight` lands on.
fn weighted_index(targets: &[UpstreamTarget], roll: u32) -> usize {
    let mut acc = 0u32;
    for (i, t) in targets.iter().enumerate() {
        acc = acc.saturating_add(t.weight);
        if roll < acc {
            return i;
        }
    }
    0
}
