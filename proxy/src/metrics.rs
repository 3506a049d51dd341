//! Prometheus metrics of the data plane (served at `/metrics`). Labels carry tenant and model,
//! never keys, prompts or paths with ids.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The proxy's metrics, in a registry of their own (several proxies can share a process).
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub ttft: HistogramVec,
    pub tokens: IntCounterVec,
    pub errors: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub snapshot_version: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "medgate_proxy_requests_total",
                "Requests handled, by route and status class",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "medgate_proxy_request_duration_seconds",
                "Time from request to last byte",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let ttft = HistogramVec::new(
            HistogramOpts::new(
                "medgate_proxy_upstream_ttft_seconds",
                "Upstream time to first token",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]),
            &["model"],
        )
        .expect("valid metric");
        let tokens = IntCounterVec::new(
            Opts::new(
                "medgate_proxy_tokens_total",
                "Tokens metered, by tenant, model and direction",
            ),
            &["tenant", "model", "direction"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "medgate_proxy_errors_total",
                "Requests refused or failed, by error code",
            ),
            &["code"],
        )
        .expect("valid metric");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "medgate_proxy_rate_limited_total",
                "Requests refused by rate limits or bulkheads, by tenant",
            ),
            &["tenant"],
        )
        .expect("valid metric");
        let snapshot_version = IntGauge::new(
            "medgate_proxy_snapshot_version",
            "Version of the snapshot in force",
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(ttft.clone()),
            Box::new(tokens.clone()),
            Box::new(errors.clone()),
            Box::new(rate_limited.clone()),
            Box::new(snapshot_version.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        Self {
            registry,
            requests,
            duration,
            ttft,
            tokens,
            errors,
            rate_limited,
            snapshot_version,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
