//! Failure classification: the one place that decides whether an outcome counts against a
//! breaker.

use std::time::Duration;

use medgate_config::{BreakerEntry, BreakerStrategy};

use super::CallOutcome;

/// Whether `outcome` is a failure for `rule` (a failure in the sense of the rule's strategy).
///
/// * Error strategies (`consecutive_failures`, `error_count`, `error_ratio`): no response
///   (connect error, timeout, upstream cut) or a 5xx is a failure; a 429 is a failure only
///   with `count_429` (an upstream's rate limit is not ill health unless the operator says
///   so); every other status (2xx, 3xx, 400, 401, 404, ...) is a success, since the client
///   asked for something wrong, not the backend.
/// * `slow_ratio`: a call is a "failure" when it was slow: its time to first byte/token is
///   strictly above `slow_call_ms`. The total stream time never counts, or every long
///   generation would look slow. A call with no response at all (timeout, connect error) is
///   slow too: it never produced a first byte, and a dead backend must not look fast to a
///   latency breaker. A response whose first byte was not measured is not slow.
///
/// Local refusals (rate limits, isolation, other breakers) never get here: they take no
/// permit or cancel it.
pub fn is_failure(rule: &BreakerEntry, outcome: &CallOutcome) -> bool {
    match rule.strategy {
        BreakerStrategy::SlowRatio => match (outcome.status, outcome.ttfb) {
            (_, Some(ttfb)) => ttfb > Duration::from_millis(rule.slow_call_ms.unwrap_or(0)),
            (None, None) => true,
            (Some(_), None) => false,
        },
        BreakerStrategy::ConsecutiveFailures
        | BreakerStrategy::ErrorCount
        | BreakerStrategy::ErrorRatio => is_error_status(outcome.status, rule.count_429),
    }
}

/// The status half of [`is_failure`], for figures kept outside any rule (service reports
/// count failures "as breakers classify them"): no response or 5xx is a failure, 429 only
/// when `count_429`, anything else is not.
pub fn is_error_status(status: Option<u16>, count_429: bool) -> bool {
    match status {
        None => true,
        Some(status) if status >= 500 => true,
        Some(429) => count_429,
        Some(_) => false,
    }
}
