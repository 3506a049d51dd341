//! Access-log entries: one per request the data plane handled (inference, management
//! passthrough, local endpoints, refusals), shipped in batches to
//! `POST /api/internal/access-logs`, like usage events (DESIGN.md §3.2: at-least-once,
//! ingested idempotently by request id).
//!
//! An entry never carries a body, a key, a token or a query string: the path is cut at `?`
//! by the data plane, and again by the control plane, whatever the sender did.

use serde::{Deserialize, Serialize};

/// Longest path stored; the data plane truncates longer ones.
pub const MAX_PATH_CHARS: usize = 2048;
/// Longest `Host` stored; the data plane truncates longer ones.
pub const MAX_HOST_CHARS: usize = 255;

/// What happened to one request, without its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogEntry {
    /// The gateway's request id (also sent to clients as `x-request-id`); unique.
    pub request_id: String,
    /// RFC 3339 UTC time the request arrived.
    pub occurred_at: String,
    pub method: String,
    /// The `Host` the client sent (empty when it sent none).
    pub host: String,
    /// The request path without its query string.
    pub path: String,
    /// HTTP status returned to the client (499 when the client went away first).
    pub status: u16,
    pub latency_ms: u64,
    /// The tenant, once the request was authenticated as one.
    pub tenant_id: Option<String>,
    /// Which route handled it: `inference`, `management`, `metrics`, `health`, `unknown`,
    /// or a configured route's id.
    pub route: String,
    /// The upstream's label (`scheme://host:port`), never a credential.
    pub upstream: Option<String>,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
    /// The proxy instance that served it.
    pub instance_id: String,
}

impl AccessLogEntry {
    /// The path as it may be logged: no query string, at most [`MAX_PATH_CHARS`].
    pub fn loggable_path(path: &str) -> String {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        truncate(path, MAX_PATH_CHARS)
    }

    /// The host as it may be logged: at most [`MAX_HOST_CHARS`].
    pub fn loggable_host(host: &str) -> String {
        truncate(host, MAX_HOST_CHARS)
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// A batch as posted to `POST /api/internal/access-logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogBatch {
    pub events: Vec<AccessLogEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_and_fragments_never_reach_the_log() {
        assert_eq!(
            AccessLogEntry::loggable_path("/v1/x?secret=abc&b=1"),
            "/v1/x"
        );
        assert_eq!(AccessLogEntry::loggable_path("/a#frag?x"), "/a");
        assert_eq!(AccessLogEntry::loggable_path("/plain"), "/plain");
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let long = format!("/{}", "é".repeat(MAX_PATH_CHARS + 10));
        let cut = AccessLogEntry::loggable_path(&long);
        assert_eq!(cut.chars().count(), MAX_PATH_CHARS);
        assert_eq!(AccessLogEntry::loggable_host("h"), "h");
    }
}
