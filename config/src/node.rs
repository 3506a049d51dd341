//! What a data-plane node reports about itself: a heartbeat every few seconds (and right
//! after it applies a new snapshot) to `POST /api/internal/heartbeat`. The control plane
//! keeps the latest one per instance for `GET /api/gateway/status` and `POST
//! /api/gateway/reload`.

use serde::{Deserialize, Serialize};

/// How often a proxy reports when nothing changed.
pub const HEARTBEAT_INTERVAL_SECS: u64 = 5;
/// An instance silent for this long is shown as stale.
pub const STALE_AFTER_SECS: u64 = 30;

/// One heartbeat of one proxy instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// UUIDv7 chosen when the proxy started; a restart is a new instance.
    pub instance_id: String,
    /// The address the proxy listens on.
    pub address: String,
    /// Version of the snapshot in force; None before the first one.
    pub snapshot_version: Option<u64>,
    /// RFC 3339 UTC time the proxy started.
    pub started_at: String,
    /// Requests handled since the start.
    pub requests_total: u64,
    /// Requests per second over the interval since the previous heartbeat.
    pub requests_per_sec: f64,
    /// Live state of every breaker that has seen traffic (one entry per state key).
    #[serde(default)]
    pub breakers: Vec<BreakerReport>,
    /// Each upstream service the proxy sent traffic to, over the last interval.
    #[serde(default)]
    pub services: Vec<ServiceReport>,
    /// Requests refused by rate limits since the start.
    #[serde(default)]
    pub rate_limited_total: u64,
}

/// State of a circuit breaker: `closed`, `open` or `half_open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// One breaker's live state in one proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerReport {
    /// The rule id.
    pub breaker_id: String,
    /// The tenant of a per-tenant breaker state; None for a shared one.
    pub tenant_id: Option<String>,
    pub state: BreakerState,
    /// RFC 3339 time of the last transition.
    pub since: String,
    /// RFC 3339 time an open breaker lets probes through.
    pub next_retry_at: Option<String>,
    /// Closed -> open transitions since the proxy started.
    pub times_opened: u64,
    /// Calls and failures in the current statistics window.
    pub window_calls: u64,
    pub window_failures: u64,
}

/// Traffic to one upstream service (`model:<name>` or `upstream:<url>`) in one proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceReport {
    pub service: String,
    /// Calls and failures (as breakers classify them) since the previous heartbeat.
    pub calls: u64,
    pub failures: u64,
    /// Mean and worst latency of those calls, milliseconds.
    pub mean_latency_ms: f64,
    pub max_latency_ms: u64,
    /// Result of the active health check, when the service has one.
    pub healthy: Option<bool>,
    /// Worst state of the breakers in front of the service.
    pub breaker_state: BreakerState,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HeartbeatAck {
    /// The control plane's current snapshot version, for the node's logs.
    pub snapshot_version: u64,
}
