//! Store -> `Snapshot.protection`, for the snapshot compiler.

use std::collections::{BTreeMap, HashSet};

use medgate_config::{BreakerEntry, DegradationEntry, ProtectionEntry, RateLimitEntry};

use super::rules::{RuleKind, Stamped};
use super::{recovery, Breaker, Degradation, RateLimit};
use crate::error::ApiResult;
use crate::resource;
use crate::store::Store;

/// Everything about protection in the store, read by the snapshot compiler inside its
/// version check.
#[derive(Debug, Clone, Default)]
pub struct LoadedProtection {
    rate_limits: Vec<RateLimit>,
    breakers: Vec<Breaker>,
    degradations: Vec<Degradation>,
    recoveries: BTreeMap<String, u64>,
}

/// Reads every rule and the recovery counters.
pub async fn load(store: &Store) -> ApiResult<LoadedProtection> {
    Ok(LoadedProtection {
        rate_limits: resource::load_all::<RateLimit>(store).await?,
        breakers: resource::load_all::<Breaker>(store).await?,
        degradations: resource::load_all::<Degradation>(store).await?,
        recoveries: recovery::counters(store).await?,
    })
}

/// Platform rules and rules of tenants in the snapshot (`Snapshot::with_protection` sorts
/// them by id, so equal content hashes equally). A stored rule that no longer passes its `validate()` (written before a
/// rule was tightened) is left out with a warning: the proxies would refuse the whole
/// snapshot for it.
fn entries<E: RuleKind>(
    rules: Vec<Stamped<E>>,
    tenant_ids: &HashSet<String>,
    valid: impl Fn(&E) -> bool,
) -> Vec<E> {
    rules
        .into_iter()
        .map(|s| s.rule)
        .filter(|r| r.tenant_id().is_none_or(|t| tenant_ids.contains(t)))
        .filter(|r| {
            let ok = valid(r);
            if !ok {
                tracing::warn!(
                    rule = r.id(),
                    kind = E::KIND,
                    "invalid stored rule left out of the snapshot"
                );
            }
            ok
        })
        .collect()
}

impl LoadedProtection {
    /// The snapshot's protection field, given the ids of the tenants in the snapshot.
    pub fn entry(self, tenant_ids: &HashSet<String>) -> ProtectionEntry {
        ProtectionEntry {
            rate_limits: entries(self.rate_limits, tenant_ids, |r: &RateLimitEntry| {
                r.validate().is_ok()
            }),
            breakers: entries(self.breakers, tenant_ids, |r: &BreakerEntry| {
                r.validate().is_ok()
            }),
            degradations: entries(self.degradations, tenant_ids, |r: &DegradationEntry| {
                r.validate().is_ok()
            }),
            recoveries: self.recoveries,
            // Filled by the snapshot compiler from the overage records (billing).
            quota_caps: Default::default(),
        }
    }
}
