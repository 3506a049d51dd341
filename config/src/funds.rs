//! What the data plane needs to gate traffic on money (issue 5): the rate of each model (to
//! price a request's estimate before forwarding it) in the snapshot, and each gated tenant's
//! spendable amount from the balance feed (`GET /api/internal/balances`).

use serde::{Deserialize, Serialize};

/// One version of a model's rate, in micros (millionths of a minor unit). The snapshot
/// carries a model's latest versions (it never depends on the clock), and the proxy prices
/// with the one in force when the request arrives ([`rate_at`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateEntry {
    /// RFC 3339 UTC, fixed width (as the store writes it).
    pub effective_from: String,
    pub currency: String,
    pub input_per_1k_micros: i64,
    pub output_per_1k_micros: i64,
    pub per_request_micros: i64,
}

impl RateEntry {
    /// The cost in micros of a call with these token counts, rounded up (a reservation must
    /// not under-estimate); saturates instead of overflowing.
    pub fn cost_micros(&self, input_tokens: u64, output_tokens: u64) -> i64 {
        let per_1k =
            |tokens: u64, rate: i64| (i128::from(tokens) * i128::from(rate.max(0)) + 999) / 1_000;
        let total = per_1k(input_tokens, self.input_per_1k_micros)
            + per_1k(output_tokens, self.output_per_1k_micros)
            + i128::from(self.per_request_micros.max(0));
        i64::try_from(total).unwrap_or(i64::MAX)
    }
}

/// The version of `rates` (sorted by `effective_from`) in force at `at` (RFC 3339 UTC, fixed
/// width, so text order is time order).
pub fn rate_at<'a>(rates: &'a [RateEntry], at: &str) -> Option<&'a RateEntry> {
    rates.iter().rev().find(|r| r.effective_from.as_str() <= at)
}

/// One tenant's funds as the gateway gates on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FundsEntry {
    pub tenant_id: String,
    /// Balance plus allowed overdraft, minor units; None when the tenant has no limit
    /// (postpaid), which the gateway does not gate.
    pub spendable_minor: Option<i64>,
    pub currency: String,
}

/// A page of the balance feed: the tenants whose funds changed after `after` (every gated
/// tenant when `after` was 0), and the cursor to ask from next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FundsFeed {
    pub cursor: u64,
    pub funds: Vec<FundsEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_round_up_and_never_overflow() {
        let rate = RateEntry {
            effective_from: "2026-01-01T00:00:00.000000Z".into(),
            currency: "CNY".into(),
            input_per_1k_micros: 150,
            output_per_1k_micros: 600,
            per_request_micros: 10,
        };
        // 1 input token: 0.15 micros -> 1 (up); 1 output: 0.6 -> 1; + 10.
        assert_eq!(rate.cost_micros(1, 1), 12);
        assert_eq!(rate.cost_micros(1_000, 1_000), 760);
        assert_eq!(rate.cost_micros(u64::MAX, u64::MAX), i64::MAX);
        let later = RateEntry {
            effective_from: "2026-06-01T00:00:00.000000Z".into(),
            ..rate.clone()
        };
        let rates = [rate, later];
        assert_eq!(rate_at(&rates, "2025-12-31T23:59:59.000000Z"), None);
        assert_eq!(
            rate_at(&rates, "2026-03-01T00:00:00.000000Z").map(|r| r.effective_from.as_str()),
            Some("2026-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            rate_at(&rates, "2026-06-01T00:00:00.000000Z").map(|r| r.effective_from.as_str()),
            Some("2026-06-01T00:00:00.000000Z")
        );
    }
}
