//! The body of alert rule create and update, and the rules a rule must follow.

use std::collections::HashSet;

use serde::Deserialize;

use super::model::{AlertRule, Metric};
use crate::api::extract::present;
use crate::error::{ApiError, ApiResult};
use crate::validate;

/// Shortest and longest evaluation window.
pub const MIN_WINDOW_SECS: u64 = 10;
pub const MAX_WINDOW_SECS: u64 = 86_400;
const DEFAULT_WINDOW_SECS: u64 = 300;
/// Default `min_requests` of `error_rate` (a handful of failures in a quiet minute should not
/// page anyone) and of `p99_latency_ms`.
const DEFAULT_MIN_REQUESTS_ERROR_RATE: u64 = 10;
const DEFAULT_MIN_REQUESTS_LATENCY: u64 = 1;
const MAX_MIN_REQUESTS: u64 = 1_000_000;
const MAX_EMAILS: usize = 20;

/// Body of `POST /api/alerts` and `PUT /api/alerts/{id}`: the whole rule; omitted optional
/// fields take their defaults, except `webhook_secret`, which is write-only: omitted on update
/// it keeps the stored secret, `null` removes it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleInput {
    /// The owning tenant. Tenant admins get their own tenant; platform admins create a
    /// platform rule (all traffic) by omitting it. On update it may be omitted, or must equal
    /// the rule's.
    pub tenant_id: Option<String>,
    /// 1 to 100 characters, unique per owner.
    pub name: String,
    /// `error_rate`, `p99_latency_ms`, `breaker_open`, `rate_limit_rejections` or
    /// `upstream_down`. The last two watch shared infrastructure: platform rules only.
    pub metric: String,
    /// Fires when the value is at or above it. `error_rate`: more than 0, at most 1.
    /// `p99_latency_ms`: 1 to 3600000. `breaker_open`, `upstream_down`: a whole count, 1 to
    /// 10000. `rate_limit_rejections`: a whole count, 1 to 10^12.
    pub threshold: f64,
    /// 10 to 86400 (default 300).
    pub window_secs: Option<u64>,
    /// Usage metrics only: 1 to 1000000 rows in the window before the rule may fire (default
    /// 10 for `error_rate`, 1 for `p99_latency_ms`).
    pub min_requests: Option<u64>,
    /// Usage metrics only: only requests to this model (its name).
    pub model: Option<String>,
    /// `breaker_open` only: only this breaker rule's states.
    pub breaker_id: Option<String>,
    /// `upstream_down` only: only this service (`model:<name>` or `upstream:<url>`).
    pub service: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// `http://` or `https://` URL receiving a signed JSON POST per transition.
    pub webhook_url: Option<String>,
    /// 16 to 256 characters; the HMAC-SHA256 key of `X-Medgate-Signature`. Required with a
    /// `webhook_url`. Write-only.
    #[serde(default, deserialize_with = "present")]
    pub webhook_secret: Option<Option<String>>,
    /// Up to 20 addresses, e-mailed each transition through the notifier (SMTP settings,
    /// retries with backoff); the history shows each address's outcome.
    #[serde(default)]
    pub emails: Vec<String>,
}

impl AlertRuleInput {
    /// The rule this body describes; `current` is the rule being updated, if any.
    pub fn into_rule(
        self,
        id: String,
        tenant_id: Option<String>,
        current: Option<&AlertRule>,
    ) -> ApiResult<AlertRule> {
        validate::text("name", &self.name, 1, 100)?;
        let metric = Metric::parse(&self.metric).ok_or_else(|| {
            let known: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
            ApiError::invalid("metric", format!("must be one of {}", known.join(", ")))
        })?;
        if tenant_id.is_some()
            && matches!(metric, Metric::RateLimitRejections | Metric::UpstreamDown)
        {
            return Err(ApiError::invalid(
                "metric",
                "watches shared infrastructure that no tenant's traffic can be told apart in; \
                 only platform rules may use it",
            ));
        }
        check_threshold(metric, self.threshold)?;
        let window_secs = self.window_secs.unwrap_or(DEFAULT_WINDOW_SECS);
        if !(MIN_WINDOW_SECS..=MAX_WINDOW_SECS).contains(&window_secs) {
            return Err(ApiError::invalid(
                "window_secs",
                format!("must be between {MIN_WINDOW_SECS} and {MAX_WINDOW_SECS}"),
            ));
        }
        let min_requests = match (metric, self.min_requests) {
            (Metric::ErrorRate, m) => Some(m.unwrap_or(DEFAULT_MIN_REQUESTS_ERROR_RATE)),
            (Metric::P99LatencyMs, m) => Some(m.unwrap_or(DEFAULT_MIN_REQUESTS_LATENCY)),
            (_, Some(_)) => return Err(only_for("min_requests", "error_rate, p99_latency_ms")),
            (_, None) => None,
        };
        if min_requests.is_some_and(|m| !(1..=MAX_MIN_REQUESTS).contains(&m)) {
            return Err(ApiError::invalid(
                "min_requests",
                format!("must be between 1 and {MAX_MIN_REQUESTS}"),
            ));
        }
        if let Some(model) = &self.model {
            if !metric.reads_usage() {
                return Err(only_for("model", "error_rate, p99_latency_ms"));
            }
            validate::model_name("model", model)?;
        }
        if let Some(b) = &self.breaker_id {
            if metric != Metric::BreakerOpen {
                return Err(only_for("breaker_id", "breaker_open"));
            }
            validate::text("breaker_id", b, 1, 128)?;
        }
        if let Some(s) = &self.service {
            if metric != Metric::UpstreamDown {
                return Err(only_for("service", "upstream_down"));
            }
            validate::text("service", s, 1, 2048)?;
        }
        if let Some(url) = &self.webhook_url {
            webhook_url(url)?;
        }
        let webhook_secret = match self.webhook_secret {
            None => current.and_then(|c| c.webhook_secret.clone()),
            Some(secret) => secret,
        };
        if let Some(secret) = &webhook_secret {
            validate::text("webhook_secret", secret, 16, 256)?;
        }
        if self.webhook_url.is_some() && webhook_secret.is_none() {
            return Err(ApiError::invalid(
                "webhook_secret",
                "is required with a webhook_url (deliveries are signed with it)",
            ));
        }
        Ok(AlertRule {
            id,
            name: self.name,
            tenant_id,
            metric,
            threshold: self.threshold,
            window_secs,
            min_requests,
            model: self.model,
            breaker_id: self.breaker_id,
            service: self.service,
            enabled: self.enabled.unwrap_or(true),
            webhook_url: self.webhook_url,
            webhook_secret,
            emails: emails(self.emails)?,
            created_at: String::new(),
            updated_at: String::new(),
        })
    }
}

fn only_for(field: &str, metrics: &str) -> ApiError {
    ApiError::invalid(field, format!("applies only to the metrics {metrics}"))
}

fn check_threshold(metric: Metric, t: f64) -> ApiResult<()> {
    let whole = |max: f64| t.fract() == 0.0 && (1.0..=max).contains(&t);
    let (ok, rule) = match metric {
        Metric::ErrorRate => (t > 0.0 && t <= 1.0, "must be more than 0 and at most 1"),
        Metric::P99LatencyMs => (
            (1.0..=3_600_000.0).contains(&t),
            "must be between 1 and 3600000 (milliseconds)",
        ),
        Metric::BreakerOpen | Metric::UpstreamDown => {
            (whole(10_000.0), "must be a whole number from 1 to 10000")
        }
        Metric::RateLimitRejections => (whole(1e12), "must be a whole number from 1 to 10^12"),
    };
    if t.is_finite() && ok {
        Ok(())
    } else {
        Err(ApiError::invalid("threshold", rule))
    }
}

/// An absolute `http(s)` URL with a host and without credentials (they would be shown by the
/// API; the signature authenticates deliveries instead).
fn webhook_url(url: &str) -> ApiResult<()> {
    let bad = |why: &str| Err(ApiError::invalid("webhook_url", why.to_owned()));
    if url.len() > 2048 {
        return bad("must be at most 2048 characters");
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return bad("must be an absolute URL like https://hooks.example.com/medgate");
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return bad("must start with http:// or https://");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return bad("must name a host");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return bad("must not carry credentials");
    }
    Ok(())
}

fn emails(list: Vec<String>) -> ApiResult<Vec<String>> {
    if list.len() > MAX_EMAILS {
        return Err(ApiError::invalid(
            "emails",
            format!("at most {MAX_EMAILS} addresses"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, e) in list.iter().enumerate() {
        validate::email(&format!("emails[{i}]"), e)?;
        if !seen.insert(e.to_lowercase()) {
            return Err(ApiError::invalid(&format!("emails[{i}]"), "appears twice"));
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_checked_per_metric() {
        assert!(check_threshold(Metric::ErrorRate, 0.5).is_ok());
        assert!(check_threshold(Metric::ErrorRate, 1.5).is_err());
        assert!(check_threshold(Metric::ErrorRate, 0.0).is_err());
        assert!(check_threshold(Metric::ErrorRate, f64::NAN).is_err());
        assert!(check_threshold(Metric::BreakerOpen, 1.0).is_ok());
        assert!(check_threshold(Metric::BreakerOpen, 1.5).is_err());
        assert!(check_threshold(Metric::P99LatencyMs, 0.5).is_err());
        assert!(check_threshold(Metric::RateLimitRejections, 1e13).is_err());
    }

    #[test]
    fn webhook_urls() {
        assert!(webhook_url("https://hooks.example.com/x?token=1").is_ok());
        assert!(webhook_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(webhook_url("ftp://example.com/").is_err());
        assert!(webhook_url("not a url").is_err());
        assert!(webhook_url("https://user:pw@example.com/").is_err());
    }
}
