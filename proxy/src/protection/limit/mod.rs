//! Rate limiting (DESIGN.md §4 step 4; resilience.md §2.2, §3.1, §5.4–§5.6).
//!
//! One algorithm everywhere: GCRA, a leaky bucket whose state per counter is a theoretical
//! arrival time, with debt (see [`gcra`]). We do not use `governor`: it has no debit/refund
//! API (its `check_n` silently drops a post-hoc debit that does not conform, so token usage
//! known only after the response would be lost) and no all-or-nothing check across several
//! limits.
//!
//! Flow for one request:
//! 1. [`LimitRules::compile`] (per snapshot) gives the rules; [`Limiter::admit`] picks those
//!    that apply to the request and charges each one's counter: 1 for `requests` rules, the
//!    caller's token estimate for `tokens` rules.
//! 2. The check is all-or-nothing: every counter is charged or none. Local rules are
//!    charged first (in memory, atomically); cluster rules then run in one Redis script
//!    (atomic in Redis). If Redis refuses, the local charges are refunded.
//! 3. [`Admission::settle`] reconciles token rules with the actual usage once the response
//!    is known; a debit beyond what is left is kept as debt, never dropped.
//!
//! Refusals: [`LimitRefusal::Exceeded`] (429 with Retry-After), [`LimitRefusal::CostAboveBurst`]
//! (the request can never pass: non-retryable, not 429), [`LimitRefusal::StoreUnavailable`]
//! (a `fail_closed` cluster rule while Redis is unreachable: 503).
//!
//! Memory: counter keys are built only from identities the caller has authenticated or
//! resolved (tenant id, API key id, a catalog model, a route id), so unauthenticated traffic
//! cannot create state; the caller runs [`Limiter::sweep`] on a timer to drop drained keys.

mod admission;
mod gcra;
mod limiter;
mod local;
mod redis;
mod rules;

#[cfg(test)]
mod limiter_tests;
#[cfg(test)]
mod redis_outage_tests;
#[cfg(test)]
mod redis_tests;

use std::time::Duration;

pub use admission::Admission;
pub use limiter::{Limiter, MAX_TOKENS_PER_REQUEST};
pub use redis::RedisLimitStore;
pub use rules::LimitRules;

/// Who is asking, as the caller has already authenticated and resolved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRequest<'a> {
    pub tenant_id: &'a str,
    pub api_key_id: Option<&'a str>,
    /// The catalog model the request resolved to (never an unvalidated client string).
    pub model: Option<&'a str>,
    pub route_id: Option<&'a str>,
}

/// `X-RateLimit-*` figures of the most restrictive rule (the least room left, as a fraction
/// of its capacity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// The rule's capacity (burst, or limit).
    pub limit: u64,
    /// Whole units left after this request.
    pub remaining: u64,
    /// Seconds until the counter is empty again (rounded up).
    pub reset_secs: u64,
}

/// Why a request was not admitted. Nothing was charged in any case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitRefusal {
    /// Over a limit: answer 429 with `Retry-After: retry_after` (whole seconds, at least 1:
    /// the time until the rule would admit this request).
    #[error("rate limit {rule_id} exceeded; retry after {retry_after:?}")]
    Exceeded {
        rule_id: String,
        retry_after: Duration,
        headers: RateLimitHeaders,
    },
    /// The request alone costs more than the rule's capacity: it can never pass (4xx, not
    /// 429).
    #[error("request costs {cost} but rate limit {rule_id} allows at most {capacity} at once")]
    CostAboveBurst {
        rule_id: String,
        cost: u64,
        capacity: u64,
    },
    /// A `fail_closed` cluster rule while its store is unreachable: answer 503.
    #[error("rate-limit store unavailable for rule {rule_id}")]
    StoreUnavailable { rule_id: String },
}
