//! Traffic protection (API §6.1 circuit breakers, §6.2 degradation rules, §6.3 manual
//! recovery, §7.2 rate limits): the management API of the rules and their compilation into
//! `Snapshot.protection`.
//!
//! Rules are stored as the snapshot's own entry types (`medgate_config::protection`), each
//! checked by its `validate()`: a rule that breaks its contract is a 400 naming the field
//! (`details.field`); a rule naming something that does not exist (a model, a route, an API
//! key) is a 422, as elsewhere in the API. Every change bumps the snapshot version; the
//! proxies enforce the rules and report live breaker state in their heartbeats, which
//! `GET /api/circuit-breakers/{id}` shows as `live`.

mod breakers;
mod compile;
mod degradations;
mod effective;
mod live;
mod rate_limits;
mod recovery;
mod refs;
mod rules;

use medgate_config::RuleError;
use serde_json::json;

pub use breakers::{BreakerInput, BreakerQuery, BreakerView};
pub use compile::{load, LoadedProtection};
pub use degradations::{DegradationInput, DegradationQuery};
pub use effective::{EffectiveRateLimit, RuleSource, TenantRateLimits};
pub use live::{BreakerLive, InstanceBreaker};
pub use rate_limits::{RateLimitInput, RateLimitQuery};
pub use recovery::{Recoveries, RecoveryAccepted, RecoveryRequest};
pub use rules::{RuleKind, RuleQuery, Stamped};

use crate::api::ApiBuilder;
use crate::error::{ApiError, ApiResult};

/// A stored rate-limit rule.
pub type RateLimit = Stamped<medgate_config::RateLimitEntry>;
/// A stored circuit-breaker rule.
pub type Breaker = Stamped<medgate_config::BreakerEntry>;
/// A stored degradation rule.
pub type Degradation = Stamped<medgate_config::DegradationEntry>;

/// Every endpoint of traffic protection.
pub fn routes(api: ApiBuilder) -> ApiBuilder {
    let api = rules::rule_routes::<medgate_config::RateLimitEntry>(api);
    let api = effective::routes(api);
    let api = rules::rule_routes::<medgate_config::BreakerEntry>(api);
    let api = rules::rule_routes::<medgate_config::DegradationEntry>(api);
    recovery::routes(api)
}

/// A rule that breaks its contract: 400 `invalid_rule` with `details.field`.
pub(crate) fn rule_error(err: RuleError) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_rule",
        message: err.to_string(),
        details: json!({ "field": err.field, "message": err.message }),
    }
}

/// A number outside the bounds the proxies can run with (a week of milliseconds, say):
/// 400 like any other broken rule.
pub(crate) fn within(field: &'static str, value: u64, min: u64, max: u64) -> ApiResult<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(rule_error(RuleError::new(
            field,
            format!("must be between {min} and {max}"),
        )))
    }
}

/// An id no stored value can hold (PostgreSQL refuses NUL in text, so looking it up would
/// fail with a 500): the 404 of `resource` without asking the store.
pub(crate) fn findable(resource: &'static str, id: &str) -> ApiResult<()> {
    if id.contains('\0') {
        Err(ApiError::not_found(resource, id))
    } else {
        Ok(())
    }
}

/// Longest duration a rule may name, in milliseconds (one day).
pub(crate) const MAX_MS: u64 = 86_400_000;
