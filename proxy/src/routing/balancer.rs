//! A route's targets behind a pingora-load-balancing `LoadBalancer`, with active HTTP health
//! checks. Built once per snapshot (kept across snapshots while the route is unchanged, so
//! health and round-robin state survive unrelated config changes), never per request.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use medgate_config::{HealthCheck as HealthCheckConfig, LoadBalancing, RouteEntry};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::lb::discovery::Static;
use pingora::lb::health_check::HealthCheck;
use pingora::lb::selection::{BackendIter, BackendSelection, Consistent, Random, RoundRobin};
use pingora::lb::{Backend, Backends, Extensions, LoadBalancer};
use pingora::protocols::l4::socket::SocketAddr;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::upstream::BaseUrl;

/// Bound of the selection walk (pingora's iterators may repeat backends).
const MAX_ITERATIONS: usize = 256;

/// One target of a route, ready to dial.
#[derive(Debug, Clone)]
pub struct Target {
    pub peer: HttpPeer,
    /// `Host` header value sent to the target.
    pub host: String,
    /// Put before the forwarded path; no trailing slash.
    pub base_path: String,
    /// scheme://authority, for logs.
    pub label: String,
}

/// Which of [`Balancer::targets`] a pingora `Backend` stands for.
#[derive(Debug, Clone, Copy)]
struct TargetIndex(usize);

enum Algorithm {
    RoundRobin(LoadBalancer<RoundRobin>),
    Random(LoadBalancer<Random>),
    Consistent(LoadBalancer<Consistent>),
}

/// The targets of a route and the algorithm that picks among the healthy ones.
pub struct Balancer {
    pub targets: Vec<Target>,
    algorithm: Algorithm,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("targets", &self.targets.len())
            .finish()
    }
}

impl Balancer {
    /// Targets that do not resolve or weigh 0 are left out (with a warning for the former).
    pub fn build(route: &RouteEntry) -> Self {
        let mut targets = Vec::new();
        let mut backends = BTreeSet::new();
        for t in route.targets.iter().filter(|t| t.weight > 0) {
            let Some(url) = BaseUrl::parse(&t.url) else {
                continue;
            };
            let Some(addr) = url.resolve() else {
                tracing::warn!(route = %route.id, host = %url.host_name, "route target does not resolve; skipped");
                continue;
            };
            let mut peer = HttpPeer::new(addr, url.tls, url.host_name.clone());
            let connect = Duration::from_millis(route.timeouts.connect_ms.max(1));
            peer.options.connection_timeout = Some(connect);
            peer.options.total_connection_timeout = Some(connect * 2);
            peer.options.read_timeout = Some(Duration::from_millis(route.timeouts.read_ms.max(1)));
            peer.options.write_timeout = Some(Duration::from_secs(60));
            peer.options.idle_timeout = Some(Duration::from_secs(60));
            if let (true, Some(ca)) = (url.tls, &t.ca_pem) {
                if let Err(e) = crate::tls::trust_ca(&mut peer, ca) {
                    tracing::warn!(route = %route.id, target = %url.label(), error = %e, "target CA certificate unusable; skipped");
                    continue;
                }
            }
            let mut ext = Extensions::new();
            ext.insert(TargetIndex(targets.len()));
            backends.insert(Backend {
                addr: SocketAddr::Inet(addr),
                weight: t.weight as usize,
                ext,
            });
            targets.push(Target {
                peer,
                label: url.label(),
                host: url.authority,
                base_path: url.base_path,
            });
        }
        let probe = route
            .health_check
            .as_ref()
            .map(|hc| Prober::new(hc, &targets));
        let algorithm = match route.load_balancing {
            LoadBalancing::RoundRobin => Algorithm::RoundRobin(load_balancer(backends, probe)),
            LoadBalancing::WeightedRandom => Algorithm::Random(load_balancer(backends, probe)),
            LoadBalancing::ConsistentHash => Algorithm::Consistent(load_balancer(backends, probe)),
        };
        Self { targets, algorithm }
    }

    /// A healthy target not in `exclude` (earlier attempts); `key` feeds consistent hashing.
    pub fn pick(&self, key: &[u8], exclude: &[usize]) -> Option<usize> {
        let accept = |b: &Backend, healthy: bool| {
            healthy && index_of(b).is_some_and(|i| !exclude.contains(&i))
        };
        let backend = match &self.algorithm {
            Algorithm::RoundRobin(lb) => lb.select_with(key, MAX_ITERATIONS, accept),
            Algorithm::Random(lb) => lb.select_with(key, MAX_ITERATIONS, accept),
            Algorithm::Consistent(lb) => lb.select_with(key, MAX_ITERATIONS, accept),
        };
        backend.as_ref().and_then(index_of)
    }

    /// Probes every target once and updates their health.
    pub async fn run_health_check(&self) {
        match &self.algorithm {
            Algorithm::RoundRobin(lb) => lb.backends().run_health_check(true).await,
            Algorithm::Random(lb) => lb.backends().run_health_check(true).await,
            Algorithm::Consistent(lb) => lb.backends().run_health_check(true).await,
        }
    }
}

fn index_of(backend: &Backend) -> Option<usize> {
    backend.ext.get::<TargetIndex>().map(|t| t.0)
}

fn load_balancer<S>(backends: BTreeSet<Backend>, probe: Option<Prober>) -> LoadBalancer<S>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let mut view = Backends::new(Static::new(backends));
    if let Some(probe) = probe {
        view.set_health_check(Box::new(probe));
    }
    let lb = LoadBalancer::from_backends(view);
    // Static discovery answers at once: poll the update to completion without a runtime
    // (snapshots are also installed before Pingora's runtimes exist).
    {
        let mut update = pin!(lb.update());
        if let Poll::Ready(Err(e)) = update
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            tracing::warn!(error = %e, "route targets could not be loaded");
        }
    }
    lb
}

/// GETs the health path of a target; 2xx and 3xx are healthy.
struct Prober {
    targets: Vec<(HttpPeer, String)>,
    path: String,
    timeout: Duration,
    healthy_after: usize,
    unhealthy_after: usize,
    connector: Connector,
}

impl Prober {
    fn new(config: &HealthCheckConfig, targets: &[Target]) -> Self {
        Self {
            targets: targets
                .iter()
                .map(|t| (t.peer.clone(), t.host.clone()))
                .collect(),
            path: config.path.clone(),
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            healthy_after: config.healthy_threshold.max(1) as usize,
            unhealthy_after: config.unhealthy_threshold.max(1) as usize,
            connector: Connector::new(None),
        }
    }

    async fn probe(&self, peer: &HttpPeer, host: &str) -> Result<()> {
        let (mut session, _) = self.connector.get_http_session(peer).await?;
        let mut req = RequestHeader::build("GET", self.path.as_bytes(), Some(3))?;
        req.insert_header("host", host)?;
        req.insert_header("user-agent", "medgate-health-check")?;
        session.write_request_header(Box::new(req)).await?;
        session.finish_request_body().await?;
        session.read_response_header().await?;
        let status = session.response_header().map_or(0, |h| h.status.as_u16());
        if (200..400).contains(&status) {
            Ok(())
        } else {
            Error::e_explain(
                ErrorType::CustomCode("unhealthy status", status),
                "route health check",
            )
        }
    }
}

#[async_trait]
impl HealthCheck for Prober {
    async fn check(&self, backend: &Backend) -> Result<()> {
        let Some((peer, host)) = index_of(backend).and_then(|i| self.targets.get(i)) else {
            return Error::e_explain(ErrorType::InternalError, "unknown route target");
        };
        match tokio::time::timeout(self.timeout, self.probe(peer, host)).await {
            Ok(outcome) => outcome,
            Err(_) => Error::e_explain(ErrorType::ConnectTimedout, "route health check timed out"),
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.healthy_after
        } else {
            self.unhealthy_after
        }
    }
}
