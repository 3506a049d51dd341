//! Appending to and verifying the hash chain.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::store::{self, Store};

/// What the guard knows about one mutating call.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub actor: String,
    pub role: Option<String>,
    pub tenant_id: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub status_code: u16,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub details: Option<serde_json::Value>,
}

/// One stored audit entry.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// Position in the chain, starting at 1, without gaps.
    pub seq: i64,
    pub id: String,
    pub recorded_at: String,
    pub actor: String,
    pub role: Option<String>,
    pub tenant_id: Option<String>,
    /// The operation, e.g. `tenants.suspend`.
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    pub status_code: i64,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub details: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

pub(super) const COLUMNS: &str =
    "seq, id, recorded_at, actor, role, tenant_id, action, resource_type, \
    resource_id, outcome, status_code, request_id, source_ip, details, prev_hash, hash";

pub(super) fn from_row(row: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        recorded_at: row.try_get("recorded_at")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        tenant_id: row.try_get("tenant_id")?,
        action: row.try_get("action")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        outcome: row.try_get("outcome")?,
        status_code: row.try_get("status_code")?,
        request_id: row.try_get("request_id")?,
        source_ip: row.try_get("source_ip")?,
        details: row.try_get("details")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// The hash of an entry: SHA-256 over the previous hash and every recorded field, each
/// length-prefixed so no two different entries serialize to the same bytes.
fn entry_hash(e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    let mut field = |value: Option<&str>| match value {
        Some(v) => {
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
        None => h.update(u64::MAX.to_be_bytes()),
    };
    field(Some(&e.prev_hash));
    field(Some(&e.seq.to_string()));
    field(Some(&e.id));
    field(Some(&e.recorded_at));
    field(Some(&e.actor));
    field(e.role.as_deref());
    field(e.tenant_id.as_deref());
    field(Some(&e.action));
    field(e.resource_type.as_deref());
    field(e.resource_id.as_deref());
    field(Some(&e.outcome));
    field(Some(&e.status_code.to_string()));
    field(e.request_id.as_deref());
    field(e.source_ip.as_deref());
    field(e.details.as_deref());
    hex::encode(h.finalize())
}

/// Appends one entry. Taking the head row first serializes concurrent appends on both
/// backends (a row lock on PostgreSQL, the write lock on SQLite).
pub async fn append(store: &Store, new: NewEntry) -> Result<AuditEntry, sqlx::Error> {
    let mut tx = store.begin().await?;
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *tx)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    let mut entry = AuditEntry {
        seq,
        id: store::new_id("aud"),
        recorded_at: store::now(),
        actor: new.actor,
        role: new.role,
        tenant_id: new.tenant_id,
        action: new.action,
        resource_type: new.resource_type,
        resource_id: new.resource_id,
        outcome: new.outcome,
        status_code: i64::from(new.status_code),
        request_id: new.request_id,
        source_ip: new.source_ip,
        details: new.details.map(|d| d.to_string()),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry_hash(&entry);
    sqlx::query(&format!(
        "INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    ))
    .bind(entry.seq)
    .bind(&entry.id)
    .bind(&entry.recorded_at)
    .bind(&entry.actor)
    .bind(&entry.role)
    .bind(&entry.tenant_id)
    .bind(&entry.action)
    .bind(&entry.resource_type)
    .bind(&entry.resource_id)
    .bind(&entry.outcome)
    .bind(entry.status_code)
    .bind(&entry.request_id)
    .bind(&entry.source_ip)
    .bind(&entry.details)
    .bind(&entry.prev_hash)
    .bind(&entry.hash)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&entry.hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(entry)
}

/// The outcome of a chain verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries checked.
    pub checked: u64,
    /// The first broken position and why, if any.
    pub first_broken: Option<(i64, String)>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Walks the whole chain in order. Detects edited rows (hash mismatch), deleted rows (a gap in
/// `seq` or a broken link), reordered rows (broken link) and a truncated tail (head mismatch).
pub async fn verify(store: &Store) -> Result<VerifyReport, sqlx::Error> {
    const BATCH: i64 = 1000;
    let mut checked = 0u64;
    let mut expected_seq = 1i64;
    let mut prev_hash = "0".repeat(64);
    loop {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT {BATCH}"
        ))
        .bind(expected_seq)
        .fetch_all(store.reader())
        .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let entry = from_row(row)?;
            let broken = if entry.seq != expected_seq {
                Some((
                    expected_seq,
                    format!(
                        "entry {expected_seq} is missing (next present is {})",
                        entry.seq
                    ),
                ))
            } else if entry.prev_hash != prev_hash {
                Some((
                    entry.seq,
                    "link to the previous entry is broken (deleted or reordered)".to_owned(),
                ))
            } else if entry_hash(&entry) != entry.hash {
                Some((
                    entry.seq,
                    "content does not match its hash (edited)".to_owned(),
                ))
            } else {
                None
            };
            if let Some(broken) = broken {
                return Ok(VerifyReport {
                    checked,
                    first_broken: Some(broken),
                });
            }
            checked += 1;
            prev_hash = entry.hash;
            expected_seq += 1;
        }
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(store.reader())
        .await?;
    let head_seq: i64 = head.try_get("seq")?;
    let head_hash: String = head.try_get("hash")?;
    if head_seq != expected_seq - 1 || head_hash != prev_hash {
        return Ok(VerifyReport {
            checked,
            first_broken: Some((
                expected_seq,
                format!(
                    "the chain ends at {} but its head says {head_seq} (truncated)",
                    expected_seq - 1
                ),
            )),
        });
    }
    Ok(VerifyReport {
        checked,
        first_broken: None,
    })
}
