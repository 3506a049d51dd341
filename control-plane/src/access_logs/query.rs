//! Access-log lists: filtered, newest first.

use medgate_config::AccessLogEntry;
use serde::Deserialize;

use super::ingest::{from_row, COLUMNS};
use crate::api::parse_time;
use crate::error::ApiResult;
use crate::store::filter::{Bind, Where};
use crate::store::Store;
use crate::validate;

/// Query of the access-log endpoints.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// Requests that arrived at or after this RFC 3339 time.
    pub from: Option<String>,
    /// Requests that arrived before this RFC 3339 time.
    pub to: Option<String>,
    /// HTTP status returned to the client.
    pub status: Option<u16>,
    /// HTTP method (case-insensitive).
    pub method: Option<String>,
    /// `inference`, `management`, `metrics`, `health`, `unknown`, or a route id.
    pub route: Option<String>,
    /// Platform-wide callers may narrow to one tenant.
    pub tenant_id: Option<String>,
}

impl AccessLogQuery {
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
        // Values that no stored entry can hold are refused, which also keeps bytes such as NUL
        // (which PostgreSQL text cannot hold) away from the store.
        if let Some(t) = &self.tenant_id {
            validate::plain_id("tenant_id", t, 128)?;
        }
        if let Some(r) = &self.route {
            validate::plain_id("route", r, 128)?;
        }
        if let Some(m) = &self.method {
            validate::plain_id("method", m, 32)?;
        }
        w.eq_text("tenant_id", self.tenant_id.as_deref())
            .eq_int("status", self.status.map(i64::from))
            .eq_text(
                "method",
                self.method
                    .as_ref()
                    .map(|m| m.to_ascii_uppercase())
                    .as_deref(),
            )
            .eq_text("route", self.route.as_deref());
        Ok(w)
    }
}

/// One page (newest first) and the total.
pub async fn page(
    store: &Store,
    q: &AccessLogQuery,
    page: u32,
    size: u32,
) -> ApiResult<(Vec<AccessLogEntry>, u64)> {
    let filter = q.filter()?;
    let where_sql = filter.sql();
    let count_sql = format!("SELECT COUNT(*) FROM access_logs WHERE {where_sql}");
    let total: i64 = filter
        .bind_scalar(sqlx::query_scalar(&count_sql))
        .fetch_one(store.reader())
        .await?;
    let offset = i64::from(page - 1) * i64::from(size);
    let sql = format!(
        "SELECT {COLUMNS} FROM access_logs WHERE {where_sql} \
         ORDER BY occurred_at DESC, request_id DESC LIMIT {size} OFFSET {offset}"
    );
    let rows = filter
        .bind(sqlx::query(&sql))
        .fetch_all(store.reader())
        .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok((items, u64::try_from(total).unwrap_or_default()))
}
