//! Filtered reads of the audit log.

use serde::Deserialize;

use super::chain::{from_row, AuditEntry, COLUMNS};
use crate::api::parse_time;
use crate::error::ApiResult;
use crate::store::Store;

/// Filters of audit queries and exports.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Entries recorded at or after this RFC 3339 time.
    pub from: Option<String>,
    /// Entries recorded before this RFC 3339 time.
    pub to: Option<String>,
    pub actor: Option<String>,
    /// Exact operation id, e.g. `tenants.suspend`.
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// Platform-wide callers may narrow to one tenant.
    pub tenant_id: Option<String>,
}

impl AuditFilter {
    fn where_clause(&self) -> ApiResult<(String, Vec<String>)> {
        let mut clauses = vec!["1 = 1".to_owned()];
        let mut binds = Vec::new();
        let mut push = |column: &str, op: &str, value: &str| {
            binds.push(value.to_owned());
            clauses.push(format!("{column} {op} ${}", binds.len()));
        };
        if let Some(from) = &self.from {
            push("recorded_at", ">=", &parse_time("from", from)?);
        }
        if let Some(to) = &self.to {
            push("recorded_at", "<", &parse_time("to", to)?);
        }
        for (column, value) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
            ("outcome", &self.outcome),
            ("tenant_id", &self.tenant_id),
        ] {
            if let Some(v) = value {
                push(column, "=", v);
            }
        }
        Ok((clauses.join(" AND "), binds))
    }
}

/// One page (newest first) and the total.
pub async fn page(
    store: &Store,
    filter: &AuditFilter,
    page: u32,
    size: u32,
) -> ApiResult<(Vec<AuditEntry>, u64)> {
    let (where_sql, binds) = filter.where_clause()?;
    let count_sql = format!("SELECT COUNT(*) FROM audit_log WHERE {where_sql}");
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
    for b in &binds {
        count = count.bind(b);
    }
    let total = count.fetch_one(store.reader()).await?;
    let offset = i64::from(page - 1) * i64::from(size);
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE {where_sql} ORDER BY seq DESC LIMIT {size} OFFSET {offset}");
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b);
    }
    let rows = query.fetch_all(store.reader()).await?;
    let entries = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok((entries, u64::try_from(total).unwrap_or_default()))
}

/// Every matching entry in chain order, up to `limit`.
pub async fn all(store: &Store, filter: &AuditFilter, limit: u32) -> ApiResult<Vec<AuditEntry>> {
    let (where_sql, binds) = filter.where_clause()?;
    let sql =
        format!("SELECT {COLUMNS} FROM audit_log WHERE {where_sql} ORDER BY seq LIMIT {limit}");
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b);
    }
    let rows = query.fetch_all(store.reader()).await?;
    Ok(rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?)
}
