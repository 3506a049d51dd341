//! Inference history (API §3.4): the stored usage events, filtered, newest first.

use serde::{Deserialize, Serialize};

use super::ingest::{from_row, COLUMNS};
use crate::api::parse_time;
use crate::error::ApiResult;
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

enum Bind {
    Text(String),
    Int(i64),
}

impl HistoryQuery {
    fn where_clause(&self) -> ApiResult<(String, Vec<Bind>)> {
        let mut clauses = vec!["1 = 1".to_owned()];
        let mut binds = Vec::new();
        let mut push = |template: &str, values: Vec<Bind>| {
            let mut clause = template.to_owned();
            for v in values {
                binds.push(v);
                clause = clause.replacen('?', &format!("${}", binds.len()), 1);
            }
            clauses.push(clause);
        };
        if let Some(from) = &self.from {
            push(
                "occurred_at >= ?",
                vec![Bind::Text(parse_time("from", from)?)],
            );
        }
        if let Some(to) = &self.to {
            push("occurred_at < ?", vec![Bind::Text(parse_time("to", to)?)]);
        }
        if let Some(t) = &self.tenant_id {
            push("tenant_id = ?", vec![Bind::Text(t.clone())]);
        }
        if let Some(k) = &self.api_key_id {
            push("api_key_id = ?", vec![Bind::Text(k.clone())]);
        }
        if let Some(s) = self.status {
            push("status = ?", vec![Bind::Int(i64::from(s))]);
        }
        if let Some(m) = &self.model {
            push(
                "(model_name = ? OR model_id = ? OR requested_model = ?)",
                vec![
                    Bind::Text(m.clone()),
                    Bind::Text(m.clone()),
                    Bind::Text(m.clone()),
                ],
            );
        }
        Ok((clauses.join(" AND "), binds))
    }
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &[Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        query = match b {
            Bind::Text(t) => query.bind(t.clone()),
            Bind::Int(i) => query.bind(*i),
        };
    }
    query
}

/// One page (newest first) and the total.
pub async fn page(
    store: &Store,
    q: &HistoryQuery,
    page: u32,
    size: u32,
) -> ApiResult<(Vec<InferenceRecord>, u64)> {
    let (where_sql, binds) = q.where_clause()?;
    let count_sql = format!("SELECT COUNT(*) AS n FROM usage_events WHERE {where_sql}");
    let count = bind_all(sqlx::query(&count_sql), &binds)
        .fetch_one(store.reader())
        .await?;
    let total: i64 = sqlx::Row::try_get(&count, "n")?;
    let offset = i64::from(page - 1) * i64::from(size);
    let sql = format!(
        "SELECT {COLUMNS} FROM usage_events WHERE {where_sql} \
         ORDER BY occurred_at DESC, request_id DESC LIMIT {size} OFFSET {offset}"
    );
    let rows = bind_all(sqlx::query(&sql), &binds)
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
