//! Usage events: one per inference request, sent by the data plane to the control plane
//! (DESIGN.md §3.2). Delivery is at-least-once; the control plane ingests idempotently by
//! `request_id`, so the effect is exactly once.

use serde::{Deserialize, Serialize};

/// What one inference request used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEvent {
    /// The gateway's request id; unique, the idempotency key of ingestion.
    pub request_id: String,
    pub tenant_id: String,
    pub api_key_id: Option<String>,
    /// Visible prefix of the key used (never the secret).
    pub key_prefix: Option<String>,
    /// The model the client asked for (name or alias).
    pub requested_model: String,
    /// The model actually used (differs when degraded to a fallback).
    pub model_id: String,
    pub model_name: String,
    /// `chat`, `completions` or `embeddings`.
    pub endpoint: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// HTTP status returned to the client (499 when the client went away).
    pub status: u16,
    pub latency_ms: u64,
    /// Time to first token (first body byte for non-streams).
    pub ttft_ms: Option<u64>,
    pub streamed: bool,
    /// Whether token counts came from the upstream's `usage` (true) or an estimate (false).
    pub usage_reported: bool,
    /// RFC 3339 UTC time the request arrived.
    pub occurred_at: String,
}

/// A batch as posted to `POST /api/internal/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    pub events: Vec<UsageEvent>,
}

/// The answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UsageAck {
    /// Events stored now.
    pub inserted: u64,
    /// Events already stored before (replays), ignored.
    pub duplicates: u64,
}
