//! Integer money arithmetic with explicit rounding.

use serde::{Deserialize, Serialize};

/// Micros (millionths) in one minor unit.
pub const MICROS_PER_MINOR: i64 = 1_000_000;

/// The default currency of a tenant without a balance yet.
pub const DEFAULT_CURRENCY: &str = "CNY";

/// An amount in minor units of a currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Money {
    pub amount_minor: i64,
    /// ISO 4217 code, e.g. `CNY`, `USD`.
    pub currency: String,
}

/// Whether `code` looks like an ISO 4217 currency code (three upper-case letters).
pub fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// `value / divisor` rounded half away from zero (0.5 -> 1, -0.5 -> -1); None on overflow or
/// a zero divisor. Used wherever micros become minor units on an invoice.
pub fn div_round_half_up(value: i128, divisor: i128) -> Option<i128> {
    if divisor == 0 {
        return None;
    }
    let (q, r) = (value / divisor, value % divisor);
    let twice = r.checked_abs()?.checked_mul(2)?;
    if twice >= divisor.checked_abs()? {
        let away = if (value < 0) != (divisor < 0) { -1 } else { 1 };
        q.checked_add(away)
    } else {
        Some(q)
    }
}

/// The cost in micros of `input` and `output` tokens and one request at the given rates
/// (per 1,000 tokens, in micros), rounded half up to whole micros; None on overflow.
pub fn usage_cost_micros(
    input_tokens: u64,
    output_tokens: u64,
    input_per_1k_micros: i64,
    output_per_1k_micros: i64,
    per_request_micros: i64,
) -> Option<i64> {
    let tokens = i128::from(input_tokens)
        .checked_mul(i128::from(input_per_1k_micros))?
        .checked_add(i128::from(output_tokens).checked_mul(i128::from(output_per_1k_micros))?)?;
    let cost = div_round_half_up(tokens, 1_000)?.checked_add(i128::from(per_request_micros))?;
    i64::try_from(cost).ok()
}

/// Micros to minor units, rounded half up (invoice lines).
pub fn micros_to_minor(micros: i128) -> Option<i64> {
    i64::try_from(div_round_half_up(micros, i128::from(MICROS_PER_MINOR))?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_away_from_zero_at_the_boundary() {
        assert_eq!(div_round_half_up(5, 10), Some(1));
        assert_eq!(div_round_half_up(4, 10), Some(0));
        assert_eq!(div_round_half_up(15, 10), Some(2));
        assert_eq!(div_round_half_up(-5, 10), Some(-1));
        assert_eq!(div_round_half_up(-4, 10), Some(0));
        assert_eq!(div_round_half_up(1, 0), None);
        assert_eq!(micros_to_minor(1_500_000), Some(2));
        assert_eq!(micros_to_minor(1_499_999), Some(1));
    }

    #[test]
    fn usage_cost_is_exact_in_micros() {
        // 1,234 input tokens at 150 micros per 1k + 56 output at 600 per 1k + 10 per request
        // = 185.1 + 33.6 + 10 = 228.7 -> 229 micros.
        assert_eq!(usage_cost_micros(1_234, 56, 150, 600, 10), Some(229));
        assert_eq!(usage_cost_micros(0, 0, 150, 600, 0), Some(0));
        assert_eq!(
            usage_cost_micros(u64::MAX, u64::MAX, i64::MAX, i64::MAX, 0),
            None
        );
    }

    #[test]
    fn currency_codes() {
        assert!(is_currency("CNY"));
        assert!(!is_currency("cny"));
        assert!(!is_currency("EURO"));
    }
}
