//! How traffic protection answers on the inference path: refusals in OpenAI's error shape
//! with the right status and headers, and the token estimate rate limits admit on.

use std::time::Duration;

use serde_json::Value;

use super::request::Body;
use crate::openai_error::GatewayError;
use crate::protection::bulkhead::BulkheadRefusal;
use crate::protection::degrade::Unserved;
use crate::protection::limit::{LimitRefusal, RateLimitHeaders};

/// Output tokens assumed for a request that sets no `max_tokens` (reconciled afterwards).
const DEFAULT_OUTPUT_ESTIMATE: u64 = 512;
/// Ceiling of any estimate, so an absurd `max_tokens` cannot block a tenant for a day.
const MAX_ESTIMATE: u64 = 1_000_000;

/// Tokens a request may cost, as (input, output): its prompt (~4 bytes per token of the
/// body) and the output it allows. Token limits and spending reservations admit on this and
/// are reconciled with the reported usage.
pub fn estimate_tokens(body_len: usize, body: &Body, produces_output: bool) -> (u64, u64) {
    let prompt = (body_len as u64).div_ceil(4).min(MAX_ESTIMATE);
    let output = if produces_output {
        ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|k| body.fields.get(*k).and_then(Value::as_u64))
            .unwrap_or(DEFAULT_OUTPUT_ESTIMATE)
            .min(MAX_ESTIMATE)
    } else {
        0
    };
    (prompt, output)
}

/// A tenant whose balance plus overdraft is spent (or does not cover this request's
/// estimate).
pub fn funds_exhausted() -> GatewayError {
    GatewayError::new(
        402,
        "insufficient_quota",
        "insufficient_balance",
        "this tenant's balance is used up; top it up (e.g. redeem a recharge card) and retry",
    )
}

/// `X-RateLimit-*` headers of the most restrictive rule.
pub fn rate_headers(h: Option<RateLimitHeaders>) -> Vec<(&'static str, String)> {
    match h {
        Some(h) => vec![
            ("x-ratelimit-limit", h.limit.to_string()),
            ("x-ratelimit-remaining", h.remaining.to_string()),
            ("x-ratelimit-reset", h.reset_secs.to_string()),
        ],
        None => Vec::new(),
    }
}

fn retry_after(d: Duration) -> String {
    d.as_secs_f64().ceil().max(1.0).to_string()
}

/// A rate-limit refusal: 429 with Retry-After, or a non-retryable 400 for a request that
/// costs more than the limit's burst could ever allow.
pub fn limit_refused(r: LimitRefusal) -> GatewayError {
    match r {
        LimitRefusal::Exceeded {
            rule_id,
            retry_after: wait,
            headers,
        } => {
            let mut e = GatewayError::new(
                429,
                "rate_limit_error",
                "rate_limit_exceeded",
                format!(
                    "rate limit {rule_id} reached: retry after {} s",
                    retry_after(wait)
                ),
            )
            .with_header("retry-after", retry_after(wait));
            for (name, value) in rate_headers(Some(headers)) {
                e = e.with_header(name, value);
            }
            e
        }
        LimitRefusal::CostAboveBurst {
            rule_id,
            cost,
            capacity,
        } => GatewayError::new(
            400,
            "invalid_request_error",
            "request_exceeds_rate_limit",
            format!(
                "this request may cost {cost} tokens, more than rate limit {rule_id} allows at \
                 once ({capacity}); lower max_tokens or the prompt"
            ),
        ),
        LimitRefusal::StoreUnavailable { rule_id } => GatewayError::new(
            503,
            "api_error",
            "rate_limit_unavailable",
            format!("rate limit {rule_id} cannot be checked right now; retry shortly"),
        )
        .with_header("retry-after", "1"),
    }
}

/// A bulkhead refusal: the tenant has too many requests in flight.
pub fn bulkhead_refused(r: BulkheadRefusal) -> GatewayError {
    let (scope, limit, what) = match r {
        BulkheadRefusal::Full { scope, limit } => (scope, limit, "in flight"),
        BulkheadRefusal::QueueTimeout { scope, limit } => (scope, limit, "in flight for too long"),
    };
    let of = if scope == "tenant" {
        "this tenant"
    } else {
        "this tenant and model"
    };
    GatewayError::new(
        429,
        "rate_limit_error",
        "concurrency_limit_exceeded",
        format!("{of} already has {limit} requests {what}; retry shortly"),
    )
    .with_header("retry-after", "1")
}

/// A call nobody can serve (the static answer of a rule is written by the caller).
pub fn unserved(u: &Unserved) -> GatewayError {
    match u {
        Unserved::Reject {
            rule_id,
            status,
            retry_after: wait,
        } => {
            let why = match rule_id {
                Some(id) => format!("the model is degraded (rule {id})"),
                None => "the model's circuit breaker is open".to_owned(),
            };
            let e = GatewayError::new(
                *status,
                "api_error",
                "model_unavailable",
                format!("{why}; retry after {} s", retry_after(*wait)),
            )
            .with_header("retry-after", retry_after(*wait));
            match rule_id {
                Some(id) => e.with_header("x-medgate-degraded", format!("reject; rule={id}")),
                None => e.with_header("x-medgate-circuit", "open"),
            }
        }
        Unserved::ShareExhausted => GatewayError::new(
            429,
            "rate_limit_error",
            "upstream_share_exceeded",
            "this tenant uses its full share of the model's upstreams; retry shortly",
        )
        .with_header("retry-after", "1"),
        Unserved::NoUpstream | Unserved::Static { .. } => GatewayError::new(
            503,
            "api_error",
            "no_upstream",
            "the model has no upstream available to this tenant",
        ),
    }
}

/// A tenant past the hard cap of its overage rule until `until` (RFC 3339).
pub fn quota_exceeded(until: &str, arrived_at: &str) -> GatewayError {
    let secs = match (
        chrono::DateTime::parse_from_rfc3339(until),
        chrono::DateTime::parse_from_rfc3339(arrived_at),
    ) {
        (Ok(u), Ok(a)) => (u - a).num_seconds().max(1),
        _ => 3600,
    };
    GatewayError::new(
        429,
        "insufficient_quota",
        "quota_exceeded",
        format!("this tenant has used its allowance for the period; it renews at {until}"),
    )
    .with_header("retry-after", secs.to_string())
}

/// A client whose address the tenant's network allowlist does not admit.
pub fn network_refused() -> GatewayError {
    GatewayError::new(
        403,
        "permission_error",
        "ip_not_allowed",
        "this tenant does not accept requests from your network address",
    )
}
