//! Generic resource rows: one table for configuration-like resources, with the columns that
//! filters, uniqueness and references need, and the typed body as JSON.
//!
//! Each resource type declares how it maps onto these columns (see `crate::resource`).
//! Money, usage and audit have their own tables; they are ledgers, not documents.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::Tx;

/// One stored resource.
#[derive(Debug, Clone)]
pub struct ResourceRow {
    pub kind: String,
    pub id: String,
    pub tenant_id: Option<String>,
    pub unique_key: Option<String>,
    pub status: Option<String>,
    pub name: Option<String>,
    pub ref_id: Option<String>,
    pub body: String,
    pub revision: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// Filters of a resource list; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct ResourceFilter {
    /// Restricts to one tenant (tenant-scoped callers always set it).
    pub tenant_id: Option<String>,
    pub status: Option<String>,
    pub ref_id: Option<String>,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
}

const COLUMNS: &str =
    "kind, id, tenant_id, unique_key, status, name, ref_id, body, revision, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<ResourceRow, sqlx::Error> {
    Ok(ResourceRow {
        kind: row.try_get("kind")?,
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        unique_key: row.try_get("unique_key")?,
        status: row.try_get("status")?,
        name: row.try_get("name")?,
        ref_id: row.try_get("ref_id")?,
        body: row.try_get("body")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn insert(tx: &mut Tx, row: &ResourceRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO resources ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&row.kind)
    .bind(&row.id)
    .bind(&row.tenant_id)
    .bind(&row.unique_key)
    .bind(&row.status)
    .bind(&row.name)
    .bind(&row.ref_id)
    .bind(&row.body)
    .bind(row.revision)
    .bind(&row.created_at)
    .bind(&row.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces a row if it is still at `expected_revision`; false when someone else won.
pub async fn update(
    tx: &mut Tx,
    row: &ResourceRow,
    expected_revision: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE resources SET tenant_id = $1, unique_key = $2, status = $3, name = $4, ref_id = $5, \
         body = $6, revision = $7, updated_at = $8 WHERE kind = $9 AND id = $10 AND revision = $11",
    )
    .bind(&row.tenant_id)
    .bind(&row.unique_key)
    .bind(&row.status)
    .bind(&row.name)
    .bind(&row.ref_id)
    .bind(&row.body)
    .bind(row.revision)
    .bind(&row.updated_at)
    .bind(&row.kind)
    .bind(&row.id)
    .bind(expected_revision)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete(
    tx: &mut Tx,
    kind: &str,
    id: &str,
    expected_revision: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM resources WHERE kind = $1 AND id = $2 AND revision = $3")
        .bind(kind)
        .bind(id)
        .bind(expected_revision)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get(
    conn: &mut AnyConnection,
    kind: &str,
    id: &str,
) -> Result<Option<ResourceRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM resources WHERE kind = $1 AND id = $2"
    ))
    .bind(kind)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn get_by_unique_key(
    conn: &mut AnyConnection,
    kind: &str,
    key: &str,
) -> Result<Option<ResourceRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM resources WHERE kind = $1 AND unique_key = $2"
    ))
    .bind(kind)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Counts rows of `kind` referencing `ref_id` (for "in use" checks).
pub async fn count_refs(
    conn: &mut AnyConnection,
    kind: &str,
    ref_id: &str,
) -> Result<u64, sqlx::Error> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM resources WHERE kind = $1 AND ref_id = $2")
            .bind(kind)
            .bind(ref_id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// Rows of a kind owned by one tenant, optionally in one status, oldest first.
pub async fn by_tenant(
    conn: &mut AnyConnection,
    kind: &str,
    tenant_id: &str,
    status: Option<&str>,
) -> Result<Vec<ResourceRow>, sqlx::Error> {
    let rows = match status {
        Some(status) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM resources WHERE kind = $1 AND tenant_id = $2 AND status = $3 \
                 ORDER BY created_at, id"
            ))
            .bind(kind)
            .bind(tenant_id)
            .bind(status)
            .fetch_all(&mut *conn)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM resources WHERE kind = $1 AND tenant_id = $2 ORDER BY created_at, id"
            ))
            .bind(kind)
            .bind(tenant_id)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Rows of a kind with this name, optionally within one tenant (for name clashes that no
/// unique index can express, such as aliases).
pub async fn by_name(
    conn: &mut AnyConnection,
    kind: &str,
    name: &str,
    tenant_id: Option<&str>,
) -> Result<Vec<ResourceRow>, sqlx::Error> {
    let rows = match tenant_id {
        Some(tenant_id) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM resources WHERE kind = $1 AND tenant_id = $2 AND name = $3"
            ))
            .bind(kind)
            .bind(tenant_id)
            .bind(name)
            .fetch_all(&mut *conn)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM resources WHERE kind = $1 AND name = $2"
            ))
            .bind(kind)
            .bind(name)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Takes the write lock of one row for the rest of the transaction without changing it; false
/// when the row does not exist.
///
/// Checks that count or compare rows (a key quota, alias uniqueness within a tenant) lock
/// their owner first: on PostgreSQL a concurrent writer then waits here, and its next
/// statement sees what the first one committed; SQLite serializes write transactions anyway.
pub async fn lock(tx: &mut Tx, kind: &str, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE resources SET revision = revision WHERE kind = $1 AND id = $2")
        .bind(kind)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes the write locks of every row of `kind` owned by `tenant_id` (see [`lock`]).
pub async fn lock_by_tenant(tx: &mut Tx, kind: &str, tenant_id: &str) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query("UPDATE resources SET revision = revision WHERE kind = $1 AND tenant_id = $2")
            .bind(kind)
            .bind(tenant_id)
            .execute(&mut **tx)
            .await?;
    Ok(done.rows_affected())
}

/// Deletes every row of `kind` referencing `ref_id`; returns how many.
pub async fn delete_refs(tx: &mut Tx, kind: &str, ref_id: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM resources WHERE kind = $1 AND ref_id = $2")
        .bind(kind)
        .bind(ref_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes every row of `kind` owned by `tenant_id`; returns how many.
pub async fn delete_by_tenant(
    tx: &mut Tx,
    kind: &str,
    tenant_id: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM resources WHERE kind = $1 AND tenant_id = $2")
        .bind(kind)
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

/// All rows of a kind (for the snapshot compiler and small platform lists).
pub async fn all(conn: &mut AnyConnection, kind: &str) -> Result<Vec<ResourceRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM resources WHERE kind = $1 ORDER BY created_at, id"
    ))
    .bind(kind)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// One page of rows matching `filter`, plus the total count.
pub async fn list(
    conn: &mut AnyConnection,
    kind: &str,
    filter: &ResourceFilter,
    page: u32,
    page_size: u32,
) -> Result<(Vec<ResourceRow>, u64), sqlx::Error> {
    let mut clauses = vec!["kind = $1".to_owned()];
    let mut binds: Vec<String> = vec![kind.to_owned()];
    let mut push = |clause: &str, value: String| {
        binds.push(value);
        clauses.push(clause.replace('?', &format!("${}", binds.len())));
    };
    if let Some(t) = &filter.tenant_id {
        push("tenant_id = ?", t.clone());
    }
    if let Some(s) = &filter.status {
        push("status = ?", s.clone());
    }
    if let Some(r) = &filter.ref_id {
        push("ref_id = ?", r.clone());
    }
    if let Some(q) = &filter.name_contains {
        push(
            "LOWER(name) LIKE ? ESCAPE '\\'",
            format!("%{}%", escape_like(&q.to_lowercase())),
        );
    }
    if let Some(a) = &filter.created_after {
        push("created_at >= ?", a.clone());
    }
    if let Some(b) = &filter.created_before {
        push("created_at < ?", b.clone());
    }
    let where_sql = clauses.join(" AND ");

    let count_sql = format!("SELECT COUNT(*) FROM resources WHERE {where_sql}");
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
    for b in &binds {
        count = count.bind(b);
    }
    let total = count.fetch_one(&mut *conn).await?;

    let offset = i64::from(page.saturating_sub(1)) * i64::from(page_size);
    let list_sql = format!(
        "SELECT {COLUMNS} FROM resources WHERE {where_sql} ORDER BY created_at, id LIMIT {} OFFSET {}",
        page_size, offset
    );
    let mut query = sqlx::query(&list_sql);
    for b in &binds {
        query = query.bind(b);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok((rows, u64::try_from(total).unwrap_or_default()))
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
