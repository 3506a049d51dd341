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
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HeartbeatAck {
    /// The control plane's current snapshot version, for the node's logs.
    pub snapshot_version: u64,
}
