//! Generic reverse-proxy routes and tenants' custom domains, as the data plane applies them
//! (API §7.1 and §8).
//!
//! The control plane stores the same types for a route's match, targets, balancing, health
//! check and timeouts, so what an operator writes is what the proxy reads. Only enabled routes
//! and verified domains enter a snapshot.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::snapshot::Snapshot;

/// Plugins a route may run, in the order the proxy runs them.
///
/// * `api_key_auth`: a valid medgate API key is required (and the tenant must be active); the
///   key is not forwarded upstream.
/// * `tenant_status`: the resolved tenant (from the key, the domain or the route's owner) must
///   be active.
pub const KNOWN_PLUGINS: &[&str] = &["api_key_auth", "tenant_status"];

/// Most targets one route may have.
pub const MAX_TARGETS: usize = 16;
/// Largest target weight.
pub const MAX_TARGET_WEIGHT: u32 = 1000;
/// Most retries of an idempotent request on another target.
pub const MAX_RETRIES: u8 = 3;

/// A route of the data plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    pub id: String,
    pub name: String,
    /// The owning tenant; None for a platform route.
    pub tenant_id: Option<String>,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    pub targets: Vec<RouteTarget>,
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Whether the matched `path_prefix` is removed before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default)]
    pub timeouts: RouteTimeouts,
    /// Further attempts on another target, for idempotent methods only (0 to 3).
    #[serde(default)]
    pub retries: u8,
    /// Names from [`KNOWN_PLUGINS`].
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Higher wins; among equals the longer path prefix, then the more specific host.
    #[serde(default)]
    pub priority: i32,
    /// A plain-HTTP request the route takes is answered `308` to the same URL over HTTPS
    /// (when the proxy has a TLS listener). Left out of the JSON when false, so snapshots
    /// without it keep their hash.
    #[serde(default, skip_serializing_if = "is_false")]
    pub https_redirect: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What requests a route takes. Every condition given must hold; empty means "any".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Lowercase host names, exact (`api.example.com`) or a wildcard (`*.example.com`, any
    /// subdomain but not the apex); the request's port is ignored.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Matches this path and everything below it (`/svc` takes `/svc` and `/svc/x`, not
    /// `/svcx`); default `/`.
    #[serde(default = "root")]
    pub path_prefix: String,
    /// Upper-case HTTP methods.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Header name (lowercase) to the exact value it must have.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn root() -> String {
    "/".into()
}

impl Default for RouteMatch {
    fn default() -> Self {
        Self {
            hosts: Vec::new(),
            path_prefix: root(),
            methods: Vec::new(),
            headers: BTreeMap::new(),
        }
    }
}

/// One upstream of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteTarget {
    /// `http(s)://host[:port][/base-path]`; the base path is put before the forwarded path.
    pub url: String,
    /// 0 to 1000 (default 1); 0 keeps the target configured but sends it nothing.
    #[serde(default = "one")]
    pub weight: u32,
    /// PEM CA certificate(s) that sign an `https://` target's certificate, trusted instead of
    /// the system roots for this target; absent: the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

fn one() -> u32 {
    1
}

/// How a route spreads requests over its targets (pingora-load-balancing's algorithms).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancing {
    /// Weighted round robin.
    #[default]
    RoundRobin,
    /// Weighted random choice.
    WeightedRandom,
    /// Ketama consistent hashing on the client address: a client sticks to one target.
    ConsistentHash,
}

/// Active HTTP health checking of a route's targets; an unhealthy target gets no traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Absolute path probed with GET on each target; a 2xx or 3xx answer is healthy.
    pub path: String,
    /// 100 to 3600000 (default 10000).
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// 10 to 60000 (default 2000); connect and answer must both fit.
    #[serde(default = "default_probe_timeout")]
    pub timeout_ms: u64,
    /// Consecutive successes that make an unhealthy target healthy again, 1 to 10 (default 1).
    #[serde(default = "one_u32")]
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy target unhealthy, 1 to 10 (default 1).
    #[serde(default = "one_u32")]
    pub unhealthy_threshold: u32,
}

fn default_interval() -> u64 {
    10_000
}

fn default_probe_timeout() -> u64 {
    2_000
}

fn one_u32() -> u32 {
    1
}

/// Timeouts towards a route's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteTimeouts {
    /// 1 to 120000 (default 5000).
    #[serde(default = "default_connect")]
    pub connect_ms: u64,
    /// Longest silence from the target (first byte, and between reads), 1 to 3600000
    /// (default 60000).
    #[serde(default = "default_read")]
    pub read_ms: u64,
}

fn default_connect() -> u64 {
    5_000
}

fn default_read() -> u64 {
    60_000
}

impl Default for RouteTimeouts {
    fn default() -> Self {
        Self {
            connect_ms: default_connect(),
            read_ms: default_read(),
        }
    }
}

/// A verified custom domain: requests whose Host is `hostname` belong to `tenant_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainEntry {
    /// Lowercase, without a port.
    pub hostname: String,
    pub tenant_id: String,
    /// The certificate the TLS listener serves for this host (SNI); None: the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<DomainCertificate>,
}

/// A custom domain's certificate as the data plane serves it. The proxy checks it again and
/// leaves out (with a log line) one it cannot use, without refusing the snapshot.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainCertificate {
    /// PEM certificates, the leaf first, then intermediates.
    pub chain_pem: String,
    /// PEM private key of the leaf.
    pub key_pem: String,
}

/// Never prints the key.
impl std::fmt::Debug for DomainCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainCertificate")
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Why the routes or domains of a snapshot were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoutingError {
    #[error("duplicate route id {0}")]
    DuplicateRoute(String),
    #[error("route {route}: {message}")]
    BadRoute { route: String, message: String },
    #[error("route {0} belongs to no tenant of the snapshot")]
    OrphanRoute(String),
    #[error("duplicate domain {0}")]
    DuplicateDomain(String),
    #[error("domain {0} belongs to no tenant of the snapshot")]
    OrphanDomain(String),
}

/// Whether `url` is a usable target URL: `http(s)://authority[/path]`.
pub fn is_target_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let authority = r.split('/').next().unwrap_or_default();
        !authority.is_empty()
            && !r
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@'))
    })
}

impl RouteEntry {
    /// The data plane's own check of one route (a static file is written by hand).
    pub fn check(&self) -> Result<(), String> {
        if self.targets.is_empty() || self.targets.len() > MAX_TARGETS {
            return Err(format!("needs 1 to {MAX_TARGETS} targets"));
        }
        if let Some(t) = self.targets.iter().find(|t| !is_target_url(&t.url)) {
            return Err(format!(
                "target URL {:?} must be http(s)://host[/path]",
                t.url
            ));
        }
        if !self.targets.iter().any(|t| t.weight > 0) {
            return Err("needs a target with a weight above 0".into());
        }
        if !self.matcher.path_prefix.starts_with('/') {
            return Err("match.path_prefix must start with /".into());
        }
        if let Some(p) = self
            .plugins
            .iter()
            .find(|p| !KNOWN_PLUGINS.contains(&p.as_str()))
        {
            return Err(format!("unknown plugin {p:?}"));
        }
        if self.retries > MAX_RETRIES {
            return Err(format!("retries must be 0 to {MAX_RETRIES}"));
        }
        if self.tenant_id.is_some() && self.matcher.hosts.is_empty() {
            // A tenant's route without hosts would take other tenants' traffic.
            return Err("a tenant's route must match hosts".into());
        }
        Ok(())
    }
}

/// Checks routes and domains against each other and the snapshot's tenants.
pub fn validate(snapshot: &Snapshot) -> Result<(), RoutingError> {
    let tenants: HashSet<&str> = snapshot.tenants.iter().map(|t| t.id.as_str()).collect();
    let mut ids = HashSet::new();
    for route in &snapshot.routes {
        if !ids.insert(route.id.as_str()) {
            return Err(RoutingError::DuplicateRoute(route.id.clone()));
        }
        route.check().map_err(|message| RoutingError::BadRoute {
            route: route.id.clone(),
            message,
        })?;
        if let Some(t) = &route.tenant_id {
            if !tenants.contains(t.as_str()) {
                return Err(RoutingError::OrphanRoute(route.id.clone()));
            }
        }
    }
    let mut hosts = HashSet::new();
    for domain in &snapshot.domains {
        if !hosts.insert(domain.hostname.as_str()) {
            return Err(RoutingError::DuplicateDomain(domain.hostname.clone()));
        }
        if !tenants.contains(domain.tenant_id.as_str()) {
            return Err(RoutingError::OrphanDomain(domain.hostname.clone()));
        }
    }
    Ok(())
}

impl Snapshot {
    /// Adds routes and domains (sorted, so equal content hashes equally) and restamps the hash.
    pub fn with_routing(
        mut self,
        mut routes: Vec<RouteEntry>,
        mut domains: Vec<DomainEntry>,
    ) -> Self {
        routes.sort_by(|a, b| a.id.cmp(&b.id));
        domains.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        self.routes = routes;
        self.domains = domains;
        self.hash = self.content_hash();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{TenantEntry, TenantStatus};

    fn tenant(id: &str) -> TenantEntry {
        TenantEntry {
            id: id.into(),
            code: id.into(),
            status: TenantStatus::Active,
            quotas: None,
            allowed_models: vec![],
            log_request_payloads: false,
            cors_allowed_origins: vec![],
            isolation: None,
        }
    }

    fn route(id: &str) -> RouteEntry {
        RouteEntry {
            id: id.into(),
            name: id.into(),
            tenant_id: None,
            matcher: RouteMatch::default(),
            targets: vec![RouteTarget {
                url: "http://127.0.0.1:9/base".into(),
                weight: 1,
                ca_pem: None,
            }],
            load_balancing: LoadBalancing::default(),
            health_check: None,
            strip_prefix: false,
            timeouts: RouteTimeouts::default(),
            retries: 0,
            plugins: vec![],
            priority: 0,
            https_redirect: false,
        }
    }

    fn snapshot(routes: Vec<RouteEntry>, domains: Vec<DomainEntry>) -> Snapshot {
        Snapshot::new(1, vec![tenant("t1")]).with_routing(routes, domains)
    }

    #[test]
    fn good_routes_and_domains_pass() {
        let mut owned = route("r2");
        owned.tenant_id = Some("t1".into());
        owned.matcher.hosts = vec!["api.clinic.example".into()];
        let s = snapshot(
            vec![route("r1"), owned],
            vec![DomainEntry {
                hostname: "api.clinic.example".into(),
                tenant_id: "t1".into(),
                certificate: None,
            }],
        );
        s.validate().expect("valid");
    }

    #[test]
    fn bad_routes_are_refused() {
        let s = snapshot(vec![route("r1"), route("r1")], vec![]);
        assert_eq!(
            s.validate(),
            Err(RoutingError::DuplicateRoute("r1".into()).into())
        );
        let mut no_targets = route("r1");
        no_targets.targets.clear();
        let mut bad_url = route("r1");
        bad_url.targets[0].url = "ftp://x".into();
        let mut plugin = route("r1");
        plugin.plugins = vec!["teleport".into()];
        let mut hostless = route("r1");
        hostless.tenant_id = Some("t1".into());
        let mut orphan = route("r1");
        orphan.tenant_id = Some("nobody".into());
        orphan.matcher.hosts = vec!["x.example".into()];
        for r in [no_targets, bad_url, plugin, hostless, orphan] {
            assert!(
                snapshot(vec![r.clone()], vec![]).validate().is_err(),
                "{r:?}"
            );
        }
    }

    #[test]
    fn domains_are_unique_and_owned() {
        let d = |t: &str| DomainEntry {
            hostname: "a.example".into(),
            tenant_id: t.into(),
            certificate: None,
        };
        assert!(snapshot(vec![], vec![d("t1"), d("t1")]).validate().is_err());
        assert!(snapshot(vec![], vec![d("t9")]).validate().is_err());
    }
}
