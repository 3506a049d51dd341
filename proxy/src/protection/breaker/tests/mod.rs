//! Library-level tests of the breaker scenarios of resilience.md §5.1 (numbered as there),
//! on a manual clock. Unless stated: consecutive failures N = 5, open 10 s, one probe.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use medgate_config::{
    BreakerEntry, BreakerReport, BreakerState, BreakerStrategy, BreakerTarget, BreakerTargetKind,
};

use super::{Breakers, CallOutcome, CallTarget, Permits};
use crate::protection::clock::ManualClock;

mod closed;
mod half_open;
mod scope;
mod updates;

/// A call to model `m` of tenant `t1`.
const M: CallTarget<'static> = CallTarget {
    tenant_id: "t1",
    model: Some("m"),
    upstream: None,
    route: None,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The §5.1 default rule: consecutive failures N = 5 on model `m`, open 10 s, one probe.
fn rule(id: &str) -> BreakerEntry {
    BreakerEntry {
        id: id.to_owned(),
        tenant_id: None,
        target: BreakerTarget {
            kind: BreakerTargetKind::Model,
            name: "m".to_owned(),
        },
        per_tenant: false,
        strategy: BreakerStrategy::ConsecutiveFailures,
        threshold: 5.0,
        slow_call_ms: None,
        min_requests: 5,
        window_ms: 10_000,
        open_ms: 10_000,
        max_open_ms: None,
        half_open_probes: 1,
        half_open_max_wait_ms: 30_000,
        count_429: false,
    }
}

fn on(mut entry: BreakerEntry, kind: BreakerTargetKind, name: &str) -> BreakerEntry {
    entry.target = BreakerTarget {
        kind,
        name: name.to_owned(),
    };
    entry
}

fn ok() -> CallOutcome {
    CallOutcome::status(200, ms(100))
}

fn status(code: u16) -> CallOutcome {
    CallOutcome::status(code, ms(100))
}

fn fail() -> CallOutcome {
    CallOutcome::status(503, ms(100))
}

struct Harness {
    clock: Arc<ManualClock>,
    breakers: Breakers,
}

impl Harness {
    fn new(rules: &[BreakerEntry]) -> Self {
        let clock = ManualClock::new();
        let breakers = Breakers::new(clock.clone());
        breakers.apply(rules, &BTreeMap::new());
        Self { clock, breakers }
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn acquire(&self, call: CallTarget<'_>) -> Option<Permits> {
        self.breakers.acquire(&call).ok()
    }

    /// Makes a call with `outcome` if the breakers admit it; whether they did.
    fn call(&self, call: CallTarget<'_>, outcome: CallOutcome) -> bool {
        match self.breakers.acquire(&call) {
            Ok(permits) => {
                permits.record(outcome);
                true
            }
            Err(_) => false,
        }
    }

    /// `n` calls with `outcome`; how many were admitted.
    fn calls(&self, call: CallTarget<'_>, outcome: CallOutcome, n: usize) -> usize {
        (0..n).filter(|_| self.call(call, outcome)).count()
    }

    fn report(&self, id: &str, tenant: Option<&str>) -> BreakerReport {
        let reports = self.breakers.reports();
        match reports
            .into_iter()
            .find(|r| r.breaker_id == id && r.tenant_id.as_deref() == tenant)
        {
            Some(report) => report,
            None => panic!("no report for {id} {tenant:?}"),
        }
    }

    fn state(&self, id: &str) -> BreakerState {
        self.report(id, None).state
    }

    fn transitions(&self) -> u64 {
        *self.breakers.transitions().borrow()
    }
}

/// What the gateway relies on: one `Breakers` shared by all requests, permits that move
/// into spawned tasks.
#[test]
fn types_are_shareable() {
    fn shared<T: Send + Sync + 'static>() {}
    fn movable<T: Send + 'static>() {}
    shared::<Breakers>();
    movable::<Permits>();
    movable::<super::BreakerRefusal>();
}
