//! Inference history (API §3.4): the stored usage events, filtered, newest first.

use serde::{Deserialize, Serialize};

use super::ingest::{from_row, COLUMNS};
use crate::api::parse_time;
use crate::error::ApiResult;
use crate::store::filter::{Bind, Where};
use crate::store::Store;

/// Query of the history endpoints.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// Requests that arrived at or after this RFC 3339 time.
    pub from: Option<String>,
    /// Requests that arrived before this RFC 3339 time.
    pub to: Option<String>,
    /// Model name, model id, or the name the client asked for.
    pub model: Option<String>,
    /// HTTP status returned to the client.
    pub status: Option<u16>,
    pub api_key_id: Option<String>,
    /// Platform-wide callers may narrow to one tenant.
    pub tenant_id: Option<String>,
}

/// One inference request as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct InferenceRecord {
    pub request_id: String,
    /// When the request arrived (RFC 3339 UTC).
    pub occurred_at: String,
    pub tenant_id: String,
    pub key_prefix: Option<String>,
    /// The model name or alias the client sent.
    pub requested_model: String,
    /// The model that served it (differs when degraded to a fallback).
    pub model_name: String,
    /// `chat`, `completions` or `embeddings`.
    pub endpoint: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    /// HTTP status returned to the client (499 when the client went away).
    pub status: u16,
    pub latency_ms: u64,
    /// Time to first token.
    pub ttft_ms: Option<u64>,
    pub streamed: bool,
}

impl HistoryQuery {
    fn filter(&self) -> ApiResult<Where> {
        let mut w = Where::new();
        if let Some(from) = &self.from {
            w.push(
                "occurred_at >= ?",
                vec![Bind::Text(parse_time("from", from)?)],
            );
        }
        if let Some(to) = &self.to {
            w.push("occurred_at < ?", vec![Bind::Text(parse_time("to", to)?)]);
        }
        w.eq_text("tenant_id", self.tenant_id.as_deref())
            .eq_text("api_key_id", self.api_key_id.as_deref())
            .eq_int("status", self.status.map(i64::from));
        if let Some(m) = &self.model {
            w.push(
                "(model_name = ? OR model_id = ? OR requested_model = ?)",
                vec![
                    Bind::Text(m.clone()),
                    Bind::Text(m.clone()),
                    Bind::Text(m.clone()),
                ],
            );
        }
        Ok(w)
    }
}

/// One page (newest first) and the total.
pub async fn page(
    store: &Store,
    q: &HistoryQuery,
    page: u32,
    size: u32,
) -> ApiResult<(Vec<InferenceRecord>, u64)> {
    let filter = q.filter()?;
    let where_sql = filter.sql();
    let count_sql = format!("SELECT COUNT(*) FROM usage_events WHERE {where_sql}");
    let total: i64 = filter
        .bind_scalar(sqlx::query_scalar(&count_sql))
        .fetch_one(store.reader())
        .await?;
    let offset = i64::from(page - 1) * i64::from(size);
    let sql = format!(
        "SELECT {COLUMNS} FROM usage_events WHERE {where_sql} \
         ORDER BY occurred_at DESC, request_id DESC LIMIT {size} OFFSET {offset}"
    );
    let rows = filter
        .bind(sqlx::query(&sql))
        .fetch_all(store.reader())
        .await?;
    let items = rows
        .iter()
        .map(|row| {
            from_row(row).map(|e| InferenceRecord {
                total_tokens: e.input_tokens.saturating_add(e.output_tokens),
                request_id: e.request_id,
                occurred_at: e.occurred_at,
                tenant_id: e.tenant_id,
                key_prefix: e.key_prefix,
                requested_model: e.requested_model,
                model_name: e.model_name,
                endpoint: e.endpoint,
                input_tokens: e.input_tokens,
                output_tokens: e.output_tokens,
                status: e.status,
                latency_ms: e.latency_ms,
                ttft_ms: e.ttft_ms,
                streamed: e.streamed,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, u64::try_from(total).unwrap_or_default()))
}
