//! Degradation rules (API §6.2): `/api/degradation-rules`.
//!
//! What to serve instead of a model that cannot be used (its breaker is open, it is slow, or
//! an operator switched it): fallback models tried in order, then a final action (a static
//! JSON answer or an error with Retry-After). The model and every fallback must exist.

use async_trait::async_trait;
use medgate_config::{DegradationEntry, DegradationTrigger, FinalAction, RuleError};
use serde::Deserialize;

use super::refs::{self, require};
use super::rules::{RuleKind, RuleQuery, Stamped};
use super::{rule_error, within, MAX_MS};
use crate::api::extract::present;
use crate::api::pagination::PageQuery;
use crate::error::ApiResult;
use crate::store::{Store, Tx};
use crate::validate;

const MAX_FALLBACKS: usize = 16;
/// Largest static answer body, bytes.
const MAX_STATIC_BODY: usize = 64 * 1024;

/// Body of `POST /api/degradation-rules` and `PUT /api/degradation-rules/{id}`: the whole
/// rule; omitted optional fields take their defaults.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DegradationInput {
    /// The owning tenant: the rule applies only to its traffic. Tenant admins get their own
    /// tenant when omitted; platform admins create a platform rule by omitting it or sending
    /// null. On update: omitted, or the rule's own.
    #[serde(default, deserialize_with = "present")]
    pub tenant_id: Option<Option<String>>,
    /// The existing model name the rule protects.
    pub model: String,
    /// What puts the model into degraded service; default `breaker_open`.
    #[serde(default = "breaker_open")]
    pub trigger: DegradationTrigger,
    /// Existing model names tried in order, at most 16, not the model itself; default none.
    #[serde(default)]
    pub fallback_models: Vec<String>,
    /// The answer when no fallback can serve; omitted: 503 with Retry-After. A static
    /// response's `body` must be JSON text of at most 64 KiB.
    pub final_action: Option<FinalAction>,
    /// Lower runs first when several rules match, -1000 to 1000; default 0.
    #[serde(default)]
    pub priority: i32,
}

fn breaker_open() -> DegradationTrigger {
    DegradationTrigger::BreakerOpen
}

/// Query of `GET /api/degradation-rules`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DegradationQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// Only this tenant's rules.
    pub tenant_id: Option<String>,
    /// Only rules protecting this model.
    pub model: Option<String>,
}

impl RuleQuery for DegradationQuery {
    fn paging(&self) -> PageQuery {
        PageQuery {
            page: self.page,
            page_size: self.page_size,
        }
    }
    fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }
}

fn broken(field: &'static str, message: impl Into<String>) -> crate::error::ApiError {
    rule_error(RuleError::new(field, message))
}

/// The house bounds on top of `DegradationEntry::validate`.
fn check_bounds(rule: &DegradationEntry) -> ApiResult<()> {
    validate::model_name("model", &rule.model)?;
    if rule.fallback_models.len() > MAX_FALLBACKS {
        return Err(broken(
            "fallback_models",
            format!("at most {MAX_FALLBACKS} models"),
        ));
    }
    for (i, m) in rule.fallback_models.iter().enumerate() {
        validate::model_name(&format!("fallback_models[{i}]"), m)?;
        if rule.fallback_models[..i].contains(m) {
            return Err(broken("fallback_models", format!("{m:?} appears twice")));
        }
    }
    if !(-1000..=1000).contains(&rule.priority) {
        return Err(broken("priority", "must be between -1000 and 1000"));
    }
    if let DegradationTrigger::Latency {
        threshold_ms,
        window_ms,
        min_requests,
    } = rule.trigger
    {
        within("trigger.threshold_ms", threshold_ms, 1, MAX_MS)?;
        within("trigger.window_ms", window_ms, 1, MAX_MS)?;
        within("trigger.min_requests", min_requests.into(), 1, 1_000_000)?;
    }
    match &rule.final_action {
        Some(FinalAction::StaticResponse { body, .. }) => {
            if body.len() > MAX_STATIC_BODY {
                return Err(broken("final_action.body", "must be at most 64 KiB"));
            }
            serde_json::from_str::<serde_json::Value>(body)
                .map(|_| ())
                .map_err(|e| broken("final_action.body", format!("must be JSON text: {e}")))
        }
        Some(FinalAction::Reject {
            retry_after_secs, ..
        }) => within(
            "final_action.retry_after_secs",
            *retry_after_secs,
            0,
            86_400,
        ),
        None => Ok(()),
    }
}

#[async_trait]
impl RuleKind for DegradationEntry {
    const KIND: &'static str = "degradation_rule";
    const ID_PREFIX: &'static str = "dg";
    const LABEL: &'static str = "degradation rule";
    const PATH: &'static str = "/api/degradation-rules";
    const TAG: &'static str = "degradation_rules";

    type Input = DegradationInput;
    type Query = DegradationQuery;
    type View = Stamped<DegradationEntry>;

    fn id(&self) -> &str {
        &self.id
    }
    fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }

    fn take_tenant(input: &mut DegradationInput) -> Option<Option<String>> {
        input.tenant_id.take()
    }

    fn from_input(
        input: DegradationInput,
        id: String,
        tenant_id: Option<String>,
    ) -> ApiResult<Self> {
        let rule = DegradationEntry {
            id,
            tenant_id,
            model: input.model,
            trigger: input.trigger,
            fallback_models: input.fallback_models,
            final_action: input.final_action,
            priority: input.priority,
        };
        rule.validate().map_err(rule_error)?;
        check_bounds(&rule)?;
        Ok(rule)
    }

    fn matches(&self, q: &DegradationQuery) -> bool {
        q.model.as_deref().is_none_or(|m| m == self.model)
    }

    async fn check_references(&self, tx: &mut Tx) -> ApiResult<()> {
        require(
            refs::model_exists(tx, &self.model).await?,
            "model",
            "model",
            &self.model,
        )?;
        for (i, m) in self.fallback_models.iter().enumerate() {
            let field = format!("fallback_models[{i}]");
            require(refs::model_exists(tx, m).await?, &field, "model", m)?;
        }
        Ok(())
    }

    async fn views(_store: &Store, rules: Vec<Stamped<Self>>) -> ApiResult<Vec<Self::View>> {
        Ok(rules)
    }
}
