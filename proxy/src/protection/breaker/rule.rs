//! A breaker rule compiled for the hot path: durations precomputed, numbers sanitized, and
//! the two questions a state asks its rule — "does this window trip?" and "how long do I stay
//! open?".

use std::time::Duration;

use medgate_config::{BreakerEntry, BreakerStrategy};

use super::window::WindowStats;

/// One rule as the state machine uses it. Built from a [`BreakerEntry`] that the snapshot
/// loader has validated; values that would still make no sense (a zero window, a NaN
/// threshold) are clamped rather than trusted, because a breaker must never panic or divide
/// by zero on a rule.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rule {
    /// The rule as received, for matching and for change detection.
    pub entry: BreakerEntry,
    /// Threshold of the count strategies, at least 1.
    count_threshold: u64,
    /// Threshold of the ratio strategies, in (0, 1].
    ratio_threshold: f64,
    pub min_requests: u64,
    /// At least 1, so window arithmetic never divides by zero.
    pub window_ms: u64,
    pub slow_call: Duration,
    open_ms: u64,
    /// The backoff cap; `open_ms` when there is no backoff.
    max_open_ms: u64,
    /// At least 1: a half-open state that admits nobody could never close.
    pub half_open_probes: u32,
    pub half_open_max_wait: Duration,
}

impl Rule {
    pub fn new(entry: &BreakerEntry) -> Self {
        let threshold = if entry.threshold.is_finite() {
            entry.threshold
        } else {
            1.0
        };
        // Counts are whole numbers; a fractional count is rounded up so `>=` keeps meaning
        // "reached the threshold".
        let count_threshold = threshold.ceil().max(1.0) as u64;
        let ratio_threshold = if threshold > 0.0 {
            threshold.min(1.0)
        } else {
            1.0
        };
        let open_ms = entry.open_ms;
        Self {
            entry: entry.clone(),
            count_threshold,
            ratio_threshold,
            min_requests: u64::from(entry.min_requests.max(1)),
            window_ms: entry.window_ms.max(1),
            slow_call: Duration::from_millis(entry.slow_call_ms.unwrap_or(0)),
            open_ms,
            max_open_ms: entry.max_open_ms.unwrap_or(open_ms).max(open_ms),
            half_open_probes: entry.half_open_probes.max(1),
            // At least 1 ms: a round that expires the instant it starts would reopen at once.
            half_open_max_wait: Duration::from_millis(entry.half_open_max_wait_ms.max(1)),
        }
    }

    /// Whether the closed-state statistics (already rolled to `now`'s window) trip the
    /// breaker. Every comparison is `>=` (resilience4j's semantics, documented in
    /// `BreakerStrategy`).
    pub fn trips(&self, stats: &WindowStats) -> bool {
        match self.entry.strategy {
            // Counts across windows: the window and min_requests do not apply.
            BreakerStrategy::ConsecutiveFailures => stats.consecutive >= self.count_threshold,
            BreakerStrategy::ErrorCount => {
                stats.calls >= self.min_requests && stats.failures >= self.count_threshold
            }
            BreakerStrategy::ErrorRatio | BreakerStrategy::SlowRatio => {
                // Division, not `failures >= threshold * calls`: a correctly rounded quotient
                // equals the literal ratio exactly (3 / 5 == 0.6), a product may not
                // (0.6 * 5 == 3.0000000000000004).
                stats.calls >= self.min_requests
                    && stats.calls > 0
                    && stats.failures as f64 / stats.calls as f64 >= self.ratio_threshold
            }
        }
    }

    /// How long the breaker stays open after `failed_rounds` consecutive failed half-open
    /// rounds: `open_ms * 2^failed_rounds`, capped at `max_open_ms` (which is `open_ms`
    /// without backoff). Saturating, so no step count overflows.
    pub fn open_duration(&self, failed_rounds: u32) -> Duration {
        let mut ms = self.open_ms;
        for _ in 0..failed_rounds {
            if ms >= self.max_open_ms {
                break;
            }
            ms = ms.saturating_mul(2);
        }
        Duration::from_millis(ms.min(self.max_open_ms))
    }

    /// The number of the tumbling window `now` falls in.
    pub fn window_index(&self, now: Duration) -> u64 {
        let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        ms / self.window_ms
    }
}
