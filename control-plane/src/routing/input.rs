//! The body of route create and update, and the rules a route must follow.

use std::collections::{BTreeMap, HashSet};

use medgate_config::routing::{KNOWN_PLUGINS, MAX_RETRIES, MAX_TARGETS, MAX_TARGET_WEIGHT};
use medgate_config::{HealthCheck, LoadBalancing, RouteMatch, RouteTarget, RouteTimeouts};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::validate;

/// Methods a route may name.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const MAX_HOSTS: usize = 32;
const MAX_HEADERS: usize = 16;
const MAX_PRIORITY: i32 = 1000;

/// Body of `POST /api/routes` and `PUT /api/routes/{id}`: the whole route; omitted optional
/// fields take their defaults.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteInput {
    /// The owning tenant. Tenant admins get their own tenant; platform admins create a platform
    /// route by omitting it. On update it may be omitted, or must equal the route's.
    pub tenant_id: Option<String>,
    /// 1 to 100 characters, unique per owner.
    pub name: String,
    /// Which requests the route takes; default: every request (`path_prefix` `/`). A tenant's
    /// route must list hosts, each one of the tenant's domains or a wildcard below one.
    #[serde(rename = "match", default)]
    pub matcher: RouteMatch,
    /// 1 to 16 targets with distinct URLs; at least one with a positive weight.
    pub targets: Vec<RouteTarget>,
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    pub health_check: Option<HealthCheck>,
    /// Remove the matched `path_prefix` before forwarding (default false).
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default)]
    pub timeouts: RouteTimeouts,
    /// 0 to 3 further attempts on another target, for idempotent methods only (default 0).
    #[serde(default)]
    pub retries: u8,
    /// Plugins to run: `api_key_auth`, `tenant_status`.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// -1000 to 1000 (default 0); higher wins.
    #[serde(default)]
    pub priority: i32,
    /// Answer plain-HTTP requests with `308` to the same URL over HTTPS (default false;
    /// needs the proxy's HTTPS listener, `proxy.tls.listen`).
    #[serde(default)]
    pub https_redirect: bool,
    /// Default true.
    pub enabled: Option<bool>,
}

impl RouteInput {
    /// Checks every field and normalizes methods (upper case) and header names (lower case).
    pub fn validate(&mut self) -> ApiResult<()> {
        validate::text("name", &self.name, 1, 100)?;
        check_match(&mut self.matcher)?;
        check_targets(&self.targets)?;
        if let Some(hc) = &self.health_check {
            check_health(hc)?;
        }
        range("timeouts.connect_ms", self.timeouts.connect_ms, 1, 120_000)?;
        range("timeouts.read_ms", self.timeouts.read_ms, 1, 3_600_000)?;
        if self.retries > MAX_RETRIES {
            return Err(ApiError::invalid(
                "retries",
                format!("must be between 0 and {MAX_RETRIES}"),
            ));
        }
        let mut seen = HashSet::new();
        for (i, p) in self.plugins.iter().enumerate() {
            if !KNOWN_PLUGINS.contains(&p.as_str()) {
                return Err(ApiError::invalid(
                    &format!("plugins[{i}]"),
                    format!("unknown plugin; known: {}", KNOWN_PLUGINS.join(", ")),
                ));
            }
            if !seen.insert(p) {
                return Err(ApiError::invalid(&format!("plugins[{i}]"), "appears twice"));
            }
        }
        if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&self.priority) {
            return Err(ApiError::invalid(
                "priority",
                format!("must be between -{MAX_PRIORITY} and {MAX_PRIORITY}"),
            ));
        }
        Ok(())
    }
}

fn range(field: &str, value: u64, min: u64, max: u64) -> ApiResult<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be between {min} and {max}"),
        ))
    }
}

/// A path as routes use it: absolute, visible ASCII, no query or fragment.
fn path(field: &str, value: &str) -> ApiResult<()> {
    let ok = value.starts_with('/')
        && value.len() <= 1024
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be an absolute path like /service (no spaces, query or fragment)",
        ))
    }
}

fn check_match(m: &mut RouteMatch) -> ApiResult<()> {
    if m.hosts.len() > MAX_HOSTS {
        return Err(ApiError::invalid(
            "match.hosts",
            format!("at most {MAX_HOSTS} hosts"),
        ));
    }
    let mut hosts = HashSet::new();
    for (i, host) in m.hosts.iter().enumerate() {
        let field = format!("match.hosts[{i}]");
        validate::hostname(&field, host.strip_prefix("*.").unwrap_or(host), 1)?;
        if !hosts.insert(host) {
            return Err(ApiError::invalid(&field, "appears twice"));
        }
    }
    path("match.path_prefix", &m.path_prefix)?;
    for (i, method) in m.methods.iter_mut().enumerate() {
        *method = method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(ApiError::invalid(
                &format!("match.methods[{i}]"),
                format!("must be one of {}", METHODS.join(", ")),
            ));
        }
    }
    m.methods.sort();
    m.methods.dedup();
    if m.headers.len() > MAX_HEADERS {
        return Err(ApiError::invalid(
            "match.headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut headers = BTreeMap::new();
    for (name, value) in std::mem::take(&mut m.headers) {
        let lower = name.to_ascii_lowercase();
        let field = format!("match.headers.{name}");
        let token = (1..=64).contains(&lower.len())
            && lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if !token || lower == "host" {
            return Err(ApiError::invalid(
                &field,
                "must be a header name of letters, digits, - and _ (use match.hosts for Host)",
            ));
        }
        if value.len() > 1024 || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(ApiError::invalid(
                &field,
                "must be at most 1024 visible ASCII characters",
            ));
        }
        if headers.insert(lower, value).is_some() {
            return Err(ApiError::invalid(&field, "appears twice"));
        }
    }
    m.headers = headers;
    Ok(())
}

fn check_targets(targets: &[RouteTarget]) -> ApiResult<()> {
    if targets.is_empty() || targets.len() > MAX_TARGETS {
        return Err(ApiError::invalid(
            "targets",
            format!("must have 1 to {MAX_TARGETS} targets"),
        ));
    }
    let mut urls = HashSet::new();
    for (i, t) in targets.iter().enumerate() {
        validate::http_url(&format!("targets[{i}].url"), &t.url)?;
        if !urls.insert(t.url.trim_end_matches('/')) {
            return Err(ApiError::invalid(
                &format!("targets[{i}].url"),
                "appears twice; each target once",
            ));
        }
        if t.weight > MAX_TARGET_WEIGHT {
            return Err(ApiError::invalid(
                &format!("targets[{i}].weight"),
                format!("must be between 0 and {MAX_TARGET_WEIGHT}"),
            ));
        }
        if let Some(ca) = &t.ca_pem {
            validate::upstream_ca(&format!("targets[{i}].ca_pem"), &t.url, ca)?;
        }
    }
    if !targets.iter().any(|t| t.weight > 0) {
        return Err(ApiError::invalid(
            "targets",
            "at least one target needs a weight above 0",
        ));
    }
    Ok(())
}

fn check_health(hc: &HealthCheck) -> ApiResult<()> {
    path("health_check.path", &hc.path)?;
    range("health_check.interval_ms", hc.interval_ms, 100, 3_600_000)?;
    range("health_check.timeout_ms", hc.timeout_ms, 10, 60_000)?;
    range(
        "health_check.healthy_threshold",
        u64::from(hc.healthy_threshold),
        1,
        10,
    )?;
    range(
        "health_check.unhealthy_threshold",
        u64::from(hc.unhealthy_threshold),
        1,
        10,
    )
}
