//! One request on a route: admission (the route's plugins), then the native proxy path's
//! choices (target, retries) and the upstream request's rewrite.

use std::sync::Arc;

use medgate_plugins::{Decision, Plugin, RequestView, TenantStatusGate};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use super::route::{CompiledRoute, RequestFacts};
use crate::auth::{self, KeyRefusal};
use crate::catalog::Catalog;
use crate::gateway::{write_error, Gateway, RequestCtx};
use crate::inference::protect;
use crate::openai_error::GatewayError;
use crate::protection::breaker::{CallTarget, Permits};
use crate::protection::limit::LimitRequest;

/// Client headers that carry a medgate API key; never forwarded once a route checked it.
const KEY_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key"];
/// Header the gateway sets to the tenant it resolved; a client-sent one is always removed.
pub const TENANT_HEADER: &str = "x-medgate-tenant-id";

/// The state of a request on a route, kept in the request context across phases.
#[derive(Debug)]
pub struct RouteCall {
    pub route: Arc<CompiledRoute>,
    /// The target of the current attempt.
    target: Option<usize>,
    /// Targets tried so far (a retry goes elsewhere).
    tried: Vec<usize>,
    retries_left: u8,
    idempotent: bool,
    /// The client address, for consistent hashing.
    hash_key: Vec<u8>,
    /// The route checked a medgate API key: keep it from the target.
    strip_credentials: bool,
    tenant_id: Option<String>,
    /// Permits of the route's circuit breakers, settled when the request is logged.
    pub breaker_permits: Option<Permits>,
}

/// Runs the route's plugins for a request some route takes. None when no route takes it;
/// `Some(false)` to proxy it natively; `Some(true)` when it was refused (answer written).
pub async fn admit(gw: &Gateway, session: &mut Session, ctx: &mut RequestCtx) -> Option<bool> {
    let catalog = gw.shared.catalog()?;
    let header = session.req_header();
    let host = super::request_host(header);
    let facts = RequestFacts {
        host: &host,
        method: header.method.as_str(),
        path: header.uri.path(),
        header,
    };
    let route = catalog.routing.find(&facts)?.clone();
    ctx.route = "route";
    if let Some(location) = https_redirect(gw, session, &route, &host) {
        ctx.status = 308;
        write_redirect(session, &ctx.request_id, &location).await;
        return Some(true);
    }
    let header = session.req_header();
    let authorized = authorize(&catalog, &route, header, &host);
    let idempotent = header.method.is_idempotent();
    let authorized = match authorized {
        Ok((tenant_id, key_id)) => protect(gw, &route, tenant_id.as_deref(), key_id.as_deref())
            .await
            .map(|permits| (tenant_id, key_id, permits)),
        Err(e) => Err(e),
    };
    match authorized {
        Ok((tenant_id, key_id, permits)) => {
            if route.entry.retries > 0 && idempotent {
                // Lets Pingora replay a small body on another target (up to 64 KiB).
                session.enable_retry_buffering();
            }
            ctx.tenant_id = tenant_id.clone();
            let hash_key = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip().to_string().into_bytes())
                .unwrap_or_default();
            ctx.route_call = Some(RouteCall {
                retries_left: route.entry.retries,
                route,
                target: None,
                tried: Vec::new(),
                idempotent,
                hash_key,
                strip_credentials: key_id.is_some(),
                tenant_id,
                breaker_permits: Some(permits),
            });
            Some(false)
        }
        Err(error) => {
            gw.metrics.errors.with_label_values(&[error.code]).inc();
            ctx.status = error.status;
            write_error(session, &ctx.request_id, &error).await;
            Some(true)
        }
    }
}

/// The HTTPS URL of a plain-HTTP request on a route that redirects, when the proxy has an
/// HTTPS listener to send it to.
fn https_redirect(
    gw: &Gateway,
    session: &Session,
    route: &CompiledRoute,
    host: &str,
) -> Option<String> {
    if !route.entry.https_redirect || crate::tls::is_tls(session) {
        return None;
    }
    let port = gw.https_port?;
    let target = session
        .req_header()
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str());
    crate::tls::https_location(host, target, port)
}

/// `308 Permanent Redirect`: the client repeats the same method and body at `location`.
async fn write_redirect(session: &mut Session, request_id: &str, location: &str) {
    let Ok(mut head) = ResponseHeader::build(308, Some(3)) else {
        return;
    };
    let _ = head.insert_header("location", location);
    let _ = head.insert_header("content-length", "0");
    let _ = head.insert_header("x-request-id", request_id);
    if !session.is_body_done() {
        // The body is left unread: the connection cannot carry another request.
        session.set_keepalive(None);
    }
    let _ = session.write_response_header(Box::new(head), true).await;
}

/// The route's rate limits and circuit breakers. Requests without a tenant count as one
/// anonymous tenant (`""`), so they cannot create limiter state of their own.
async fn protect(
    gw: &Gateway,
    route: &CompiledRoute,
    tenant_id: Option<&str>,
    key_id: Option<&str>,
) -> Result<Permits, GatewayError> {
    let protection = &gw.shared.protection;
    let view = protection.view();
    let tenant_id = tenant_id.unwrap_or("");
    let request = LimitRequest {
        tenant_id,
        api_key_id: key_id,
        model: None,
        route_id: Some(&route.entry.id),
    };
    if !view.limits.is_empty() {
        // A route has no token usage to reconcile: the admission needs no settling.
        protection
            .limiter
            .admit(&view.limits, &request, 0)
            .await
            .map_err(|r| {
                protection.count_rate_limited();
                protect::limit_refused(r)
            })?;
    }
    protection
        .breakers
        .acquire(&CallTarget {
            tenant_id,
            model: None,
            upstream: None,
            route: Some(&route.entry.id),
        })
        .map_err(|r| {
            GatewayError::new(
                503,
                "api_error",
                "route_unavailable",
                "the route's circuit breaker is open; retry later",
            )
            .with_header(
                "retry-after",
                r.retry_after.as_secs_f64().ceil().max(1.0).to_string(),
            )
            .with_header("x-medgate-circuit", "open")
        })
}

/// The tenant of the request (from the route's owner, the custom domain and the API key,
/// which must all agree) and the id of the API key checked, if any.
fn authorize(
    catalog: &Catalog,
    route: &CompiledRoute,
    header: &RequestHeader,
    host: &str,
) -> Result<(Option<String>, Option<String>), GatewayError> {
    let domain_tenant = catalog.routing.tenant_of_host(host);
    let owner = route.entry.tenant_id.as_deref();
    if let (Some(o), Some(d)) = (owner, domain_tenant) {
        if o != d {
            return Err(tenant_mismatch());
        }
    }
    let mut tenant = owner.or(domain_tenant).map(str::to_owned);
    let mut used_key = None;
    if route.api_key_auth {
        let key = auth::authenticate(catalog, presented_key(header)).map_err(key_refused)?;
        if tenant.as_deref().is_some_and(|t| t != key.entry.tenant_id) {
            return Err(tenant_mismatch());
        }
        tenant = Some(key.entry.tenant_id.clone());
        used_key = Some(key.entry.id.clone());
    }
    // A tenant's route stops with its tenant, whatever plugins it lists.
    if route.api_key_auth || route.tenant_status || owner.is_some() {
        let view = RequestView {
            tenant_id: tenant.clone(),
            method: header.method.to_string(),
            path: header.uri.path().to_owned(),
        };
        if let Decision::Reject(r) = TenantStatusGate.on_request(&view, &catalog.snapshot) {
            return Err(GatewayError::new(r.status, r.kind, r.code, r.message));
        }
    }
    Ok((tenant, used_key))
}

/// The medgate API key a request presents, if any.
pub fn presented_key(header: &RequestHeader) -> Option<&str> {
    let headers = &header.headers;
    auth::presented_key(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        headers
            .get("x-api-key")
            .or_else(|| headers.get("api-key"))
            .and_then(|v| v.to_str().ok()),
    )
}

/// The 401 for a refused key.
pub fn key_refused(r: KeyRefusal) -> GatewayError {
    match r {
        KeyRefusal::Missing => GatewayError::unauthorized(r.message()).with_param("authorization"),
        _ => GatewayError::unauthorized(r.message()),
    }
}

/// The 403 for a key of another tenant than the domain's or the route's.
pub fn tenant_mismatch() -> GatewayError {
    GatewayError::new(
        403,
        "permission_error",
        "tenant_mismatch",
        "this API key belongs to another tenant than this domain or route",
    )
}

impl RouteCall {
    /// A healthy target not tried yet; 503 when there is none.
    pub fn peer(&mut self) -> Result<Box<HttpPeer>> {
        let balancer = &self.route.balancer;
        let Some(i) = balancer.pick(&self.hash_key, &self.tried) else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no healthy target for this route",
            ));
        };
        self.target = Some(i);
        self.tried.push(i);
        Ok(Box::new(balancer.targets[i].peer.clone()))
    }

    /// The current target's label, for logs.
    pub fn target_label(&self) -> Option<&str> {
        self.target
            .map(|i| self.route.balancer.targets[i].label.as_str())
    }

    /// Path (prefix stripped, target base path put before), `Host`, credentials and the
    /// tenant header of the upstream request.
    pub fn rewrite(&self, upstream: &mut RequestHeader) -> Result<()> {
        let Some(target) = self.target.map(|i| &self.route.balancer.targets[i]) else {
            return Ok(());
        };
        let path = upstream.uri.path();
        let rest = if self.route.entry.strip_prefix {
            path.strip_prefix(self.route.entry.matcher.path_prefix.as_str())
                .unwrap_or(path)
        } else {
            path
        };
        let slash = if rest.starts_with('/') { "" } else { "/" };
        let mut new = format!("{}{slash}{rest}", target.base_path);
        if let Some(q) = upstream.uri.query() {
            new.push('?');
            new.push_str(q);
        }
        upstream.set_raw_path(new.as_bytes())?;
        upstream.insert_header("host", &target.host)?;
        if self.strip_credentials {
            for name in KEY_HEADERS {
                upstream.remove_header(*name);
            }
        }
        upstream.remove_header(TENANT_HEADER);
        if let Some(t) = &self.tenant_id {
            upstream.insert_header(TENANT_HEADER, t)?;
        }
        Ok(())
    }

    /// Whether a failed attempt may go to another target: idempotent methods only, within
    /// the route's retries, with the body still replayable and nothing sent to the client.
    pub fn retry(&mut self, session: &Session) -> bool {
        let ok = self.retries_left > 0
            && self.idempotent
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none();
        if ok {
            self.retries_left -= 1;
        }
        ok
    }
}
