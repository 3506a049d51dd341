//! Starting and stopping the Pingora server that hosts the gateway.
//!
//! Pingora's `Server::run` blocks and owns its runtimes, so it runs on a thread of its own;
//! the snapshot watcher and the usage sink run as Pingora background services and see the
//! same shutdown signal. Stopping drains in-flight requests, then flushes usage.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use medgate_config::tls::ServerCertificate;
use medgate_config::{SpoolSettings, TlsListenerMaterial, UsageEvent};
use pingora::connectors::http::Connector;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use tokio::sync::Notify;

use crate::control_plane::ControlPlanes;
use crate::funds::{ClusterHolds, Funds};
use crate::gateway::Gateway;
use crate::instance::Instance;
use crate::metrics::Metrics;
use crate::protection::clock::SystemClock;
use crate::protection::limit::RedisLimitStore;
use crate::protection::Protection;
use crate::shared::Shared;
use crate::sink::{self, EventSink, Overflow, Rotation, SinkConfig, SinkEvent};
use crate::tls::SniResolver;

/// How to run the proxy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub listen: SocketAddr,
    /// Keeps the last good snapshot and the usage spool.
    pub data_dir: PathBuf,
    /// Source of configuration: the control plane, or a static gateway file.
    pub source: ConfigSource,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Seconds in-flight requests get to finish on a graceful stop.
    pub grace_period_secs: u64,
    /// `redis://...` for cluster-mode rate limits; None counts them in this process only.
    pub redis_url: Option<String>,
    /// Longest a Redis call may take before a rule's failure mode applies.
    pub redis_timeout: Duration,
    /// The HTTPS listener and its default certificate; None: plain HTTP only.
    pub tls: Option<TlsListenerMaterial>,
    /// Rotation of the usage and access-log spools in static mode.
    pub spool: SpoolSettings,
}

/// Where the snapshot comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    ControlPlane {
        /// e.g. `127.0.0.1:8081` (plain HTTP on a trusted network).
        addr: SocketAddr,
        /// More control planes of the same cluster, used in turn when the one in use fails.
        standby: Vec<SocketAddr>,
        /// A token with role `node`.
        node_token: String,
    },
    StaticFile(PathBuf),
}

/// A running proxy.
pub struct ProxyHandle {
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub shared: Arc<Shared>,
    pub listen: SocketAddr,
    /// The HTTPS listener, if any.
    pub tls_listen: Option<SocketAddr>,
    /// This process as the control plane sees it (id in heartbeats and access logs).
    pub instance: Arc<Instance>,
}

impl ProxyHandle {
    /// Graceful stop: stop accepting, let requests finish, flush usage. Blocks until done.
    pub fn stop(mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.notify_one();
            let _ = t.join();
        }
    }
}

struct StopWatch(Arc<Notify>);

#[async_trait]
impl ShutdownSignalWatch for StopWatch {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::GracefulTerminate
    }
}

/// Starts the proxy on its own thread; returns once the listener is being set up.
pub fn start(options: ProxyOptions) -> std::io::Result<ProxyHandle> {
    // Fail early and clearly when the port is taken (Pingora would panic in its thread).
    drop(std::net::TcpListener::bind(options.listen)?);
    let default_certificate = match &options.tls {
        Some(tls) => {
            drop(std::net::TcpListener::bind(tls.listen)?);
            let certificate =
                ServerCertificate::from_pem(&tls.chain_pem, &tls.key_pem).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("the default TLS certificate: {e}"),
                    )
                })?;
            Some((tls.listen, certificate))
        }
        None => None,
    };
    let redis = match &options.redis_url {
        Some(url) => Some(
            RedisLimitStore::new(url, options.redis_timeout)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let protection = Arc::new(Protection::new(SystemClock::shared(), redis));
    let shared = Arc::new(Shared::with_protection(
        Some(options.data_dir.join("last-good-snapshot.json")),
        protection,
    ));
    shared.load_persisted();
    let tls_listener = match default_certificate {
        Some((addr, certificate)) => {
            let resolver = Arc::new(SniResolver::new(Arc::clone(&shared), &certificate));
            let settings = crate::tls::listener_settings(resolver)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            Some((addr, settings))
        }
        None => None,
    };
    let tls_listen = tls_listener.as_ref().map(|(addr, _)| *addr);
    let (control_planes, node_token) = match &options.source {
        ConfigSource::ControlPlane {
            addr,
            standby,
            node_token,
        } => (
            Some(Arc::new(ControlPlanes::new(*addr, standby))),
            Some(node_token.clone()),
        ),
        ConfigSource::StaticFile(_) => (None, None),
    };
    // In static mode the spools are where events end up: rotated, not replayed.
    let rotation = control_planes.is_none().then_some(Rotation {
        max_bytes: options.spool.max_file_mb.saturating_mul(1024 * 1024),
        keep: options.spool.keep_files,
    });
    let usage_config = SinkConfig {
        control_plane: control_planes.clone(),
        node_token: node_token.clone(),
        spool_path: options.data_dir.join("usage-spool.jsonl"),
        batch_size: 500,
        flush_interval: Duration::from_millis(200),
        overflow: Overflow::Spool,
        rotation,
    };
    // Access logs: their own queue and spool, and dropped rather than spooled on the request
    // path when the queue is full (usage is billed; a log line is not worth a disk write there).
    let access_config = SinkConfig {
        spool_path: options.data_dir.join("access-log-spool.jsonl"),
        batch_size: 1_000,
        overflow: Overflow::Drop,
        ..usage_config.clone()
    };
    let instance = Arc::new(Instance::new(options.listen));
    // Cluster mode: the proxies share their spending holds through the same Redis.
    let holds = match &options.redis_url {
        Some(url) => Some(
            ClusterHolds::new(url, options.redis_timeout, &instance.id)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let funds = Arc::new(Funds::new(holds));
    let (usage, usage_sink) = sink::channel::<UsageEvent>(usage_config);
    let delivered_funds = Arc::clone(&funds);
    let usage_sink = usage_sink.on_delivered(Arc::new(move |events: &[UsageEvent]| {
        delivered_funds.delivered(events.iter().map(|e| e.request_id.as_str()));
    }));
    let (access_log, access_sink) = sink::channel(access_config);
    let stop = Arc::new(Notify::new());
    let gateway = Gateway {
        shared: shared.clone(),
        funds: Arc::clone(&funds),
        connector: Connector::new(None),
        usage,
        access_log,
        metrics: Arc::new(Metrics::new()),
        instance: instance.clone(),
        control_planes: control_planes.clone(),
        https_port: tls_listen.map(|a| a.port()),
    };
    let thread_instance = instance.clone();
    let thread_shared = shared.clone();
    let thread_stop = stop.clone();
    let listen = options.listen;
    let thread = std::thread::Builder::new()
        .name("medgate-proxy".into())
        .spawn(move || {
            let conf = ServerConf {
                threads: options.threads.max(1),
                grace_period_seconds: Some(options.grace_period_secs),
                graceful_shutdown_timeout_seconds: Some(5),
                ..ServerConf::default()
            };
            let mut server = Server::new_with_opt_and_conf(None, conf);
            server.bootstrap();
            let mut service = pingora::proxy::http_proxy_service_with_name(
                &server.configuration,
                gateway,
                "medgate gateway",
            );
            service.add_tcp(&listen.to_string());
            if let Some((addr, settings)) = tls_listener {
                service.add_tls_with_settings(&addr.to_string(), None, settings);
            }
            server.add_service(service);
            let grace = Duration::from_secs(options.grace_period_secs.saturating_sub(1));
            server.add_service(background_service(
                "usage sink",
                SinkService::new(usage_sink, grace),
            ));
            server.add_service(background_service(
                "access-log sink",
                SinkService::new(access_sink, grace),
            ));
            if let (Some(control_planes), Some(node_token)) = (&control_planes, &node_token) {
                server.add_service(background_service(
                    "funds feed",
                    FundsService {
                        funds,
                        control_planes: Arc::clone(control_planes),
                        token: node_token.clone(),
                    },
                ));
                server.add_service(background_service(
                    "heartbeat",
                    HeartbeatService {
                        instance: thread_instance,
                        shared: thread_shared.clone(),
                        control_planes: Arc::clone(control_planes),
                        token: node_token.clone(),
                    },
                ));
            }
            server.add_service(background_service(
                "route health checks",
                crate::routing::health::RouteHealth {
                    shared: thread_shared.clone(),
                },
            ));
            server.add_service(background_service(
                "limiter sweeper",
                SweeperService {
                    shared: thread_shared.clone(),
                },
            ));
            server.add_service(background_service(
                "snapshot watcher",
                WatcherService {
                    shared: thread_shared,
                    source: options.source,
                    control_planes,
                },
            ));
            server.run(RunArgs {
                shutdown_signal: Box::new(StopWatch(thread_stop)),
            });
        })?;
    Ok(ProxyHandle {
        stop,
        thread: Some(thread),
        shared,
        listen,
        tls_listen,
        instance,
    })
}

/// Resolves when Pingora signals shutdown.
async fn shutdown_of(mut watch: ShutdownWatch) {
    while !*watch.borrow() {
        if watch.changed().await.is_err() {
            return;
        }
    }
}

struct SinkService<E> {
    sink: std::sync::Mutex<Option<EventSink<E>>>,
    grace: Duration,
}

impl<E> SinkService<E> {
    fn new(sink: EventSink<E>, grace: Duration) -> Self {
        Self {
            sink: std::sync::Mutex::new(Some(sink)),
            grace,
        }
    }
}

#[async_trait]
impl<E: SinkEvent> BackgroundService for SinkService<E> {
    async fn start(&self, shutdown: ShutdownWatch) {
        let sink = self.sink.lock().ok().and_then(|mut s| s.take());
        if let Some(sink) = sink {
            // Requests still in flight during the grace period keep emitting events: keep
            // delivering until it ends, then drain. (Anything later is spooled, not lost.)
            let grace = self.grace;
            let stop = Box::pin(async move {
                shutdown_of(shutdown).await;
                tokio::time::sleep(grace).await;
            });
            sink.run(stop).await;
        }
    }
}

/// Keeps the funds of tenants on a spending limit current.
struct FundsService {
    funds: Arc<Funds>,
    control_planes: Arc<ControlPlanes>,
    token: String,
}

#[async_trait]
impl BackgroundService for FundsService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let watch = crate::watcher::watch_funds(
            Arc::clone(&self.funds),
            Arc::clone(&self.control_planes),
            Some(self.token.clone()),
            Box::pin(shutdown_of(shutdown.clone())),
        );
        let publish = Arc::clone(&self.funds).publish_until(shutdown_of(shutdown));
        tokio::join!(watch, publish);
    }
}

/// Reclaims idle rate-limiter state.
struct SweeperService {
    shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for SweeperService {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.shared
            .protection
            .sweep_until(shutdown_of(shutdown))
            .await;
    }
}

struct WatcherService {
    shared: Arc<Shared>,
    source: ConfigSource,
    control_planes: Option<Arc<ControlPlanes>>,
}

#[async_trait]
impl BackgroundService for WatcherService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let stop = Box::pin(shutdown_of(shutdown));
        match &self.source {
            ConfigSource::ControlPlane { node_token, .. } => {
                let Some(control_planes) = &self.control_planes else {
                    return;
                };
                crate::watcher::watch_control_plane(
                    self.shared.clone(),
                    Arc::clone(control_planes),
                    Some(node_token.clone()),
                    stop,
                )
                .await;
            }
            ConfigSource::StaticFile(path) => {
                crate::watcher::watch_file(self.shared.clone(), path.clone(), stop).await
            }
        }
    }
}

struct HeartbeatService {
    instance: Arc<Instance>,
    shared: Arc<Shared>,
    control_planes: Arc<ControlPlanes>,
    token: String,
}

#[async_trait]
impl BackgroundService for HeartbeatService {
    async fn start(&self, shutdown: ShutdownWatch) {
        crate::heartbeat::run(
            self.instance.clone(),
            self.shared.clone(),
            Arc::clone(&self.control_planes),
            Some(self.token.clone()),
            Box::pin(shutdown_of(shutdown)),
        )
        .await;
    }
}
