//! One route as the request path uses it: its match, its plugins, its balancer and when its
//! health is checked next.

use std::cmp::Reverse;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use medgate_config::RouteEntry;
use pingora::http::RequestHeader;

use super::balancer::Balancer;

/// What a route matches on, read once from the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Lowercase, without the port; empty when the request named none.
    pub host: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub header: &'a RequestHeader,
}

/// A compiled route.
#[derive(Debug)]
pub struct CompiledRoute {
    pub entry: RouteEntry,
    pub balancer: Balancer,
    pub api_key_auth: bool,
    pub tenant_status: bool,
    /// None without a health check.
    pub health: Option<HealthSchedule>,
}

/// When a route's targets are probed next; one probe round at a time.
#[derive(Debug)]
pub struct HealthSchedule {
    interval: Duration,
    next_due: Mutex<Instant>,
    running: AtomicBool,
}

impl HealthSchedule {
    /// Whether a round should start now; if so, books the next one and marks this one running.
    pub fn start_if_due(&self, now: Instant) -> bool {
        let Ok(mut next) = self.next_due.lock() else {
            return false;
        };
        if now < *next || self.running.swap(true, Ordering::AcqRel) {
            return false;
        }
        *next = now + self.interval;
        true
    }

    pub fn finished(&self) {
        self.running.store(false, Ordering::Release);
    }
}

impl CompiledRoute {
    pub fn new(entry: RouteEntry) -> Self {
        let has = |p: &str| entry.plugins.iter().any(|x| x == p);
        Self {
            api_key_auth: has("api_key_auth"),
            tenant_status: has("tenant_status"),
            health: entry.health_check.as_ref().map(|hc| HealthSchedule {
                interval: Duration::from_millis(hc.interval_ms.max(100)),
                // The first round runs as soon as the snapshot is in force.
                next_due: Mutex::new(Instant::now()),
                running: AtomicBool::new(false),
            }),
            balancer: Balancer::build(&entry),
            entry,
        }
    }

    /// Whether the request meets every condition of the route.
    ///
    /// The management API (`/api/`) belongs to the gateway: a route without hosts never takes
    /// it, so a catch-all route cannot hide the API on the gateway's own origin.
    pub fn matches(&self, req: &RequestFacts<'_>) -> bool {
        let m = &self.entry.matcher;
        if m.hosts.is_empty() {
            if req.path.starts_with("/api/") {
                return false;
            }
        } else if !m.hosts.iter().any(|h| host_matches(h, req.host)) {
            return false;
        }
        if !path_matches(&m.path_prefix, req.path) {
            return false;
        }
        if !m.methods.is_empty() && !m.methods.iter().any(|x| x == req.method) {
            return false;
        }
        m.headers.iter().all(|(name, value)| {
            req.header
                .headers
                .get(name.as_str())
                .is_some_and(|v| v.as_bytes() == value.as_bytes())
        })
    }

    /// Order of evaluation: priority, then the longer path prefix, then hosts (exact before
    /// wildcard before none), then methods and headers named, then id for a stable order.
    pub fn order_key(&self) -> impl Ord + '_ {
        let m = &self.entry.matcher;
        let host_rank = if m.hosts.iter().any(|h| !h.starts_with("*.")) {
            2
        } else if m.hosts.is_empty() {
            0
        } else {
            1
        };
        (
            Reverse(self.entry.priority),
            Reverse(m.path_prefix.len()),
            Reverse(host_rank),
            Reverse(!m.methods.is_empty()),
            Reverse(m.headers.len()),
            self.entry.id.as_str(),
        )
    }
}

/// `*.example.com` takes any subdomain of example.com, not example.com itself.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        None => pattern == host,
    }
}

/// `/svc` takes `/svc` and `/svc/...` but not `/svcx`; `/` takes everything.
pub fn path_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_below_a_wildcard() {
        assert!(host_matches("api.example.com", "api.example.com"));
        assert!(!host_matches("api.example.com", "x.api.example.com"));
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(path_matches("/", "/anything"));
        assert!(path_matches("/svc", "/svc"));
        assert!(path_matches("/svc", "/svc/a"));
        assert!(!path_matches("/svc", "/svcx"));
        assert!(path_matches("/svc/", "/svc/a"));
        assert!(!path_matches("/svc/", "/svc"));
    }
}
