//! Circuit breakers (DESIGN.md §4 step 4; API §6.1; resilience.md §1, §5.1).
//!
//! A breaker watches the outcomes of calls to one target (a model, an upstream or a route)
//! and, when they go bad, refuses further calls locally for a while so that a failing backend
//! gets room to recover and clients get a fast answer instead of a slow error.
//!
//! # Why our own state machine and not `failsafe`
//!
//! resilience.md §2.1 lists what `failsafe` 1.3 lacks for us, and each item is a requirement:
//! it has no state getter (reports and `state_of` need the state, its `since` and the time
//! an open breaker retries), its half-open state lets *every* call through (a thundering herd
//! on a recovering model backend; we need exactly `half_open_probes`), it has no slow-call
//! policy (we need a slow ratio measured on time to first token), its policies are generic
//! types (a rule update would mean a new breaker and lost state) and its test clock is
//! thread-local. The state machine here is small: Sentinel's rule model (§1.1) with
//! resilience4j's half-open permits and `maxWaitDurationInHalfOpenState` (§1.2).
//!
//! # The state machine (one per rule, or per (rule, tenant) when `per_tenant`)
//!
//! * **Closed**: every call passes. Outcomes update a tumbling window of `window_ms`
//!   (aligned to multiples of `window_ms` on the clock, like Sentinel's single bucket) and a
//!   consecutive-failure count. The strategy trips with `>=`: `consecutive_failures` when the
//!   count reaches `threshold` (no window, no `min_requests`); `error_count` when the window
//!   holds `threshold` failures; `error_ratio` and `slow_ratio` when failures / calls
//!   `>= threshold` (0.5 trips at exactly half). The window strategies need `min_requests`
//!   calls in the current window first.
//! * **Open** for `open_ms`; with `max_open_ms`, every consecutive failed half-open round
//!   doubles it up to the cap (10 -> 20 -> 40 s), back to `open_ms` once the breaker closes.
//!   Every call is refused with the time left as `retry_after`.
//! * **HalfOpen**: at `now >= opened + open duration` the next acquire enters half-open and
//!   exactly `half_open_probes` calls get a probe permit (a counter under the state's mutex).
//!   All probes succeeding closes the breaker with fresh counters; any failing reopens it
//!   (next backoff step). A probe permit dropped without an outcome counts as a failure; a
//!   round older than `half_open_max_wait_ms` reopens on the next acquire, so a hung probe
//!   cannot leave the breaker stuck.
//!
//! Transitions are decided under the state's mutex, so each happens exactly once however
//! many threads report at the same moment; each then bumps the counter behind
//! [`Breakers::transitions`] (after the mutex is released, so a watcher may see the new state
//! a moment before the count). Outcomes are tagged with the state they were admitted in: an
//! outcome arriving after the state changed (a call admitted while closed that finishes after
//! the breaker opened, a hung probe reporting after its round expired) is ignored.
//!
//! # What counts (see [`classify`])
//!
//! No response (connect error, timeout, cut) and 5xx are failures; 429 only with
//! `count_429`; every other status is a success. For `slow_ratio` the "failures" are slow
//! calls: time to first byte above `slow_call_ms`. Local refusals never reach a breaker: the
//! caller acquires only after its local checks passed, and [`Permits::cancel`] is not counted.
//!
//! # Rule updates ([`Breakers::apply`])
//!
//! * An unchanged rule keeps its state and counters.
//! * A changed rule keeps its state (an open breaker stays open until its time, a half-open
//!   round runs to its end) but its window and consecutive counters restart and the new
//!   thresholds apply from the next call. Exception: when the rule's target or `per_tenant`
//!   changed it is a breaker on something else, and it starts fresh (closed).
//! * A removed rule stops at once: its states are dropped and its outstanding permits
//!   report into nothing.
//!
//! # Manual recovery
//!
//! [`Breakers::recover`] closes the matching states and resets their counters. Targets: a
//! rule id, `model:<name>`, `upstream:<label>` or `route:<id>`. The snapshot carries
//! `recoveries` (target -> counter); `apply` recovers a target when its counter grew since
//! the previous snapshot (the first snapshot only records the counters).

mod cell;
mod classify;
mod index;
mod permit;
mod recovery;
mod registry;
mod report;
mod rule;
mod window;

#[cfg(test)]
mod tests;

use std::time::Duration;

use medgate_config::BreakerState;

pub use classify::{is_error_status, is_failure};
pub use permit::Permits;
pub use registry::Breakers;

/// What a call is about to reach; breakers whose target matches any field apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallTarget<'a> {
    pub tenant_id: &'a str,
    pub model: Option<&'a str>,
    pub upstream: Option<&'a str>,
    pub route: Option<&'a str>,
}

/// How an admitted call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallOutcome {
    /// The upstream's HTTP status; None when no response came (connect error, timeout,
    /// connection cut before the status).
    pub status: Option<u16>,
    /// Time to the first byte of the response body (first token of a stream), not the total
    /// stream time; None when it was not measured.
    pub ttfb: Option<Duration>,
}

impl CallOutcome {
    /// A response with this status and time to first byte.
    pub fn status(status: u16, ttfb: Duration) -> Self {
        Self {
            status: Some(status),
            ttfb: Some(ttfb),
        }
    }

    /// No response at all (connect error, timeout, upstream cut).
    pub fn no_response() -> Self {
        Self {
            status: None,
            ttfb: None,
        }
    }
}

/// A call refused by a breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerRefusal {
    /// The refusing rule's id.
    pub breaker_id: String,
    /// Open, or HalfOpen when every probe permit is taken.
    pub state: BreakerState,
    /// When trying again may succeed: the time left open, or for a half-open breaker the
    /// longest its probe round can still last. Never zero (a client told "retry in 0 s"
    /// would spin).
    pub retry_after: Duration,
}
