//! Alerting (API §6.4): rules on a metric of the traffic or of the data plane, evaluated in
//! the background, each transition (ok -> firing -> ok) recorded once and notified once.
//!
//! - `model`: the rule resource; `input`: its body and validation.
//! - `metrics`: what each metric reads (usage rows, live proxy reports, counter samples).
//! - `history`: live state, transitions (compare-and-set) and delivery outcomes.
//! - `evaluate`: [`evaluate_once`] and the background loop ([`spawn_evaluator`]).
//! - `notify`: signed webhook deliveries with retries (e-mail goes through the notifier).
//!
//! Tenancy: a tenant's rule reads only its tenant's usage rows and per-tenant breaker states,
//! and is visible to that tenant (and platform roles) only; platform rules read everything
//! and are invisible to tenant roles. `rate_limit_rejections` and `upstream_down` read shared
//! infrastructure and are platform-only.

mod evaluate;
mod history;
mod input;
mod metrics;
mod model;
mod notify;
mod routes;

pub use evaluate::{
    evaluate_at, evaluate_once, spawn_evaluator, EvaluationSummary, EVALUATION_INTERVAL,
};
pub(crate) use history::record_delivery;
pub use history::{AlertEvent, AlertState, Delivery, LiveState, HISTORY_LIMIT};
pub use input::{AlertRuleInput, MAX_WINDOW_SECS, MIN_WINDOW_SECS};
pub use model::{AlertRule, AlertRuleView, Metric};
pub use notify::{signature, ATTEMPTS, EVENT_ID_HEADER, SIGNATURE_HEADER};
pub use routes::{routes, AlertListQuery, AlertRuleDetail, AlertRuleItem};
