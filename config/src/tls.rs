//! TLS material as both planes read it: certificate chains and private keys in PEM, the facts
//! of a certificate (subject, DNS names, validity, fingerprint), and CA bundles for upstreams.
//!
//! The management API checks an upload with these functions; the data plane builds its SNI
//! certificates with the same ones, so what the API accepted is what the proxy can serve. The
//! crypto provider is rustls' `ring`, the one pingora-rustls installs.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Largest PEM text accepted for a chain, a key or a CA bundle.
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// Why TLS material was refused. Messages are meant for the person who uploaded it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("is larger than {MAX_PEM_BYTES} bytes")]
    TooLarge,
    #[error("has no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    #[error("is not valid PEM: {0}")]
    BadPem(String),
    #[error("certificate {index} of the PEM is not a readable X.509 certificate: {message}")]
    BadCertificate { index: usize, message: String },
    #[error("is not a PEM private key (expected PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    NoKey,
    #[error("is not a usable private key: {0}")]
    BadKey(String),
    #[error("does not match the certificate's public key")]
    KeyMismatch,
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Distinguished name, e.g. `CN=api.clinic.example`.
    pub subject: String,
    pub issuer: String,
    /// DNS names of the subject alternative names, lowercase (wildcards as `*.example.com`).
    pub dns_names: Vec<String>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the DER encoding, lowercase hex.
    pub fingerprint_sha256: String,
}

impl CertificateInfo {
    /// Reads one DER certificate.
    pub fn of(der: &[u8], index: usize) -> Result<Self, TlsError> {
        let bad = |message: String| TlsError::BadCertificate { index, message };
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        let dns_names = cert
            .subject_alternative_name()
            .map_err(|e| bad(format!("subject alternative names: {e}")))?
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let time = |t: i64| {
            DateTime::from_timestamp(t, 0).ok_or_else(|| bad("validity out of range".into()))
        };
        Ok(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            dns_names,
            not_before: time(cert.validity().not_before.timestamp())?,
            not_after: time(cert.validity().not_after.timestamp())?,
            fingerprint_sha256: hex::encode(Sha256::digest(der)),
        })
    }

    /// Whether one of the DNS names covers `host`: equal, or a wildcard for exactly one more
    /// label (`*.example.com` covers `a.example.com`, not `example.com` nor `a.b.example.com`).
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.dns_names.iter().any(|name| name_covers(name, &host))
    }

    /// RFC 3339 text of a validity bound, as the API shows it.
    pub fn rfc3339(at: &DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

/// Whether the certificate name `name` (lowercase, maybe `*.`) covers the lowercase `host`.
pub fn name_covers(name: &str, host: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .and_then(|rest| rest.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => name == host,
    }
}

/// The certificates of a PEM text, in order (leaf first for a chain). Other PEM sections
/// (a key pasted along) are ignored; every certificate must parse as X.509.
pub fn parse_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge);
    }
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    for (index, cert) in certs.iter().enumerate() {
        CertificateInfo::of(cert, index)?;
    }
    Ok(certs)
}

/// The first private key of a PEM text.
pub fn parse_private_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge);
    }
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey,
        other => TlsError::BadPem(other.to_string()),
    })
}

/// A certificate chain with its private key, ready for a TLS listener.
#[derive(Clone)]
pub struct ServerCertificate {
    pub key: Arc<CertifiedKey>,
    /// The leaf certificate's facts.
    pub leaf: CertificateInfo,
}

impl std::fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("leaf", &self.leaf)
            .finish_non_exhaustive()
    }
}

/// Which of the two PEM texts of a [`ServerCertificate`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate chain {0}")]
    Chain(TlsError),
    #[error("private key {0}")]
    Key(TlsError),
}

impl ServerCertificate {
    /// Parses a chain (leaf first) and its key, and checks that they belong together.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Self, CertificateError> {
        let chain = parse_certificates(chain_pem).map_err(CertificateError::Chain)?;
        let leaf = CertificateInfo::of(&chain[0], 0).map_err(CertificateError::Chain)?;
        let key = parse_private_key(key_pem).map_err(CertificateError::Key)?;
        let provider = rustls::crypto::ring::default_provider();
        let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => CertificateError::Key(TlsError::KeyMismatch),
            other => CertificateError::Key(TlsError::BadKey(other.to_string())),
        })?;
        Ok(Self {
            key: Arc::new(key),
            leaf,
        })
    }
}

/// The trust anchors of a CA bundle (PEM, one or more certificates), for verifying an
/// upstream's certificate instead of the system roots.
pub fn parse_ca_bundle(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = parse_certificates(pem)?;
    let mut store = RootCertStore::empty();
    for (index, cert) in certs.iter().enumerate() {
        store
            .add(cert.clone())
            .map_err(|e| TlsError::BadCertificate {
                index,
                message: format!("not usable as a trust anchor: {e}"),
            })?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_matching_chain_and_key_load_with_their_facts() {
        let (cert, key) = issue(&["a.test", "*.b.test"]);
        let c = ServerCertificate::from_pem(&cert, &key).expect("loads");
        assert_eq!(c.leaf.dns_names, vec!["a.test", "*.b.test"]);
        assert_eq!(c.leaf.fingerprint_sha256.len(), 64);
        assert!(c.leaf.not_after > c.leaf.not_before);
        assert!(c.leaf.covers("A.test."));
        assert!(c.leaf.covers("x.b.test"));
        assert!(!c.leaf.covers("b.test"));
        assert!(!c.leaf.covers("x.y.b.test"));
        assert!(!c.leaf.covers("xa.test"));
    }

    #[test]
    fn bad_material_is_named() {
        let (cert, key) = issue(&["a.test"]);
        let (_, other_key) = issue(&["a.test"]);
        let err = |c: &str, k: &str| ServerCertificate::from_pem(c, k).expect_err("refused");
        assert_eq!(
            err("garbage", &key),
            CertificateError::Chain(TlsError::NoCertificate)
        );
        assert!(matches!(
            err(
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                &key
            ),
            CertificateError::Chain(TlsError::BadPem(_))
        ));
        assert!(matches!(
            err(
                "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
                &key
            ),
            CertificateError::Chain(TlsError::BadCertificate { index: 0, .. })
        ));
        assert_eq!(err(&cert, &cert), CertificateError::Key(TlsError::NoKey));
        assert_eq!(
            err(&cert, &other_key),
            CertificateError::Key(TlsError::KeyMismatch)
        );
        assert_eq!(
            parse_certificates(&"x".repeat(MAX_PEM_BYTES + 1)),
            Err(TlsError::TooLarge)
        );
    }

    #[test]
    fn ca_bundles_hold_certificates_only() {
        let (cert, key) = issue(&["ca.test"]);
        assert_eq!(parse_ca_bundle(&cert).expect("bundle").len(), 1);
        assert_eq!(parse_ca_bundle(&key), Err(TlsError::NoCertificate));
    }
}
