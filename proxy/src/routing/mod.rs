//! Generic routes and custom domains on the data plane (API §7.1, §8).
//!
//! A [`Routing`] is built once per snapshot: routes in evaluation order, each with its
//! load balancer, and the verified domains by host. Matched requests run the route's plugins
//! in `request_filter` ([`call::admit`]) and then go through Pingora's native proxy path:
//! `upstream_peer` asks the route's balancer for a healthy target and `upstream_request_filter`
//! rewrites the path and `Host`. Health checks run in one background task ([`health`]).

mod balancer;
pub mod call;
pub mod health;
mod route;

use std::collections::HashMap;
use std::sync::Arc;

use medgate_config::Snapshot;
use pingora::http::RequestHeader;

use crate::tls::CertTable;

pub use balancer::{Balancer, Target};
pub use call::RouteCall;
pub use route::{host_matches, path_matches, CompiledRoute, RequestFacts};

/// The routes and domains of one snapshot.
#[derive(Debug, Default)]
pub struct Routing {
    /// In evaluation order (see [`CompiledRoute::order_key`]).
    routes: Vec<Arc<CompiledRoute>>,
    /// Verified domain -> owning tenant.
    domains: HashMap<String, String>,
    /// The domains' certificates for the HTTPS listener, by SNI.
    pub certificates: CertTable,
}

impl Routing {
    /// Compiles the snapshot's routes, reusing those of `previous` that did not change (their
    /// balancers keep health and rotation state).
    pub fn build(snapshot: &Snapshot, previous: Option<&Routing>) -> Self {
        let before: HashMap<&str, &Arc<CompiledRoute>> = previous
            .map(|p| p.routes.iter().map(|r| (r.entry.id.as_str(), r)).collect())
            .unwrap_or_default();
        let mut routes: Vec<Arc<CompiledRoute>> = snapshot
            .routes
            .iter()
            .map(|entry| match before.get(entry.id.as_str()) {
                Some(r) if r.entry == *entry => Arc::clone(r),
                _ => Arc::new(CompiledRoute::new(entry.clone())),
            })
            .collect();
        routes.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        let domains = snapshot
            .domains
            .iter()
            .map(|d| (d.hostname.clone(), d.tenant_id.clone()))
            .collect();
        let certificates = CertTable::build(&snapshot.domains, previous.map(|p| &p.certificates));
        Self {
            routes,
            domains,
            certificates,
        }
    }

    /// The first route that takes the request.
    pub fn find(&self, facts: &RequestFacts<'_>) -> Option<&Arc<CompiledRoute>> {
        self.routes.iter().find(|r| r.matches(facts))
    }

    /// The tenant a verified custom domain belongs to.
    pub fn tenant_of_host(&self, host: &str) -> Option<&str> {
        self.domains.get(host).map(String::as_str)
    }

    /// Routes with a health check, for the health task.
    pub fn checked_routes(&self) -> impl Iterator<Item = &Arc<CompiledRoute>> {
        self.routes.iter().filter(|r| r.health.is_some())
    }
}

/// The request's host, lowercase and without the port: the `Host` header, or the URI's
/// authority (HTTP/2). Empty when there is none.
pub fn request_host(req: &RequestHeader) -> String {
    let raw = req
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.host())
        .unwrap_or_default();
    let without_port = if raw.starts_with('[') {
        raw.split_once(']')
            .map_or(raw, |(h, _)| &raw[..h.len() + 1])
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).expect("req");
        r.insert_header("host", host).expect("host");
        r
    }

    fn snapshot(targets: &[&str]) -> Snapshot {
        let route = |id: &str, url: &str| medgate_config::RouteEntry {
            id: id.into(),
            name: id.into(),
            tenant_id: None,
            matcher: medgate_config::RouteMatch::default(),
            targets: vec![medgate_config::RouteTarget {
                url: url.into(),
                weight: 1,
                ca_pem: None,
            }],
            load_balancing: Default::default(),
            health_check: None,
            strip_prefix: false,
            timeouts: Default::default(),
            retries: 0,
            plugins: vec![],
            priority: 0,
            https_redirect: false,
        };
        let routes = targets
            .iter()
            .enumerate()
            .map(|(i, url)| route(&format!("r{i}"), url))
            .collect();
        Snapshot::new(1, vec![]).with_routing(routes, vec![])
    }

    #[test]
    fn unchanged_routes_keep_their_balancer_across_snapshots() {
        let first = Routing::build(
            &snapshot(&["http://127.0.0.1:1", "http://127.0.0.1:2"]),
            None,
        );
        let second = Routing::build(
            &snapshot(&["http://127.0.0.1:1", "http://127.0.0.1:3"]),
            Some(&first),
        );
        let by_id = |r: &Routing, id: &str| {
            r.routes
                .iter()
                .find(|x| x.entry.id == id)
                .cloned()
                .expect("route")
        };
        assert!(Arc::ptr_eq(&by_id(&first, "r0"), &by_id(&second, "r0")));
        assert!(!Arc::ptr_eq(&by_id(&first, "r1"), &by_id(&second, "r1")));
    }

    #[test]
    fn hosts_lose_port_and_case() {
        assert_eq!(
            request_host(&req("API.Example.com:8443")),
            "api.example.com"
        );
        assert_eq!(request_host(&req("example.com.")), "example.com");
        assert_eq!(request_host(&req("[::1]:80")), "[::1]");
    }
}
