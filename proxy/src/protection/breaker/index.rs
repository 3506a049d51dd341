//! The rule index: rules by target for the hot path, their states, and how a new snapshot's
//! rules take over the states of the previous one (the update contract in the module docs).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use medgate_config::{BreakerEntry, BreakerTargetKind};

use super::cell::{Cell, Shared};
use super::rule::Rule;
use super::CallTarget;

/// One rule of the current snapshot with its states.
pub(super) struct Slot {
    pub rule: Arc<Rule>,
    pub states: Arc<States>,
}

impl Slot {
    /// Whether the rule applies to `tenant_id`'s traffic.
    fn applies_to(&self, tenant_id: &str) -> bool {
        self.rule
            .entry
            .tenant_id
            .as_deref()
            .is_none_or(|t| t == tenant_id)
    }
}

/// The live states of one rule: one shared state, or one per tenant created on first use.
pub(super) enum States {
    Shared(Arc<Cell>),
    PerTenant(RwLock<TenantCells>),
}

pub(super) struct TenantCells {
    /// The rule new tenant states start with; updated with the existing states under the
    /// same lock, so a state created during an update cannot keep the old rule.
    rule: Arc<Rule>,
    cells: HashMap<String, Arc<Cell>>,
    retired: bool,
}

impl States {
    fn new(shared: &Arc<Shared>, rule: Arc<Rule>) -> Self {
        if rule.entry.per_tenant {
            States::PerTenant(RwLock::new(TenantCells {
                rule,
                cells: HashMap::new(),
                retired: false,
            }))
        } else {
            States::Shared(Arc::new(Cell::new(shared.clone(), rule, None, false)))
        }
    }

    /// The state a call of `tenant_id` uses. Per-tenant states are created on first use
    /// (the only allocation on the hot path, once per tenant); there is one per tenant that
    /// called, and tenants are the gateway's own authenticated customers, so the map is
    /// bounded by the tenant count.
    pub fn cell(&self, shared: &Arc<Shared>, tenant_id: &str) -> Arc<Cell> {
        let tenants = match self {
            States::Shared(cell) => return cell.clone(),
            States::PerTenant(tenants) => tenants,
        };
        {
            let read = tenants.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(cell) = read.cells.get(tenant_id) {
                return cell.clone();
            }
        }
        let mut write = tenants.write().unwrap_or_else(PoisonError::into_inner);
        let TenantCells {
            rule,
            cells,
            retired,
        } = &mut *write;
        cells
            .entry(tenant_id.to_owned())
            .or_insert_with(|| {
                Arc::new(Cell::new(
                    shared.clone(),
                    rule.clone(),
                    Some(tenant_id.to_owned()),
                    *retired,
                ))
            })
            .clone()
    }

    /// Every live state, per-tenant ones ordered by tenant (stable reports).
    pub fn cells(&self) -> Vec<Arc<Cell>> {
        match self {
            States::Shared(cell) => vec![cell.clone()],
            States::PerTenant(tenants) => {
                let read = tenants.read().unwrap_or_else(PoisonError::into_inner);
                let mut cells: Vec<_> = read.cells.values().cloned().collect();
                cells.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
                cells
            }
        }
    }

    fn reconfigure(&self, rule: Arc<Rule>) {
        match self {
            States::Shared(cell) => cell.reconfigure(rule),
            States::PerTenant(tenants) => {
                let mut write = tenants.write().unwrap_or_else(PoisonError::into_inner);
                for cell in write.cells.values() {
                    cell.reconfigure(rule.clone());
                }
                write.rule = rule;
            }
        }
    }

    /// Stops the states of a removed rule, including any a stale index creates later.
    pub fn retire(&self) {
        match self {
            States::Shared(cell) => cell.retire(),
            States::PerTenant(tenants) => {
                let mut write = tenants.write().unwrap_or_else(PoisonError::into_inner);
                write.retired = true;
                for cell in write.cells.values() {
                    cell.retire();
                }
            }
        }
    }
}

type ByName = HashMap<String, Vec<Arc<Slot>>>;

/// The rules of one snapshot, by id and by target. Immutable once built; `Breakers` swaps a
/// new one in on every `apply`.
#[derive(Default)]
pub(super) struct Index {
    pub by_id: BTreeMap<String, Arc<Slot>>,
    by_model: ByName,
    by_upstream: ByName,
    by_route: ByName,
}

impl Index {
    /// Builds the index of `rules`, taking over `old`'s states as the update contract says:
    /// an unchanged rule keeps its slot; a changed one keeps its states, reconfigured (the
    /// cells restart their counters); a rule whose target or `per_tenant` changed starts
    /// fresh. Returns the states no longer used, which the caller retires once the new index
    /// is published. A duplicate id (the validator refuses them) keeps the first rule.
    pub fn build(
        old: &Index,
        rules: &[BreakerEntry],
        shared: &Arc<Shared>,
    ) -> (Index, Vec<Arc<States>>) {
        let mut index = Index::default();
        for entry in rules {
            if index.by_id.contains_key(&entry.id) {
                tracing::warn!(breaker = %entry.id, "duplicate breaker id; keeping the first rule");
                continue;
            }
            let slot = match old.by_id.get(&entry.id) {
                Some(prev) if prev.rule.entry == *entry => prev.clone(),
                Some(prev)
                    if prev.rule.entry.target == entry.target
                        && prev.rule.entry.per_tenant == entry.per_tenant =>
                {
                    let rule = Arc::new(Rule::new(entry));
                    prev.states.reconfigure(rule.clone());
                    Arc::new(Slot {
                        rule,
                        states: prev.states.clone(),
                    })
                }
                _ => {
                    let rule = Arc::new(Rule::new(entry));
                    let states = Arc::new(States::new(shared, rule.clone()));
                    Arc::new(Slot { rule, states })
                }
            };
            index.by_id.insert(entry.id.clone(), slot);
        }
        // By target, each list in id order (the order permits are taken in).
        for slot in index.by_id.values() {
            let target = &slot.rule.entry.target;
            let map = match target.kind {
                BreakerTargetKind::Model => &mut index.by_model,
                BreakerTargetKind::Upstream => &mut index.by_upstream,
                BreakerTargetKind::Route => &mut index.by_route,
            };
            map.entry(target.name.clone())
                .or_default()
                .push(slot.clone());
        }
        let unused = old
            .by_id
            .iter()
            .filter(|(id, prev)| {
                index
                    .by_id
                    .get(*id)
                    .is_none_or(|now| !Arc::ptr_eq(&now.states, &prev.states))
            })
            .map(|(_, prev)| prev.states.clone())
            .collect();
        (index, unused)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The rules whose target is `kind` `name`, in id order.
    pub fn by_target(&self, kind: BreakerTargetKind, name: &str) -> &[Arc<Slot>] {
        let map = match kind {
            BreakerTargetKind::Model => &self.by_model,
            BreakerTargetKind::Upstream => &self.by_upstream,
            BreakerTargetKind::Route => &self.by_route,
        };
        map.get(name).map_or(&[], Vec::as_slice)
    }

    /// The rules that apply to `call`: target matching its model, upstream or route, and no
    /// tenant filter or the call's tenant.
    pub fn matching<'a>(&'a self, call: CallTarget<'a>) -> impl Iterator<Item = &'a Arc<Slot>> {
        let lists = [
            call.model
                .map(|n| self.by_target(BreakerTargetKind::Model, n)),
            call.upstream
                .map(|n| self.by_target(BreakerTargetKind::Upstream, n)),
            call.route
                .map(|n| self.by_target(BreakerTargetKind::Route, n)),
        ];
        lists
            .into_iter()
            .flatten()
            .flatten()
            .filter(move |slot| slot.applies_to(call.tenant_id))
    }
}
