//! GCRA (leaky bucket with debt): the arithmetic shared by the local store and, transcribed
//! to Lua, by the Redis scripts.
//!
//! State per counter is one number, the theoretical arrival time (TAT, nanoseconds on the
//! store's clock). With emission interval `t` and capacity `B`:
//!
//! * level = max(0, TAT - now) / t (units in the bucket, may exceed B when in debt);
//! * a cost `n` is admitted iff level + n <= B, and then TAT = max(TAT, now) + n*t;
//! * a refusal changes nothing;
//! * an adjustment `delta` (post-hoc reconciliation) always applies: TAT = max(TAT, now) +
//!   delta*t, floored at now. A debit larger than what is left leaves debt instead of being
//!   dropped, which is what `governor::check_n` cannot do (resilience.md §2.2).
//!
//! Every computation is done in u128 and saturates into u64, so no input can overflow or
//! panic (a debt beyond u64::MAX nanoseconds, ~584 years, is simply capped).

use std::time::Duration;

use medgate_config::RateLimitEntry;

use super::RateLimitHeaders;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The rate and capacity of one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// Nanoseconds one unit takes to drain (window / limit), at least 1.
    interval_ns: u64,
    /// Most units the bucket holds (the rule's burst, or its limit).
    capacity: u64,
}

impl Gcra {
    /// `limit` units per `window_ns`, holding at most `capacity` (both floored at 1, so a
    /// malformed rule degrades to a strict limit instead of dividing by zero).
    pub(crate) fn new(window_ns: u64, limit: u64, capacity: u64) -> Self {
        Self {
            interval_ns: (window_ns / limit.max(1)).max(1),
            capacity: capacity.max(1),
        }
    }

    /// The rule's own bucket.
    pub(crate) fn for_rule(rule: &RateLimitEntry) -> Self {
        Self::new(window_ns(rule), rule.limit, rule.capacity())
    }

    /// The bucket a proxy enforces alone while the cluster store is unreachable: the rate is
    /// `fallback_limit` (or `limit`), the capacity scaled by the same ratio (burst / replicas
    /// when fallback_limit = limit / replicas), rounded up.
    pub(crate) fn fallback_for_rule(rule: &RateLimitEntry) -> Self {
        let limit = rule.limit.max(1);
        let fallback = rule.fallback_limit.unwrap_or(limit).max(1);
        let scaled =
            (u128::from(rule.capacity()) * u128::from(fallback)).div_ceil(u128::from(limit));
        Self::new(window_ns(rule), fallback, saturate(scaled))
    }

    pub(crate) fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Admits `cost` at `now` against `tat`: Ok(new TAT) when level + cost <= capacity,
    /// otherwise Err(how long until it would be admitted). Callers refuse cost > capacity
    /// beforehand (it could never pass); here it simply yields a wait.
    pub(crate) fn check(&self, tat: u64, now: u64, cost: u64) -> Result<u64, Duration> {
        let t = u128::from(self.interval_ns);
        let base = u128::from(tat.max(now));
        let after = base + u128::from(cost) * t;
        let limit_point = u128::from(now) + u128::from(self.capacity) * t;
        if after <= limit_point {
            Ok(saturate(after))
        } else {
            Err(nanos(after - limit_point))
        }
    }

    /// Admission test for a request that may be larger than the bucket (local fallback):
    /// the test uses min(cost, capacity), so an oversized request passes only on an empty
    /// bucket, but the full cost is charged and left as debt.
    pub(crate) fn check_capped(&self, tat: u64, now: u64, cost: u64) -> Result<u64, Duration> {
        self.check(tat, now, cost.min(self.capacity))?;
        Ok(self.adjust(tat, now, i128::from(cost)))
    }

    /// Applies a post-hoc debit (delta > 0) or refund (delta < 0) unconditionally.
    pub(crate) fn adjust(&self, tat: u64, now: u64, delta: i128) -> u64 {
        let base = i128::from(tat.max(now));
        let moved = base.saturating_add(delta.saturating_mul(i128::from(self.interval_ns)));
        let floored = moved.max(i128::from(now));
        u64::try_from(floored).unwrap_or(u64::MAX)
    }

    /// Header figures after a request left the counter at `tat`.
    pub(crate) fn headers(&self, tat: u64, now: u64) -> RateLimitHeaders {
        let t = u128::from(self.interval_ns);
        let level_ns = u128::from(tat.saturating_sub(now));
        let room_ns = (u128::from(self.capacity) * t).saturating_sub(level_ns);
        RateLimitHeaders {
            limit: self.capacity,
            remaining: saturate(room_ns / t),
            reset_secs: saturate(level_ns.div_ceil(NANOS_PER_SEC)),
        }
    }

    /// Fraction of the capacity left at `tat` (compares rules of different units).
    pub(crate) fn room_fraction(&self, tat: u64, now: u64) -> f64 {
        let h = self.headers(tat, now);
        h.remaining as f64 / h.limit.max(1) as f64
    }
}

/// The rule's window in nanoseconds.
fn window_ns(rule: &RateLimitEntry) -> u64 {
    rule.window.as_millis().saturating_mul(1_000_000)
}

/// A wait rounded up to whole seconds, at least one (the Retry-After contract).
pub(crate) fn retry_after(wait: Duration) -> Duration {
    let secs = u128::from(wait.as_secs()) + u128::from(wait.subsec_nanos() > 0);
    Duration::from_secs(saturate(secs.max(1)))
}

fn saturate(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn nanos(v: u128) -> Duration {
    Duration::from_nanos(saturate(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn per_minute(limit: u64) -> Gcra {
        Gcra::new(60 * SEC, limit, limit)
    }

    #[test]
    fn a_full_bucket_admits_exactly_its_capacity_then_waits_one_interval() {
        let g = per_minute(60);
        let mut tat = 0;
        for _ in 0..60 {
            tat = g.check(tat, 0, 1).expect("room");
        }
        assert_eq!(g.check(tat, 0, 1), Err(Duration::from_secs(1)));
        assert_eq!(g.check(tat, SEC, 1), Ok(61 * SEC));
    }

    #[test]
    fn refusal_leaves_state_and_large_debits_become_debt() {
        let g = per_minute(10);
        let tat = g.check(0, 0, 10).expect("room");
        assert!(g.check(tat, 0, 1).is_err());
        // A debit of 30 units on a full bucket: 30 more intervals of debt, not dropped.
        let tat = g.adjust(tat, 0, 30);
        assert_eq!(tat, 40 * 6 * SEC);
        // Refunds never go below "empty".
        assert_eq!(g.adjust(tat, 0, -1000), 0);
        // Zero cost still refuses while in debt (level > capacity).
        assert!(g.check(tat, 0, 0).is_err());
        assert!(g.check(tat, 30 * 6 * SEC, 0).is_ok());
    }

    #[test]
    fn headers_report_room_and_reset() {
        let g = per_minute(60);
        assert_eq!(
            g.headers(0, 0),
            RateLimitHeaders {
                limit: 60,
                remaining: 60,
                reset_secs: 0
            }
        );
        assert_eq!(
            g.headers(30 * SEC, 0),
            RateLimitHeaders {
                limit: 60,
                remaining: 30,
                reset_secs: 30
            }
        );
        assert_eq!(
            g.headers(SEC / 2, 0),
            RateLimitHeaders {
                limit: 60,
                remaining: 59,
                reset_secs: 1
            }
        );
        assert_eq!(g.headers(90 * SEC, 0).remaining, 0);
    }

    #[test]
    fn extreme_inputs_saturate_instead_of_panicking() {
        let g = Gcra::new(u64::MAX, 0, 0);
        assert_eq!(g.capacity(), 1);
        assert_eq!(g.adjust(u64::MAX, u64::MAX, i128::MAX), u64::MAX);
        assert_eq!(g.adjust(0, 0, i128::MIN), 0);
        assert!(g.check(u64::MAX, 0, u64::MAX).is_err());
        let tiny = Gcra::new(1, u64::MAX, u64::MAX);
        assert_eq!(tiny.interval_ns(), 1);
        let _ = tiny.headers(u64::MAX, 0);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(
            retry_after(Duration::from_millis(1)),
            Duration::from_secs(1)
        );
        assert_eq!(retry_after(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            retry_after(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(retry_after(Duration::from_secs(3)), Duration::from_secs(3));
    }

    #[test]
    fn fallback_bucket_scales_rate_and_capacity() {
        let mut rule = crate::protection::limit::rules::tests::rule("r");
        rule.limit = 100;
        rule.burst = Some(50);
        rule.fallback_limit = Some(10);
        let g = Gcra::fallback_for_rule(&rule);
        assert_eq!(g.capacity(), 5);
        assert_eq!(g.interval_ns(), 6 * SEC);
        // An oversized request passes only on an empty bucket and leaves debt.
        let tat = g.check_capped(0, 0, 8).expect("empty bucket");
        assert_eq!(tat, 48 * SEC);
        assert!(g.check_capped(tat, 0, 1).is_err());
    }
}
