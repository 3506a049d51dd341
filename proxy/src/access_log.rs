//! Access logging: one entry per request (inference, generic routes, management passthrough,
//! local endpoints, refusals), built in `logging` from what the request context already holds.
//! Successes are sampled by the snapshot's `gateway.access_log_sample_rate`; 4xx and 5xx are
//! always logged. Entries carry no body, key or query string (the path is cut at `?`).

use medgate_config::AccessLogEntry;
use pingora::proxy::Session;
use rand::Rng;

use crate::gateway::{Gateway, RequestCtx};

/// Queues the access-log entry of a finished request, unless sampled out.
pub fn record(gw: &Gateway, session: &Session, ctx: &RequestCtx) {
    // No status means the client went away before any response.
    let status = if ctx.status == 0 { 499 } else { ctx.status };
    let rate = gw
        .shared
        .catalog()
        .map_or(1.0, |c| c.snapshot.gateway.access_log_sample_rate);
    if !sampled(status, rate, || rand::rng().random::<f64>()) {
        return;
    }
    let req = session.req_header();
    let host = req
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.host())
        .unwrap_or_default();
    gw.access_log.send(AccessLogEntry {
        request_id: ctx.request_id.clone(),
        occurred_at: ctx.arrived_at.clone(),
        method: req.method.as_str().to_owned(),
        host: AccessLogEntry::loggable_host(host),
        path: AccessLogEntry::loggable_path(req.uri.path()),
        status,
        latency_ms: ctx.started.map_or(0, |s| s.elapsed().as_millis() as u64),
        tenant_id: ctx.tenant_id.clone(),
        // A configured route is logged by its id, so its traffic can be filtered on.
        route: ctx
            .route_call
            .as_ref()
            .map_or_else(|| ctx.route.to_owned(), |c| c.route.entry.id.clone()),
        upstream: ctx.upstream.clone(),
        bytes_sent: session.body_bytes_sent() as u64,
        instance_id: gw.instance.id.clone(),
    });
}

/// Errors always; successes with probability `rate` (`roll` draws from `0..1`).
fn sampled(status: u16, rate: f64, roll: impl FnOnce() -> f64) -> bool {
    status >= 400 || rate >= 1.0 || (rate > 0.0 && roll() < rate)
}

#[cfg(test)]
mod tests {
    use super::sampled;

    #[test]
    fn errors_are_always_logged_and_successes_sampled() {
        assert!(sampled(500, 0.0, || 0.99));
        assert!(sampled(404, 0.0, || 0.99));
        assert!(sampled(499, 0.0, || 0.99));
        assert!(!sampled(200, 0.0, || 0.0));
        assert!(sampled(200, 1.0, || 0.99));
        assert!(sampled(200, 0.5, || 0.49));
        assert!(!sampled(200, 0.5, || 0.5));
    }
}
