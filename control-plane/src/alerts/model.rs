//! The alert rule resource (API §6.4) and how the API shows it.

use serde::{Deserialize, Serialize};

use crate::resource::{Resource, Scope};

/// What a rule watches. Every metric fires when its value is **at or above** the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Fraction (0 to 1) of the usage rows in the window whose status is 5xx or 0; needs
    /// `min_requests` rows, otherwise it reads 0 and does not fire.
    ErrorRate,
    /// 99th percentile (nearest rank) of `latency_ms` of the usage rows in the window; needs
    /// `min_requests` rows like `error_rate`.
    P99LatencyMs,
    /// Number of breaker states reported `open` by live proxies (of `breaker_id`, or any).
    BreakerOpen,
    /// Requests refused by rate limits over the window: the increase of the live proxies'
    /// `rate_limited_total`, from samples the evaluator keeps.
    RateLimitRejections,
    /// Number of services (of `service`, or any) whose health check says unhealthy or whose
    /// breaker is open.
    UpstreamDown,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::ErrorRate => "error_rate",
            Metric::P99LatencyMs => "p99_latency_ms",
            Metric::BreakerOpen => "breaker_open",
            Metric::RateLimitRejections => "rate_limit_rejections",
            Metric::UpstreamDown => "upstream_down",
        }
    }

    pub const ALL: [Metric; 5] = [
        Metric::ErrorRate,
        Metric::P99LatencyMs,
        Metric::BreakerOpen,
        Metric::RateLimitRejections,
        Metric::UpstreamDown,
    ];

    pub fn parse(text: &str) -> Option<Metric> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// Whether the metric reads the usage rows (and so may be narrowed to a tenant and a model).
    pub fn reads_usage(self) -> bool {
        matches!(self, Metric::ErrorRate | Metric::P99LatencyMs)
    }
}

/// An alert rule as stored. `tenant_id` None makes it a platform rule, which looks at all
/// traffic and which tenant roles neither see nor change; a tenant's rule looks only at that
/// tenant's traffic.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AlertRule {
    pub id: String,
    pub name: String,
    pub tenant_id: Option<String>,
    pub metric: Metric,
    pub threshold: f64,
    pub window_secs: u64,
    /// Usage metrics only: fewer rows in the window never fire.
    pub min_requests: Option<u64>,
    /// Usage metrics only: only rows of this model (`model_name`).
    pub model: Option<String>,
    /// `breaker_open` only: only this breaker rule.
    pub breaker_id: Option<String>,
    /// `upstream_down` only: only this service id.
    pub service: Option<String>,
    pub enabled: bool,
    pub webhook_url: Option<String>,
    /// Write-only: never leaves the control plane except as the HMAC key of deliveries.
    pub webhook_secret: Option<String>,
    pub emails: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An alert rule as the API shows it: the webhook secret is replaced by whether one is set.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AlertRuleView {
    pub id: String,
    pub name: String,
    pub tenant_id: Option<String>,
    pub metric: Metric,
    pub threshold: f64,
    pub window_secs: u64,
    pub min_requests: Option<u64>,
    pub model: Option<String>,
    pub breaker_id: Option<String>,
    pub service: Option<String>,
    pub enabled: bool,
    pub webhook_url: Option<String>,
    pub has_webhook_secret: bool,
    pub emails: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl AlertRule {
    pub fn view(&self) -> AlertRuleView {
        AlertRuleView {
            id: self.id.clone(),
            name: self.name.clone(),
            tenant_id: self.tenant_id.clone(),
            metric: self.metric,
            threshold: self.threshold,
            window_secs: self.window_secs,
            min_requests: self.min_requests,
            model: self.model.clone(),
            breaker_id: self.breaker_id.clone(),
            service: self.service.clone(),
            enabled: self.enabled,
            webhook_url: self.webhook_url.clone(),
            has_webhook_secret: self.webhook_secret.is_some(),
            emails: self.emails.clone(),
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        }
    }
}

impl Resource for AlertRule {
    const KIND: &'static str = "alert_rule";
    const ID_PREFIX: &'static str = "alr";
    const LABEL: &'static str = "alert rule";
    const SCOPE: Scope = Scope::Tenant;
    const AFFECTS_SNAPSHOT: bool = false;

    crate::resource_timestamps!();

    fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }
    /// Names are unique per owner (`*` stands for the platform).
    fn unique_key(&self) -> Option<String> {
        Some(format!(
            "{}/{}",
            self.tenant_id.as_deref().unwrap_or("*"),
            self.name
        ))
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn status(&self) -> Option<String> {
        Some(if self.enabled { "enabled" } else { "disabled" }.to_owned())
    }
    /// The metric, so lists can filter on it in the store (alert rules reference nothing that
    /// a deletion must be blocked for).
    fn ref_id(&self) -> Option<&str> {
        Some(self.metric.as_str())
    }
}
