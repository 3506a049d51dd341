//! TLS on both sides of the proxy: the HTTPS listener's certificates, chosen by SNI, and the
//! trust anchors of `https://` upstreams.
//!
//! **Certificates follow the snapshot without a restart.** Pingora's rustls listener accepts a
//! rustls `ResolvesServerCert` (`TlsSettings::set_cert_resolver`), asked once per handshake.
//! [`SniResolver`] answers from the catalog in force: each snapshot's [`CertTable`] is built
//! with its catalog and swapped in with it (one `ArcSwap`), so a handshake sees the
//! certificates of one snapshot, and a new one takes effect on the next handshake. Names
//! without a certificate of their own get the default certificate of the process settings.

use std::collections::HashMap;
use std::sync::Arc;

use medgate_config::tls::{self, ServerCertificate, TlsError};
use medgate_config::DomainEntry;
use pingora::listeners::tls::TlsSettings;
use pingora::protocols::tls::CaType;
use pingora::tls::{ClientHello, ResolvesServerCert};
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::shared::Shared;

/// The custom domains' certificates of one snapshot, by the names they serve.
#[derive(Default)]
pub struct CertTable {
    /// Exact host -> certificate.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `example.com` -> the certificate of `*.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// Parsed certificates by the digest of their PEM, so the next snapshot reuses them.
    parsed: HashMap<[u8; 32], ServerCertificate>,
}

impl std::fmt::Debug for CertTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertTable")
            .field("certificates", &self.parsed.len())
            .finish_non_exhaustive()
    }
}

impl CertTable {
    /// Indexes the certificates of `domains`. A certificate that does not parse, whose key does
    /// not match, or that does not cover its domain is left out with a warning: the domain
    /// then gets the default certificate, and every other domain keeps its own.
    ///
    /// A certificate serves its domain's host name and those of its DNS names that lie within
    /// the domain (`*.clinic.example` for the domain `clinic.example`), so a tenant's routes on
    /// subdomains get it too, but no name outside the domain. A host name that is itself a
    /// verified domain always gets that domain's certificate.
    pub fn build(domains: &[DomainEntry], previous: Option<&CertTable>) -> Self {
        let mut table = CertTable::default();
        let mut usable: Vec<(&DomainEntry, Arc<CertifiedKey>, Vec<String>)> = Vec::new();
        for domain in domains {
            let Some(c) = &domain.certificate else {
                continue;
            };
            let digest: [u8; 32] = Sha256::new()
                .chain_update(c.chain_pem.as_bytes())
                .chain_update([0])
                .chain_update(c.key_pem.as_bytes())
                .finalize()
                .into();
            let parsed = match previous.and_then(|p| p.parsed.get(&digest)) {
                Some(known) => known.clone(),
                None => match ServerCertificate::from_pem(&c.chain_pem, &c.key_pem) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        tracing::warn!(domain = %domain.hostname, error = %e, "domain certificate unusable; the default certificate serves it");
                        continue;
                    }
                },
            };
            if !parsed.leaf.covers(&domain.hostname) {
                tracing::warn!(domain = %domain.hostname, names = ?parsed.leaf.dns_names, "domain certificate does not cover the domain; the default certificate serves it");
                continue;
            }
            let names = parsed
                .leaf
                .dns_names
                .iter()
                .filter(|n| within(n.strip_prefix("*.").unwrap_or(n), &domain.hostname))
                .cloned()
                .collect();
            usable.push((domain, Arc::clone(&parsed.key), names));
            table.parsed.insert(digest, parsed);
        }
        // Broader domains first, so a more specific domain's names win.
        usable.sort_by_key(|(d, _, _)| d.hostname.len());
        for (_, key, names) in &usable {
            for name in names {
                match name.strip_prefix("*.") {
                    Some(suffix) => table.wildcard.insert(suffix.to_owned(), Arc::clone(key)),
                    None => table.exact.insert(name.clone(), Arc::clone(key)),
                };
            }
        }
        for (domain, key, _) in usable {
            table.exact.insert(domain.hostname.clone(), key);
        }
        table
    }

    /// The certificate for a server name (SNI), if a domain has one.
    pub fn lookup(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return Some(Arc::clone(key));
        }
        // A wildcard covers exactly one more label.
        let (label, parent) = name.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        self.wildcard.get(parent).map(Arc::clone)
    }

    /// How many certificates are in use.
    pub fn len(&self) -> usize {
        self.parsed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parsed.is_empty()
    }
}

/// Whether `name` is `domain` or a subdomain of it.
fn within(name: &str, domain: &str) -> bool {
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Chooses the HTTPS listener's certificate by SNI from the catalog in force.
#[derive(Debug)]
pub struct SniResolver {
    shared: Arc<Shared>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    pub fn new(shared: Arc<Shared>, default: &ServerCertificate) -> Self {
        Self {
            shared,
            default: Arc::clone(&default.key),
        }
    }

    /// The certificate served for `server_name` (None: no SNI).
    pub fn certificate_for(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        server_name
            .and_then(|name| {
                let catalog = self.shared.catalog()?;
                catalog.routing.certificates.lookup(name)
            })
            .unwrap_or_else(|| Arc::clone(&self.default))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certificate_for(hello.server_name()))
    }
}

/// The listener settings: certificates from `resolver`; HTTP/2 or HTTP/1.1, as the client
/// offers in ALPN (HTTP/2 first).
pub fn listener_settings(resolver: Arc<SniResolver>) -> pingora::Result<TlsSettings> {
    // The paths are ignored once a resolver is set (pingora-core's rustls `TlsSettings::build`).
    let mut settings = TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(resolver);
    settings.enable_h2();
    Ok(settings)
}

/// Trusts `ca_pem` (instead of the system roots) for a TLS peer. Pingora's pool key leaves
/// the CA out, so the peer's group key carries a digest of it: a connection verified against
/// one CA is never reused for a peer that names another.
pub fn trust_ca(peer: &mut HttpPeer, ca_pem: &str) -> Result<(), TlsError> {
    let certs = tls::parse_ca_bundle(ca_pem)?;
    let mut anchors = Vec::with_capacity(certs.len());
    for (index, der) in certs.into_iter().enumerate() {
        let wrapped = WrappedX509::try_new(der.to_vec(), |raw| {
            X509Certificate::from_der(raw).map(|(_, cert)| cert)
        })
        .map_err(|e| TlsError::BadCertificate {
            index,
            message: e.to_string(),
        })?;
        anchors.push(wrapped);
    }
    let anchors: Arc<CaType> = anchors.into();
    peer.options.ca = Some(anchors);
    let digest = Sha256::digest(ca_pem.as_bytes());
    let mut group = [0u8; 8];
    group.copy_from_slice(&digest[..8]);
    peer.group_key = u64::from_be_bytes(group);
    Ok(())
}

/// Whether the client's connection is TLS (it came through the HTTPS listener).
pub fn is_tls(session: &pingora::proxy::Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// Where a plain-HTTP request goes on HTTPS: the same host and path, on the HTTPS listener's
/// port (left out when 443). None without a host to name.
pub fn https_location(host: &str, path_and_query: &str, https_port: u16) -> Option<String> {
    if host.is_empty() {
        return None;
    }
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    Some(format!("https://{host}{port}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgate_config::DomainCertificate;

    fn issue(names: &[&str]) -> DomainCertificate {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params")
                .self_signed(&key)
                .expect("cert");
        DomainCertificate {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn domain(host: &str, cert: Option<DomainCertificate>) -> DomainEntry {
        DomainEntry {
            hostname: host.into(),
            tenant_id: "t1".into(),
            certificate: cert,
        }
    }

    fn same(a: &Arc<CertifiedKey>, b: &Arc<CertifiedKey>) -> bool {
        a.cert == b.cert
    }

    #[test]
    fn names_within_the_domain_get_its_certificate() {
        let clinic = issue(&["clinic.test", "*.clinic.test", "other.test"]);
        let api = issue(&["api.clinic.test"]);
        let table = CertTable::build(
            &[
                domain("clinic.test", Some(clinic)),
                domain("api.clinic.test", Some(api)),
            ],
            None,
        );
        let clinic_key = table.lookup("clinic.test").expect("exact");
        let api_key = table.lookup("API.clinic.test.").expect("exact, any case");
        assert!(!same(&clinic_key, &api_key));
        assert!(same(
            &table.lookup("portal.clinic.test").expect("wildcard"),
            &clinic_key
        ));
        assert!(table.lookup("a.b.clinic.test").is_none(), "one label only");
        assert!(
            table.lookup("other.test").is_none(),
            "a name outside the domain is not taken"
        );
        assert!(table.lookup("unknown.test").is_none());
    }

    #[test]
    fn unusable_certificates_are_left_out_alone() {
        let good = issue(&["good.test"]);
        let mut mismatched = issue(&["bad.test"]);
        mismatched.key_pem = issue(&["bad.test"]).key_pem;
        let elsewhere = issue(&["elsewhere.test"]);
        let garbage = DomainCertificate {
            chain_pem: "garbage".into(),
            key_pem: "garbage".into(),
        };
        let table = CertTable::build(
            &[
                domain("good.test", Some(good)),
                domain("bad.test", Some(mismatched)),
                domain("wrong.test", Some(elsewhere)),
                domain("junk.test", Some(garbage)),
                domain("plain.test", None),
            ],
            None,
        );
        assert_eq!(table.len(), 1);
        assert!(table.lookup("good.test").is_some());
        for host in ["bad.test", "wrong.test", "junk.test", "plain.test"] {
            assert!(table.lookup(host).is_none(), "{host}");
        }
    }

    #[test]
    fn unchanged_certificates_are_not_parsed_again() {
        let cert = issue(&["a.test"]);
        let first = CertTable::build(&[domain("a.test", Some(cert.clone()))], None);
        let second = CertTable::build(&[domain("a.test", Some(cert))], Some(&first));
        assert!(Arc::ptr_eq(
            &first.lookup("a.test").expect("a"),
            &second.lookup("a.test").expect("a")
        ));
    }

    #[test]
    fn redirects_name_the_https_port_unless_it_is_443() {
        assert_eq!(
            https_location("a.test", "/x?y=1", 8443).as_deref(),
            Some("https://a.test:8443/x?y=1")
        );
        assert_eq!(
            https_location("a.test", "/", 443).as_deref(),
            Some("https://a.test/")
        );
        assert_eq!(https_location("", "/", 443), None);
    }

    #[test]
    fn a_peer_trusting_a_ca_gets_its_own_pool_group() {
        let ca = issue(&["ca.test"]).chain_pem;
        let mut peer = HttpPeer::new("127.0.0.1:443", true, "a.test".into());
        trust_ca(&mut peer, &ca).expect("a CA bundle");
        assert_eq!(peer.options.ca.as_ref().map(|c| c.len()), Some(1));
        assert_ne!(peer.group_key, 0);
        assert!(trust_ca(&mut peer, "not pem").is_err());
    }
}
