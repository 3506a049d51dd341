//! Prometheus metrics of the control plane, served without auth at `GET /metrics` on the API
//! listener (like the proxy's own `/metrics`): calls by operation id and status class, call
//! latency, the snapshot version, and what the data plane reported.
//!
//! Labels are operation ids (a fixed set declared in code), never paths, tenants or ids, so
//! the number of series stays bounded.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::api::{ApiBuilder, Endpoint};
use crate::auth::Access;
use crate::state::AppState;

/// `GET /metrics`: public, like the proxy's, so a Prometheus scraper needs no token. It shows
/// counts and latencies per operation, never tenants, ids or anything from a request.
pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/metrics",
            "metrics.get",
            "Prometheus metrics of the control plane (text exposition format)",
        )
        .access(Access::Public)
        .produces("text/plain"),
        metrics,
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = state.metrics();
    match state.store().config_version().await {
        Ok(v) => metrics
            .snapshot_version
            .set(i64::try_from(v).unwrap_or(i64::MAX)),
        Err(e) => tracing::warn!(error = %e, "snapshot version unavailable for /metrics"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

/// The control plane's metrics, in a registry of their own (tests run several control planes
/// in one process).
pub struct ApiMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    pub snapshot_version: IntGauge,
    pub usage_events: IntCounterVec,
    pub access_log_entries: IntCounter,
    pub heartbeats: IntCounter,
}

impl ApiMetrics {
    pub fn new() -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "medgate_api_requests_total",
                "Management API calls, by operation id and status class",
            ),
            &["operation", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "medgate_api_request_duration_seconds",
                "Management API call latency, including authentication and audit",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["operation"],
        )
        .expect("valid metric");
        let snapshot_version = IntGauge::new(
            "medgate_api_snapshot_version",
            "Current version of the data-plane snapshot",
        )
        .expect("valid metric");
        let usage_events = IntCounterVec::new(
            Opts::new(
                "medgate_api_usage_events_ingested_total",
                "Usage events received from the data plane: inserted, or duplicate (replays)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let access_log_entries = IntCounter::new(
            "medgate_api_access_log_entries_ingested_total",
            "Access-log entries stored (replays not counted)",
        )
        .expect("valid metric");
        let heartbeats = IntCounter::new(
            "medgate_api_proxy_heartbeats_total",
            "Heartbeats received from proxy instances",
        )
        .expect("valid metric");
        let registry = Registry::new();
        let collectors: [Box<dyn Collector>; 6] = [
            Box::new(requests.clone()),
            Box::new(duration.clone()),
            Box::new(snapshot_version.clone()),
            Box::new(usage_events.clone()),
            Box::new(access_log_entries.clone()),
            Box::new(heartbeats.clone()),
        ];
        for c in collectors {
            registry.register(c).expect("unique metric");
        }
        Self {
            registry,
            requests,
            duration,
            snapshot_version,
            usage_events,
            access_log_entries,
            heartbeats,
        }
    }

    /// Counts one call of a declared endpoint.
    pub fn observe(&self, operation: &str, status: StatusCode, elapsed: Duration) {
        let class = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests.with_label_values(&[operation, class]).inc();
        self.duration
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_operation_and_status_class() {
        let m = ApiMetrics::new();
        m.observe("tenants.list", StatusCode::OK, Duration::from_millis(3));
        m.observe(
            "tenants.list",
            StatusCode::NOT_FOUND,
            Duration::from_millis(1),
        );
        let text = String::from_utf8(m.render()).expect("utf-8");
        assert!(text
            .contains("medgate_api_requests_total{operation=\"tenants.list\",status=\"2xx\"} 1"));
        assert!(text
            .contains("medgate_api_requests_total{operation=\"tenants.list\",status=\"4xx\"} 1"));
        assert!(text.contains("medgate_api_request_duration_seconds_bucket"));
    }
}
