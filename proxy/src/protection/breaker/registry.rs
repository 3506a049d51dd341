//! `Breakers`: every breaker of a proxy, shared by all requests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use medgate_config::BreakerEntry;
use tokio::sync::watch;

use super::cell::Shared;
use super::index::{Index, Slot};
use super::permit::Permits;
use super::recovery::{grown, parse_service};
use super::{BreakerRefusal, CallTarget};
use crate::protection::clock::SharedClock;

/// The breakers of one proxy: the rules of the current snapshot and their live states.
///
/// `Send + Sync`; share it in an `Arc`. The hot path ([`acquire`](Self::acquire)) takes no
/// global lock: it loads the rule index from an `ArcSwap` and locks only the matching
/// states; with no rule matching it allocates nothing.
pub struct Breakers {
    shared: Arc<Shared>,
    index: ArcSwap<Index>,
    /// The recovery counters of the last applied snapshot (None before the first). The mutex
    /// also serializes `apply`, so two snapshots never interleave their updates.
    applied: Mutex<Option<BTreeMap<String, u64>>>,
}

impl std::fmt::Debug for Breakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let index = self.index.load();
        f.debug_struct("Breakers")
            .field("rules", &index.by_id.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Breakers {
    /// No rules; all timing through `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            shared: Arc::new(Shared::new(clock)),
            index: ArcSwap::from_pointee(Index::default()),
            applied: Mutex::new(None),
        }
    }

    /// Installs the rules of a new snapshot and runs its new recovery commands.
    ///
    /// Contract (see the module docs): an unchanged rule keeps its state and counters; a
    /// changed rule keeps its state but restarts its counters, and its new thresholds apply
    /// from the next call; a rule whose target or `per_tenant` changed starts closed; a
    /// removed rule stops at once (its states are dropped, calls it admitted report into
    /// nothing). Then every recovery target whose counter grew since the previous snapshot
    /// is recovered as by [`recover`](Self::recover); the first snapshot only records them.
    pub fn apply(&self, rules: &[BreakerEntry], recoveries: &BTreeMap<String, u64>) {
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.index.load_full();
        let (index, unused) = Index::build(&old, rules, &self.shared);
        self.index.store(Arc::new(index));
        for states in unused {
            states.retire();
        }
        for target in grown(applied.as_ref(), recoveries) {
            let n = self.recover(target);
            tracing::info!(target, states = n, "breaker recovery command applied");
        }
        *applied = Some(recoveries.clone());
    }

    /// Takes a permit from every breaker that applies to `call`: rules with no tenant filter
    /// or the call's tenant, whose target is the call's model, upstream or route. All or
    /// nothing: when one refuses, the permits already taken are cancelled (uncounted, probe
    /// permits returned) and the first refusal, in rule id order per target kind, is
    /// returned. Call it only once the local checks (rate limits, isolation) have passed.
    pub fn acquire(&self, call: &CallTarget<'_>) -> Result<Permits, BreakerRefusal> {
        let mut permits = Permits::default();
        let index = self.index.load();
        if index.is_empty() {
            return Ok(permits);
        }
        for slot in index.matching(*call) {
            let cell = slot.states.cell(&self.shared, call.tenant_id);
            match cell.try_acquire() {
                Ok(ticket) => permits.push(cell, ticket),
                Err(refused) => {
                    permits.cancel();
                    return Err(BreakerRefusal {
                        breaker_id: slot.rule.entry.id.clone(),
                        state: refused.state,
                        retry_after: refused.retry_after,
                    });
                }
            }
        }
        Ok(permits)
    }

    /// Manual recovery: closes every state of the breakers `target` names and resets their
    /// counters and backoff; permits they gave out before report into nothing. `target` is a
    /// rule id, `model:<name>`, `upstream:<label>` or `route:<id>`. Returns the number of
    /// states recovered (0 when nothing matched, or when the matching per-tenant rules have
    /// no state yet).
    pub fn recover(&self, target: &str) -> usize {
        let index = self.index.load();
        let mut slots: Vec<&Arc<Slot>> = index.by_id.get(target).into_iter().collect();
        if let Some((kind, name)) = parse_service(target) {
            for slot in index.by_target(kind, name) {
                if !slots.iter().any(|s| Arc::ptr_eq(s, slot)) {
                    slots.push(slot);
                }
            }
        }
        let mut recovered = 0;
        for slot in slots {
            for cell in slot.states.cells() {
                cell.recover();
                recovered += 1;
            }
        }
        recovered
    }

    /// A receiver of the transition counter, incremented on every state transition (the
    /// heartbeat wakes on it to report promptly).
    pub fn transitions(&self) -> watch::Receiver<u64> {
        self.shared.subscribe()
    }

    /// The index, for the report module.
    pub(super) fn index(&self) -> arc_swap::Guard<Arc<Index>> {
        self.index.load()
    }

    pub(super) fn clock(&self) -> &SharedClock {
        &self.shared.clock
    }
}
