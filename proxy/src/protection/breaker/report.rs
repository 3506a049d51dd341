//! What the breakers tell the outside: heartbeat reports and the state of a service.

use medgate_config::{BreakerReport, BreakerState};

use super::recovery::parse_service;
use super::registry::Breakers;
use crate::protection::clock::wall_time;

impl Breakers {
    /// One report per live state (a per-tenant rule has one per tenant that called), in rule
    /// id then tenant order. Times are wall-clock RFC 3339. The state is as last decided:
    /// an open breaker whose time is over still reads `open` (with `next_retry_at` in the
    /// past) until a call moves it to half-open.
    pub fn reports(&self) -> Vec<BreakerReport> {
        let index = self.index();
        let clock = self.clock().as_ref();
        let mut reports = Vec::new();
        for slot in index.by_id.values() {
            for cell in slot.states.cells() {
                let view = cell.view();
                reports.push(BreakerReport {
                    breaker_id: cell.breaker_id.clone(),
                    tenant_id: cell.tenant_id.clone(),
                    state: view.state,
                    since: wall_time(clock, view.since),
                    next_retry_at: view.next_retry_at.map(|at| wall_time(clock, at)),
                    times_opened: view.times_opened,
                    window_calls: view.window_calls,
                    window_failures: view.window_failures,
                });
            }
        }
        reports
    }

    /// The worst state (open, then half-open, then closed) of the breakers on `service`
    /// (`model:<name>`, `upstream:<label>` or `route:<id>`), over every tenant's state.
    /// Closed when no breaker is on it or the name is not a service name.
    pub fn state_of(&self, service: &str) -> BreakerState {
        let Some((kind, name)) = parse_service(service) else {
            return BreakerState::Closed;
        };
        let index = self.index();
        let mut worst = BreakerState::Closed;
        for slot in index.by_target(kind, name) {
            for cell in slot.states.cells() {
                let state = cell.view().state;
                if severity(state) > severity(worst) {
                    worst = state;
                }
            }
        }
        worst
    }
}

fn severity(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}
