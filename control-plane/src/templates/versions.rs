//! Published template versions: append-only rows keyed by (template_id, version). Content is
//! stored as canonical JSON (object keys sorted, no whitespace, defaults omitted) with its
//! SHA-256, so a client can recompute the hash from the content it received and tell that a
//! version never changed.

use schemars::JsonSchema;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::model::Content;
use super::resource::TemplateStatus;
use crate::error::{ApiError, ApiResult};
use crate::store::Tx;

/// One published version as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TemplateVersion {
    pub template_id: String,
    pub version: i64,
    /// `active` or `retired`.
    pub status: String,
    /// Hex SHA-256 of the canonical JSON of `content`.
    pub content_sha256: String,
    pub published_at: String,
    pub content: Content,
}

/// A version without its content, for history lists.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VersionSummary {
    pub version: i64,
    pub status: String,
    pub content_sha256: String,
    pub published_at: String,
}

/// The canonical JSON of some content and its hex SHA-256.
pub fn canonical(content: &Content) -> ApiResult<(String, String)> {
    // Through `Value`, whose objects sort their keys: the hash then depends on the content
    // only, not on the order our structs declare fields in.
    let value = serde_json::to_value(content).map_err(ApiError::internal)?;
    let json = serde_json::to_string(&value).map_err(ApiError::internal)?;
    let sha = hex::encode(Sha256::digest(json.as_bytes()));
    Ok((json, sha))
}

/// The highest published version number, if any.
pub async fn latest(tx: &mut Tx, template_id: &str) -> ApiResult<Option<i64>> {
    let max: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM template_versions WHERE template_id = $1")
            .bind(template_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(max)
}

/// The highest version still `active`, if any: the one new records use by default.
pub async fn latest_active(
    conn: &mut sqlx::AnyConnection,
    template_id: &str,
) -> ApiResult<Option<i64>> {
    let max: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(version) FROM template_versions WHERE template_id = $1 AND status = $2",
    )
    .bind(template_id)
    .bind(TemplateStatus::Active.as_str())
    .fetch_one(conn)
    .await?;
    Ok(max)
}

/// Moves one version from status `from` to `to`; false when it is not in `from` (any more).
/// Only the status column changes: content and hash are never updated.
pub async fn set_status(
    tx: &mut Tx,
    template_id: &str,
    version: i64,
    from: TemplateStatus,
    to: TemplateStatus,
) -> ApiResult<bool> {
    let done = sqlx::query(
        "UPDATE template_versions SET status = $1 \
         WHERE template_id = $2 AND version = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(template_id)
    .bind(version)
    .bind(from.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Appends a version; a unique violation means another publish took the number.
pub async fn insert(tx: &mut Tx, v: &TemplateVersion) -> Result<(), sqlx::Error> {
    let (json, _) = canonical(&v.content).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    sqlx::query(
        "INSERT INTO template_versions (template_id, version, content, content_sha256, status, \
         published_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&v.template_id)
    .bind(v.version)
    .bind(json)
    .bind(&v.content_sha256)
    .bind(&v.status)
    .bind(&v.published_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One version with its content.
pub async fn get(
    conn: &mut sqlx::AnyConnection,
    template_id: &str,
    version: i64,
) -> ApiResult<Option<TemplateVersion>> {
    let row = sqlx::query(
        "SELECT content, content_sha256, status, published_at FROM template_versions \
         WHERE template_id = $1 AND version = $2",
    )
    .bind(template_id)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let content: String = row.try_get("content")?;
    let content = serde_json::from_str(&content).map_err(|e| {
        ApiError::internal(format!("stored template {template_id} v{version}: {e}"))
    })?;
    Ok(Some(TemplateVersion {
        template_id: template_id.to_owned(),
        version,
        status: row.try_get("status")?,
        content_sha256: row.try_get("content_sha256")?,
        published_at: row.try_get("published_at")?,
        content,
    }))
}

/// Every version of a template, oldest first.
pub async fn list(
    conn: &mut sqlx::AnyConnection,
    template_id: &str,
) -> ApiResult<Vec<VersionSummary>> {
    let rows = sqlx::query(
        "SELECT version, content_sha256, status, published_at FROM template_versions \
         WHERE template_id = $1 ORDER BY version",
    )
    .bind(template_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(VersionSummary {
                version: row.try_get("version")?,
                status: row.try_get("status")?,
                content_sha256: row.try_get("content_sha256")?,
                published_at: row.try_get("published_at")?,
            })
        })
        .collect()
}
