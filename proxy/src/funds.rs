//! The money gate of the data plane (DESIGN.md §4 step 5; issue 5): a tenant on a spending
//! limit whose balance plus overdraft is spent gets 402.
//!
//! The control plane debits usage when it ingests usage events; the proxy learns each gated
//! tenant's spendable amount from the funds feed. Between the two, the proxy counts what it
//! knows and the feed does not yet show:
//! * `reserved`: the estimated cost of requests in flight, taken before forwarding (a request
//!   whose estimate does not fit in what is left is refused) and released when it ends;
//! * `pending`: the actual cost of finished requests until the feed reflects their debit. A
//!   request's debit is in the balances once the control plane accepted its usage event (the
//!   sink reports it: [`Funds::delivered`]); the first feed answer fetched after that shows it,
//!   and the pending amount is dropped then.
//!
//! So a tenant can overshoot its limit by at most the difference between the actual and the
//! estimated cost of the requests in flight when it ran out (the estimate counts `max_tokens`,
//! or 512 output tokens when the request sets none), per proxy. Without a feed (static mode)
//! nothing is gated.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use medgate_config::FundsEntry;

const MICROS_PER_MINOR: i128 = 1_000_000;

#[derive(Debug, Default)]
struct TenantFunds {
    spendable_micros: i128,
    reserved_micros: i128,
    pending_micros: i128,
}

impl TenantFunds {
    fn available(&self) -> i128 {
        self.spendable_micros - self.reserved_micros - self.pending_micros
    }
}

#[derive(Debug)]
struct Pending {
    tenant_id: String,
    micros: i128,
    /// The delivery epoch in which the control plane accepted the usage event.
    delivered_in: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// Gated tenants only.
    tenants: HashMap<String, TenantFunds>,
    /// By request id.
    pending: HashMap<String, Pending>,
}

/// Funds of gated tenants, shared by all requests.
#[derive(Debug, Default)]
pub struct Funds {
    state: Mutex<State>,
    /// Bumped on every accepted usage delivery.
    epoch: AtomicU64,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    pub available_minor: i64,
}

/// An estimate held while a request runs; released when dropped unless settled.
#[derive(Debug)]
pub struct Reservation {
    funds: Arc<Funds>,
    tenant_id: String,
    micros: i128,
    settled: bool,
}

impl Funds {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current delivery epoch: take it before fetching the feed.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Takes in a feed answer fetched after `epoch` was read: new spendable amounts (a tenant
    /// without a limit stops being gated), and drops the pending costs delivered before the
    /// fetch began (the answer includes their debits).
    pub fn apply(&self, funds: &[FundsEntry], epoch: u64) {
        let mut state = self.lock();
        for f in funds {
            match f.spendable_minor {
                Some(minor) => {
                    state
                        .tenants
                        .entry(f.tenant_id.clone())
                        .or_default()
                        .spendable_micros = i128::from(minor) * MICROS_PER_MINOR;
                }
                None => {
                    state.tenants.remove(&f.tenant_id);
                }
            }
        }
        let State { tenants, pending } = &mut *state;
        pending.retain(|_, p| {
            let reflected = p.delivered_in.is_some_and(|d| d <= epoch);
            if reflected {
                if let Some(t) = tenants.get_mut(&p.tenant_id) {
                    t.pending_micros -= p.micros;
                }
            }
            !reflected
        });
    }

    /// Whether some delivered cost waits for a feed answer (then the feed is asked at once
    /// instead of long-polling).
    pub fn awaiting_feed(&self) -> bool {
        self.lock()
            .pending
            .values()
            .any(|p| p.delivered_in.is_some())
    }

    /// Reserves `estimate_micros` for a request of `tenant_id`; None when the tenant is not
    /// gated; refused when the estimate does not fit in what is left.
    pub fn reserve(
        self: &Arc<Self>,
        tenant_id: &str,
        estimate_micros: i64,
    ) -> Result<Option<Reservation>, Exhausted> {
        let mut state = self.lock();
        let Some(t) = state.tenants.get_mut(tenant_id) else {
            return Ok(None);
        };
        let estimate = i128::from(estimate_micros.max(0));
        let available = t.available();
        if available <= 0 || available < estimate {
            return Err(Exhausted {
                available_minor: i64::try_from(available.div_euclid(MICROS_PER_MINOR))
                    .unwrap_or(i64::MIN),
            });
        }
        t.reserved_micros += estimate;
        Ok(Some(Reservation {
            funds: Arc::clone(self),
            tenant_id: tenant_id.to_owned(),
            micros: estimate,
            settled: false,
        }))
    }

    /// The control plane accepted these usage events: their debits are in the balances.
    pub fn delivered<'a>(&self, request_ids: impl Iterator<Item = &'a str>) {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let mut state = self.lock();
        if state.pending.is_empty() {
            return;
        }
        for id in request_ids {
            if let Some(p) = state.pending.get_mut(id) {
                p.delivered_in = Some(epoch);
            }
        }
    }

    fn release(&self, tenant_id: &str, micros: i128) {
        if let Some(t) = self.lock().tenants.get_mut(tenant_id) {
            t.reserved_micros -= micros;
        }
    }
}

impl Reservation {
    /// The request ended costing `actual_micros`: the estimate is released and the actual
    /// cost counted until the feed shows the debit of `request_id`.
    pub fn settle(mut self, request_id: &str, actual_micros: i64) {
        self.settled = true;
        let actual = i128::from(actual_micros.max(0));
        let mut state = self.funds.lock();
        let Some(t) = state.tenants.get_mut(&self.tenant_id) else {
            return;
        };
        t.reserved_micros -= self.micros;
        if actual > 0 {
            t.pending_micros += actual;
            state.pending.insert(
                request_id.to_owned(),
                Pending {
                    tenant_id: self.tenant_id.clone(),
                    micros: actual,
                    delivered_in: None,
                },
            );
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.funds.release(&self.tenant_id, self.micros);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gated(tenant: &str, minor: Option<i64>) -> FundsEntry {
        FundsEntry {
            tenant_id: tenant.into(),
            spendable_minor: minor,
            currency: "CNY".into(),
        }
    }

    #[test]
    fn an_estimate_that_does_not_fit_is_refused() {
        let funds = Arc::new(Funds::default());
        funds.apply(&[gated("t", Some(1))], funds.epoch()); // 1,000,000 micros
        let a = funds.reserve("t", 600_000).expect("fits").expect("gated");
        assert!(funds.reserve("t", 600_000).is_err(), "only 400,000 left");
        drop(a);
        assert!(funds.reserve("t", 600_000).is_ok(), "released");
        assert!(
            funds.reserve("other", 10).expect("ok").is_none(),
            "not gated"
        );
    }

    #[test]
    fn a_finished_cost_counts_until_the_feed_shows_its_debit() {
        let funds = Arc::new(Funds::default());
        funds.apply(&[gated("t", Some(1))], funds.epoch());
        let r = funds.reserve("t", 500_000).expect("fits").expect("gated");
        r.settle("req-1", 700_000);
        assert!(funds.reserve("t", 400_000).is_err(), "300,000 left");
        // A feed answer fetched before the delivery still counts the pending cost.
        let before = funds.epoch();
        funds.delivered(["req-1"].into_iter());
        assert!(funds.awaiting_feed());
        funds.apply(&[gated("t", Some(1))], before);
        assert!(funds.reserve("t", 400_000).is_err());
        // Fetched after the delivery: the balance (now 0.3 minor after the debit) includes it.
        let after = funds.epoch();
        funds.apply(&[gated("t", Some(0))], after);
        assert!(!funds.awaiting_feed());
        assert!(funds.reserve("t", 1).is_err(), "spent");
        funds.apply(&[gated("t", None)], funds.epoch());
        assert!(
            funds.reserve("t", 1).expect("ok").is_none(),
            "no limit any more"
        );
    }
}
