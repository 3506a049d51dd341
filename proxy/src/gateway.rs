//! The Pingora `ProxyHttp` implementation: routes each request to the inference path, the
//! local endpoints (`/metrics`, `/healthz`, `/readyz`), or the management API (proxied to the
//! control plane on Pingora's native path, so the whole API is reachable on this origin).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::inference::{self, Endpoint};
use crate::instance::Instance;
use crate::metrics::Metrics;
use crate::openai_error::GatewayError;
use crate::protection::breaker::CallOutcome;
use crate::routing::{self, RouteCall};
use crate::shared::Shared;
use crate::sink::{AccessLogSender, UsageSender};

/// Per-request state, kept for logging and metering.
#[derive(Debug, Default)]
pub struct RequestCtx {
    pub request_id: String,
    pub started: Option<Instant>,
    pub arrived_at: String,
    pub route: &'static str,
    pub tenant_id: Option<String>,
    pub model: Option<String>,
    pub upstream: Option<String>,
    pub status: u16,
    pub tokens: (u64, u64),
    /// Whether a response reached the client from the handler itself.
    pub response_written: bool,
    /// Set when a generic route took the request (`route` is then `"route"`).
    pub route_call: Option<RouteCall>,
    /// A route's upstream answered (its status is in `status`).
    pub upstream_responded: bool,
}

/// The data plane.
pub struct Gateway {
    pub shared: Arc<Shared>,
    /// Funds of tenants on a spending limit (the 402 gate).
    pub funds: Arc<crate::funds::Funds>,
    pub connector: Connector,
    pub usage: UsageSender,
    pub access_log: AccessLogSender,
    pub metrics: Arc<Metrics>,
    pub instance: Arc<Instance>,
    /// The control planes, for `/api/*` management calls.
    pub control_planes: Option<Arc<crate::control_plane::ControlPlanes>>,
    /// Port of the HTTPS listener, where routes with `https_redirect` send plain-HTTP
    /// requests; None without one (no redirects then).
    pub https_port: Option<u16>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        let (started, arrived_at) = inference::arrival_time();
        RequestCtx {
            request_id: uuid::Uuid::now_v7().to_string(),
            started: Some(started),
            arrived_at,
            ..RequestCtx::default()
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let method = session.req_header().method.as_str().to_owned();
        let path = session.req_header().uri.path().to_owned();
        if let Some(endpoint) = Endpoint::of(&method, &path) {
            ctx.route = "inference";
            if let Err(error) = inference::handle(self, session, ctx, endpoint).await {
                self.metrics.errors.with_label_values(&[error.code]).inc();
                ctx.status = error.status;
                if !ctx.response_written {
                    write_error(session, &ctx.request_id, &error).await;
                }
            }
            return Ok(true);
        }
        match (method.as_str(), path.as_str()) {
            ("GET", "/metrics") => {
                ctx.route = "metrics";
                if let Some(v) = self.shared.version() {
                    self.metrics.snapshot_version.set(v as i64);
                }
                let body = Bytes::from(self.metrics.render());
                ctx.status = 200;
                write_body(
                    session,
                    200,
                    &ctx.request_id,
                    "text/plain; version=0.0.4",
                    body,
                )
                .await;
                Ok(true)
            }
            ("GET", "/healthz") => {
                ctx.route = "health";
                ctx.status = 200;
                write_json(
                    session,
                    200,
                    &ctx.request_id,
                    Bytes::from_static(b"{\"status\":\"ok\"}"),
                )
                .await;
                Ok(true)
            }
            ("GET", "/readyz") => {
                ctx.route = "health";
                let (status, body) = match self.shared.version() {
                    Some(v) => (
                        200,
                        format!("{{\"status\":\"ready\",\"snapshot_version\":{v}}}"),
                    ),
                    None => (503, "{\"status\":\"no snapshot yet\"}".to_owned()),
                };
                ctx.status = status;
                write_json(session, status, &ctx.request_id, Bytes::from(body)).await;
                Ok(true)
            }
            // Generic routes come after the gateway's own endpoints, before the management API.
            _ if !LOCAL_PATHS.contains(&path.as_str())
                && routing::call::admit(self, session, ctx).await.is_some() =>
            {
                // Admitted: proxy natively; refused: the answer is written.
                Ok(ctx.route_call.is_none())
            }
            (_, p) if p.starts_with("/api/") && self.control_planes.is_some() => {
                ctx.route = "management";
                ctx.upstream = self.control_planes.as_ref().map(|c| c.url());
                Ok(false)
            }
            _ => {
                ctx.route = "unknown";
                let error = GatewayError::new(
                    404,
                    "invalid_request_error",
                    "unknown_route",
                    format!("no route for {method} {path}"),
                );
                ctx.status = 404;
                write_error(session, &ctx.request_id, &error).await;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        if let Some(call) = &mut ctx.route_call {
            let peer = call.peer()?;
            ctx.upstream = call.target_label().map(str::to_owned);
            return Ok(peer);
        }
        match &self.control_planes {
            Some(control_planes) => {
                let mut peer = HttpPeer::new(control_planes.addr(), false, String::new());
                // The gateway-wide defaults: the control plane sets no timeouts of its own.
                if let Some(catalog) = self.shared.catalog() {
                    let g = &catalog.snapshot.gateway;
                    let connect = Duration::from_millis(g.upstream_connect_timeout_ms);
                    peer.options.connection_timeout = Some(connect);
                    peer.options.total_connection_timeout = Some(connect * 2);
                    peer.options.read_timeout =
                        Some(Duration::from_millis(g.upstream_read_timeout_ms));
                }
                Ok(Box::new(peer))
            }
            None => Err(Error::explain(
                ErrorType::HTTPStatus(404),
                "no upstream for this route",
            )),
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        match &ctx.route_call {
            Some(call) => call.rewrite(upstream)?,
            None => {
                if let Some(control_planes) = &self.control_planes {
                    upstream.insert_header("host", control_planes.addr().to_string())?;
                }
            }
        }
        if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
            let forwarded = forwarded_for(upstream, addr.ip());
            upstream.insert_header("x-forwarded-for", forwarded)?;
        }
        let proto = if crate::tls::is_tls(session) {
            "https"
        } else {
            "http"
        };
        upstream.insert_header("x-forwarded-proto", proto)?;
        upstream.insert_header("x-request-id", &ctx.request_id)?;
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing reached the target: a route may try another one.
        if ctx.route_call.as_mut().is_some_and(|c| c.retry(session)) {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if ctx.route_call.as_mut().is_some_and(|c| c.retry(session)) {
            e.set_retry(true);
        } else if !session.req_header().method.is_idempotent()
            || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            // Pingora's default: retry only a stale pooled connection.
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = response.status.as_u16();
        ctx.upstream_responded = true;
        Ok(())
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        if ctx.status == 0 {
            ctx.status = session
                .response_written()
                .map_or(if error.is_some() { 502 } else { 0 }, |r| r.status.as_u16());
        }
        let class = match ctx.status {
            0 => "none",
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=498 => "4xx",
            499 => "client_gone",
            _ => "5xx",
        };
        self.metrics
            .requests
            .with_label_values(&[ctx.route, class])
            .inc();
        if let Some(started) = ctx.started {
            self.metrics
                .duration
                .with_label_values(&[ctx.route])
                .observe(started.elapsed().as_secs_f64());
        }
        self.instance.count_request();
        settle_route_call(self, ctx);
        crate::access_log::record(self, session, ctx);
    }
}

/// Tells a route's circuit breakers and service figures how the call went.
fn settle_route_call(gw: &Gateway, ctx: &mut RequestCtx) {
    let Some(call) = ctx.route_call.as_mut() else {
        return;
    };
    let Some(permits) = call.breaker_permits.take() else {
        return;
    };
    let status = ctx.upstream_responded.then_some(ctx.status);
    permits.record(CallOutcome { status, ttfb: None });
    let failed = status.is_none_or(|s| s >= 500);
    let latency = ctx.started.map(|s| s.elapsed()).unwrap_or_default();
    gw.shared.protection.services.record(
        &format!("route:{}", call.route.entry.id),
        failed,
        latency,
    );
}

/// The gateway's own endpoints, which no route can take.
const LOCAL_PATHS: &[&str] = &["/metrics", "/healthz", "/readyz"];

/// Writes a complete JSON response.
pub async fn write_json(session: &mut Session, status: u16, request_id: &str, body: Bytes) {
    write_json_with(session, status, request_id, body, &[]).await;
}

/// Writes a complete JSON response with extra headers.
pub async fn write_json_with(
    session: &mut Session,
    status: u16,
    request_id: &str,
    body: Bytes,
    headers: &[(&'static str, String)],
) {
    write_body_with(
        session,
        status,
        request_id,
        "application/json",
        body,
        headers,
    )
    .await;
}

async fn write_body(
    session: &mut Session,
    status: u16,
    request_id: &str,
    content_type: &str,
    body: Bytes,
) {
    write_body_with(session, status, request_id, content_type, body, &[]).await;
}

async fn write_body_with(
    session: &mut Session,
    status: u16,
    request_id: &str,
    content_type: &str,
    body: Bytes,
    headers: &[(&'static str, String)],
) {
    let Ok(mut head) = ResponseHeader::build(status, Some(3 + headers.len())) else {
        return;
    };
    for (name, value) in headers {
        let _ = head.insert_header(*name, value);
    }
    let _ = head.insert_header("content-type", content_type);
    let _ = head.insert_header("content-length", body.len().to_string());
    let _ = head.insert_header("x-request-id", request_id);
    if session
        .write_response_header(Box::new(head), false)
        .await
        .is_ok()
    {
        let _ = session.write_response_body(Some(body), true).await;
    }
}

/// Writes an OpenAI-shaped error. An unread request body means the connection cannot be
/// reused, so keep-alive is turned off for refusals before the body was read.
pub async fn write_error(session: &mut Session, request_id: &str, error: &GatewayError) {
    let body = error.body();
    if matches!(error.status, 413 | 401 | 403 | 404 | 503) || !session.is_body_done() {
        session.set_keepalive(None);
    }
    let Ok(head) = error.header(request_id, body.len()) else {
        return;
    };
    if session
        .write_response_header(Box::new(head), false)
        .await
        .is_ok()
    {
        let _ = session.write_response_body(Some(body), true).await;
    }
}

/// `X-Forwarded-For` as the next hop gets it: what came in (every such header, in order),
/// then the peer, as nginx's `$proxy_add_x_forwarded_for` does. Whoever reads it takes the
/// right-most address it does not trust, so a client's own entries mislead no one.
fn forwarded_for(request: &RequestHeader, peer: std::net::IpAddr) -> String {
    let mut chain = String::new();
    for value in request.headers.get_all("x-forwarded-for") {
        if let Ok(text) = value.to_str() {
            let text = text.trim();
            if !text.is_empty() {
                chain.push_str(text);
                chain.push_str(", ");
            }
        }
    }
    chain.push_str(&peer.to_string());
    chain
}
