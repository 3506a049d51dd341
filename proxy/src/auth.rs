//! API-key authentication: `Authorization: Bearer mg_<id>_<secret>` (or `x-api-key`).
//!
//! The key's visible prefix (`mg_<id>`) finds the record; the SHA-256 of the whole presented
//! key must equal one of the record's accepted secrets, compared in constant time. Expiry and
//! rotation grace are checked against the clock on every request, so they take effect at once.

use sha2::{Digest, Sha256};

use crate::catalog::{now_ms, Catalog, KeyRecord};

/// Why a key was refused (each a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Missing,
    Malformed,
    Unknown,
    Expired,
}

impl KeyRefusal {
    pub fn message(self) -> &'static str {
        match self {
            KeyRefusal::Missing => "missing API key: send Authorization: Bearer <key>",
            KeyRefusal::Malformed | KeyRefusal::Unknown => "incorrect API key provided",
            KeyRefusal::Expired => "this API key has expired",
        }
    }
}

/// The presented key from the request headers.
pub fn presented_key<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
) -> Option<&'a str> {
    authorization
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .or(x_api_key.map(str::trim))
        .filter(|k| !k.is_empty())
}

/// The record of a valid key.
pub fn authenticate<'c>(
    catalog: &'c Catalog,
    presented: Option<&str>,
) -> Result<&'c KeyRecord, KeyRefusal> {
    let key = presented.ok_or(KeyRefusal::Missing)?;
    let prefix = key_prefix(key).ok_or(KeyRefusal::Malformed)?;
    let record = catalog.key(prefix).ok_or(KeyRefusal::Unknown)?;
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let now = now_ms();
    let matched = record.secrets.iter().any(|(secret, valid_until)| {
        constant_time_eq(secret, &digest) && valid_until.is_none_or(|t| now < t)
    });
    if !matched {
        return Err(KeyRefusal::Unknown);
    }
    if record.expires_at_ms.is_some_and(|t| now >= t) {
        return Err(KeyRefusal::Expired);
    }
    Ok(record)
}

/// `mg_<id>` of `mg_<id>_<secret>`.
pub fn key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("mg_")?;
    let underscore = rest.find('_')?;
    if underscore == 0 || key.len() > 256 {
        return None;
    }
    Some(&key[..3 + underscore])
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgate_config::{ApiKeyEntry, KeySecret, Snapshot, TenantEntry, TenantStatus};

    fn catalog(secrets: Vec<KeySecret>, expires_at: Option<&str>) -> Catalog {
        let tenant = TenantEntry {
            id: "t".into(),
            code: "t".into(),
            status: TenantStatus::Active,
            quotas: None,
            allowed_models: vec![],
            log_request_payloads: false,
            cors_allowed_origins: vec![],
            isolation: None,
        };
        let key = ApiKeyEntry {
            id: "key_1".into(),
            tenant_id: "t".into(),
            prefix: "mg_abc".into(),
            secrets,
            expires_at: expires_at.map(Into::into),
            allowed_models: vec![],
        };
        Catalog::new(Snapshot::from_parts(
            1,
            vec![tenant],
            vec![],
            vec![key],
            vec![],
            Default::default(),
        ))
    }

    fn sha(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn accepts_the_right_secret_only() {
        let c = catalog(
            vec![KeySecret {
                sha256: sha("mg_abc_secret"),
                valid_until: None,
            }],
            None,
        );
        assert!(authenticate(&c, Some("mg_abc_secret")).is_ok());
        assert_eq!(
            authenticate(&c, Some("mg_abc_wrong")).err(),
            Some(KeyRefusal::Unknown)
        );
        assert_eq!(
            authenticate(&c, Some("mg_zzz_secret")).err(),
            Some(KeyRefusal::Unknown)
        );
        assert_eq!(
            authenticate(&c, Some("sk-openai")).err(),
            Some(KeyRefusal::Malformed)
        );
        assert_eq!(authenticate(&c, None).err(), Some(KeyRefusal::Missing));
    }

    #[test]
    fn rotated_out_secret_works_until_its_grace_ends() {
        let c = catalog(
            vec![
                KeySecret {
                    sha256: sha("mg_abc_new"),
                    valid_until: None,
                },
                KeySecret {
                    sha256: sha("mg_abc_old"),
                    valid_until: Some("2999-01-01T00:00:00Z".into()),
                },
                KeySecret {
                    sha256: sha("mg_abc_older"),
                    valid_until: Some("2000-01-01T00:00:00Z".into()),
                },
            ],
            None,
        );
        assert!(authenticate(&c, Some("mg_abc_new")).is_ok());
        assert!(authenticate(&c, Some("mg_abc_old")).is_ok());
        assert!(authenticate(&c, Some("mg_abc_older")).is_err());
    }

    #[test]
    fn expired_keys_are_refused() {
        let c = catalog(
            vec![KeySecret {
                sha256: sha("mg_abc_s"),
                valid_until: None,
            }],
            Some("2000-01-01T00:00:00Z"),
        );
        assert_eq!(
            authenticate(&c, Some("mg_abc_s")).err(),
            Some(KeyRefusal::Expired)
        );
    }

    #[test]
    fn header_forms() {
        assert_eq!(presented_key(Some("Bearer mg_a_b"), None), Some("mg_a_b"));
        assert_eq!(presented_key(None, Some("mg_a_b")), Some("mg_a_b"));
        assert_eq!(presented_key(Some("Basic xyz"), None), None);
    }
}
