//! A custom domain's TLS certificate (API §8): uploaded as PEM, served by the proxy's HTTPS
//! listener for the domain (by SNI) once the domain is verified.
//!
//! An upload must parse, its key must match its leaf certificate, the leaf must cover the
//! domain's host name and must not have expired. The private key is write-only: it is stored
//! sealed with a key derived from the server secret, leaves the control plane only in the
//! snapshot (whose endpoint needs a node credential), and the API shows the certificate's facts
//! instead (subject, names, validity, fingerprint).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use medgate_config::tls::{CertificateError, CertificateInfo, ServerCertificate, TlsError};
use medgate_config::DomainCertificate;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::model::{Domain, DomainStatus};
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::notifier::sealed::SealKey;
use crate::resource::{self, Resource};
use crate::state::AppState;
use crate::store::{self, Store, Tx};

const PATH: &str = "/api/domains/{id}/certificate";

/// Body of `PUT /api/domains/{id}/certificate`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateUpload {
    /// PEM certificates: the leaf (covering the domain's host name) first, then the
    /// intermediates. Up to 64 KiB.
    pub certificate_pem: String,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 RSA or SEC1 EC). Write-only.
    pub private_key_pem: String,
}

/// A domain's certificate as the API shows it (never the private key).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CertificateView {
    pub domain_id: String,
    pub hostname: String,
    /// The leaf's subject, e.g. `CN=portal.clinic.example`.
    pub subject: String,
    pub issuer: String,
    /// The leaf's DNS names (subject alternative names).
    pub dns_names: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    /// SHA-256 of the leaf (DER), lowercase hex.
    pub fingerprint_sha256: String,
    /// Whether the proxy serves it: only a verified domain's certificate is in the snapshot.
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::put(
            PATH,
            "domains.put_certificate",
            "Upload (or replace) the domain's TLS certificate and private key; the key is never returned",
        )
        .access(Access::TenantWrite)
        .resource(Domain::KIND)
        .request::<CertificateUpload>()
        .response::<CertificateView>(),
        put_certificate,
    )
    .add(
        Endpoint::get(PATH, "domains.get_certificate", "The domain's TLS certificate (without its key)")
            .resource(Domain::KIND)
            .response::<CertificateView>(),
        get_certificate,
    )
    .add(
        Endpoint::delete(PATH, "domains.delete_certificate", "Remove the domain's TLS certificate")
            .access(Access::TenantWrite)
            .resource(Domain::KIND),
        delete_certificate,
    )
}

/// Checks an upload against the domain: parses, key matches, covers the host, not expired.
pub fn check(
    hostname: &str,
    input: &CertificateUpload,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<CertificateInfo> {
    let cert = ServerCertificate::from_pem(&input.certificate_pem, &input.private_key_pem)
        .map_err(|e| match e {
            CertificateError::Chain(e) => ApiError::invalid("certificate_pem", e.to_string()),
            CertificateError::Key(TlsError::KeyMismatch) => ApiError::invalid(
                "private_key_pem",
                "does not match the certificate (the key of the first certificate is needed)",
            ),
            CertificateError::Key(e) => ApiError::invalid("private_key_pem", e.to_string()),
        })?;
    let leaf = cert.leaf;
    if !leaf.covers(hostname) {
        let names = if leaf.dns_names.is_empty() {
            "none".to_owned()
        } else {
            leaf.dns_names.join(", ")
        };
        return Err(ApiError::invalid(
            "certificate_pem",
            format!("does not cover {hostname} (its DNS names: {names})"),
        ));
    }
    if leaf.not_after <= now {
        return Err(ApiError::invalid(
            "certificate_pem",
            format!("expired at {}", CertificateInfo::rfc3339(&leaf.not_after)),
        ));
    }
    Ok(leaf)
}

/// The sealing key of this server (503 when there is no server secret).
fn seal_key(state: &AppState) -> ApiResult<SealKey> {
    SealKey::from_settings(state.settings(), "a domain certificate's private key")
}

async fn put_certificate(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<CertificateUpload>,
) -> ApiResult<Response> {
    let domain = resource::visible(
        &principal,
        resource::load::<Domain>(state.store(), &id).await?,
        &id,
    )?
    .value;
    let leaf = check(&domain.hostname, &input, chrono::Utc::now())?;
    let sealed = seal_key(&state)?.seal(&input.private_key_pem);
    let now = store::now();
    let mut tx = state.store().begin().await?;
    // The domain may have gone (or been verified or withdrawn) since it was read.
    let domain = resource::visible(
        &principal,
        resource::load_tx::<Domain>(&mut tx, &id).await?,
        &id,
    )?
    .value;
    let dns_names = serde_json::to_string(&leaf.dns_names).map_err(ApiError::internal)?;
    sqlx::query(
        "INSERT INTO domain_certificates (domain_id, tenant_id, chain_pem, key_sealed, subject, \
         issuer, dns_names, not_before, not_after, fingerprint_sha256, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
         ON CONFLICT (domain_id) DO UPDATE SET chain_pem = excluded.chain_pem, \
         key_sealed = excluded.key_sealed, subject = excluded.subject, issuer = excluded.issuer, \
         dns_names = excluded.dns_names, not_before = excluded.not_before, \
         not_after = excluded.not_after, fingerprint_sha256 = excluded.fingerprint_sha256, \
         updated_at = excluded.updated_at",
    )
    .bind(domain.id.clone())
    .bind(domain.tenant_id.clone())
    .bind(input.certificate_pem.clone())
    .bind(sealed)
    .bind(leaf.subject.clone())
    .bind(leaf.issuer.clone())
    .bind(dns_names)
    .bind(CertificateInfo::rfc3339(&leaf.not_before))
    .bind(CertificateInfo::rfc3339(&leaf.not_after))
    .bind(leaf.fingerprint_sha256.clone())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    bump_if_served(&mut tx, &domain).await?;
    let view = load_view(&mut tx, &domain)
        .await?
        .ok_or_else(|| ApiError::internal("the certificate just written is missing"))?;
    tx.commit().await?;
    let details = serde_json::json!({
        "fingerprint_sha256": view.fingerprint_sha256,
        "not_after": view.not_after,
    });
    Ok(AuditTarget::new(&id, Some(&domain.tenant_id))
        .with_details(details)
        .attach(Json(view)))
}

async fn get_certificate(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<CertificateView>> {
    let domain = resource::visible(
        &principal,
        resource::load::<Domain>(state.store(), &id).await?,
        &id,
    )?
    .value;
    let mut conn = state.store().reader().acquire().await?;
    load_view(&mut conn, &domain)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("certificate", &id))
}

async fn delete_certificate(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let mut tx = state.store().begin().await?;
    let domain = resource::visible(
        &principal,
        resource::load_tx::<Domain>(&mut tx, &id).await?,
        &id,
    )?
    .value;
    let removed = sqlx::query("DELETE FROM domain_certificates WHERE domain_id = $1")
        .bind(domain.id.clone())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(ApiError::not_found("certificate", &id));
    }
    bump_if_served(&mut tx, &domain).await?;
    tx.commit().await?;
    Ok(AuditTarget::new(&id, Some(&domain.tenant_id)).attach(StatusCode::NO_CONTENT))
}

/// A verified domain's certificate is in the snapshot: changing it needs a new version.
async fn bump_if_served(tx: &mut Tx, domain: &Domain) -> ApiResult<()> {
    if domain.status == DomainStatus::Verified {
        store::bump_config_version(tx).await?;
    }
    Ok(())
}

async fn load_view(
    conn: &mut sqlx::AnyConnection,
    domain: &Domain,
) -> ApiResult<Option<CertificateView>> {
    let row = sqlx::query(
        "SELECT subject, issuer, dns_names, not_before, not_after, fingerprint_sha256, \
         created_at, updated_at FROM domain_certificates WHERE domain_id = $1",
    )
    .bind(domain.id.clone())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let dns_names: String = row.try_get("dns_names")?;
    Ok(Some(CertificateView {
        domain_id: domain.id.clone(),
        hostname: domain.hostname.clone(),
        subject: row.try_get("subject")?,
        issuer: row.try_get("issuer")?,
        dns_names: serde_json::from_str(&dns_names).map_err(ApiError::internal)?,
        not_before: row.try_get("not_before")?,
        not_after: row.try_get("not_after")?,
        fingerprint_sha256: row.try_get("fingerprint_sha256")?,
        active: domain.status == DomainStatus::Verified,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    }))
}

/// Removes a domain's certificate, in the transaction deleting the domain.
pub async fn remove_for_domain(tx: &mut Tx, domain_id: &str) -> ApiResult<()> {
    sqlx::query("DELETE FROM domain_certificates WHERE domain_id = $1")
        .bind(domain_id.to_owned())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Removes a tenant's certificates, in the transaction deleting the tenant.
pub async fn remove_for_tenant(tx: &mut Tx, tenant_id: &str) -> ApiResult<()> {
    sqlx::query("DELETE FROM domain_certificates WHERE tenant_id = $1")
        .bind(tenant_id.to_owned())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every stored certificate with its key unsealed, by domain id, for the snapshot. A key that
/// cannot be unsealed (the server secret changed) leaves its certificate out, with a warning:
/// the proxy then serves the default certificate for that domain until it is uploaded again.
pub async fn for_snapshot(
    store: &Store,
    seal: Option<&SealKey>,
) -> ApiResult<std::collections::HashMap<String, DomainCertificate>> {
    let rows = sqlx::query("SELECT domain_id, chain_pem, key_sealed FROM domain_certificates")
        .fetch_all(store.reader())
        .await?;
    let mut out = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let domain_id: String = row.try_get("domain_id")?;
        let sealed: String = row.try_get("key_sealed")?;
        match seal.and_then(|k| k.unseal(&sealed)) {
            Some(key_pem) => {
                out.insert(
                    domain_id,
                    DomainCertificate {
                        chain_pem: row.try_get("chain_pem")?,
                        key_pem,
                    },
                );
            }
            None => {
                tracing::warn!(domain = %domain_id, "the domain certificate's key cannot be unsealed with this server secret; upload it again");
            }
        }
    }
    Ok(out)
}
