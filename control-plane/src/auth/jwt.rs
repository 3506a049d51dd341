//! Signing and verifying management tokens with `jsonwebtoken`.
//!
//! HS256 with a shared secret is the default; RS256/ES256 verify with a public key (and sign
//! with the private key when one is configured, for `medgate token issue`). The algorithm is
//! pinned by configuration, so `alg: none` and algorithm-confusion tokens fail verification.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use medgate_config::Settings;
use serde::{Deserialize, Serialize};

use super::{Principal, Role};

/// The claims of a medgate token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

/// Why a token was refused (always a 401 to the caller).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token claims: {0}")]
    Claims(String),
    #[error("key configuration: {0}")]
    Config(String),
}

/// The keys of one deployment.
#[derive(Clone)]
pub struct JwtKeys {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    issuer: String,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl JwtKeys {
    /// An HS256 key pair from a shared secret.
    pub fn hs256(secret: &[u8], issuer: impl Into<String>) -> Self {
        Self {
            algorithm: Algorithm::HS256,
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
            issuer: issuer.into(),
        }
    }

    /// Keys as configured. `secret` is the resolved HS256 secret (settings or generated).
    pub fn from_settings(settings: &Settings, secret: Option<&str>) -> Result<Self, JwtError> {
        let issuer = settings.auth.jwt_issuer.clone();
        match settings.auth.jwt_algorithm.as_str() {
            "HS256" => {
                let secret = secret.ok_or_else(|| {
                    JwtError::Config(
                        "HS256 needs a secret: set MEDGATE_JWT_SECRET (or use --demo)".into(),
                    )
                })?;
                Ok(Self::hs256(secret.as_bytes(), issuer))
            }
            alg @ ("RS256" | "ES256") => {
                let algorithm = if alg == "RS256" {
                    Algorithm::RS256
                } else {
                    Algorithm::ES256
                };
                let public = read(settings.auth.jwt_public_key_file.as_deref())?;
                let decoding = if algorithm == Algorithm::RS256 {
                    DecodingKey::from_rsa_pem(&public)
                } else {
                    DecodingKey::from_ec_pem(&public)
                }
                .map_err(|e| JwtError::Config(format!("public key: {e}")))?;
                let encoding = match settings.auth.jwt_private_key_file.as_deref() {
                    Some(path) => {
                        let private = read(Some(path))?;
                        let key = if algorithm == Algorithm::RS256 {
                            EncodingKey::from_rsa_pem(&private)
                        } else {
                            EncodingKey::from_ec_pem(&private)
                        }
                        .map_err(|e| JwtError::Config(format!("private key: {e}")))?;
                        Some(key)
                    }
                    None => None,
                };
                Ok(Self {
                    algorithm,
                    decoding,
                    encoding,
                    issuer,
                })
            }
            other => Err(JwtError::Config(format!("unsupported algorithm {other}"))),
        }
    }

    /// Mints a token.
    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        tenant_id: Option<&str>,
        ttl: Duration,
    ) -> Result<String, JwtError> {
        if role.requires_tenant() && tenant_id.is_none() {
            return Err(JwtError::Claims(format!(
                "role {} needs a tenant",
                role.as_str()
            )));
        }
        let encoding = self.encoding.as_ref().ok_or_else(|| {
            JwtError::Config("no signing key configured (jwt_private_key_file)".into())
        })?;
        let now = now_secs();
        let claims = Claims {
            sub: subject.to_owned(),
            role: role.as_str().to_owned(),
            tenant_id: tenant_id.map(str::to_owned),
            iss: self.issuer.clone(),
            iat: now,
            exp: now + ttl.as_secs().max(1),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, encoding)
            .map_err(|e| JwtError::Config(e.to_string()))
    }

    /// Verifies signature, algorithm, issuer and expiry, then maps the claims to a caller.
    pub fn verify(&self, token: &str) -> Result<Principal, JwtError> {
        let mut validation = Validation::new(self.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| JwtError::Invalid(e.to_string()))?;
        let claims = data.claims;
        let role = Role::parse(&claims.role)
            .ok_or_else(|| JwtError::Claims(format!("unknown role {:?}", claims.role)))?;
        if role.requires_tenant() && claims.tenant_id.is_none() {
            return Err(JwtError::Claims(format!(
                "role {} needs tenant_id",
                role.as_str()
            )));
        }
        let tenant_id = if role == Role::PlatformAdmin || role == Role::Node {
            None
        } else {
            claims.tenant_id
        };
        Ok(Principal {
            subject: claims.sub,
            role,
            tenant_id,
        })
    }
}

fn read(path: Option<&std::path::Path>) -> Result<Vec<u8>, JwtError> {
    let path = path.ok_or_else(|| JwtError::Config("key file not configured".into()))?;
    std::fs::read(path).map_err(|e| JwtError::Config(format!("{}: {e}", path.display())))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_keeps_role_and_tenant() {
        let keys = JwtKeys::hs256(SECRET, "medgate");
        let token = keys
            .issue(
                "alice",
                Role::TenantAdmin,
                Some("t1"),
                Duration::from_secs(60),
            )
            .expect("issue");
        let p = keys.verify(&token).expect("verify");
        assert_eq!(p.role, Role::TenantAdmin);
        assert_eq!(p.tenant_id.as_deref(), Some("t1"));
    }

    #[test]
    fn wrong_secret_and_wrong_issuer_are_refused() {
        let token = JwtKeys::hs256(SECRET, "medgate")
            .issue("a", Role::PlatformAdmin, None, Duration::from_secs(60))
            .expect("issue");
        assert!(
            JwtKeys::hs256(b"another-secret-another-secret-xx", "medgate")
                .verify(&token)
                .is_err()
        );
        assert!(JwtKeys::hs256(SECRET, "someone-else")
            .verify(&token)
            .is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        use base64_like::encode;
        let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = encode(
            format!(r#"{{"sub":"x","role":"platform_admin","iss":"medgate","iat":1,"exp":{},"jti":"j"}}"#, now_secs() + 60)
                .as_bytes(),
        );
        let token = format!("{header}.{payload}.");
        assert!(JwtKeys::hs256(SECRET, "medgate").verify(&token).is_err());
    }

    #[test]
    fn tenant_roles_need_a_tenant() {
        let keys = JwtKeys::hs256(SECRET, "medgate");
        assert!(keys
            .issue("a", Role::TenantViewer, None, Duration::from_secs(60))
            .is_err());
    }

    /// Minimal unpadded base64url, enough to forge test tokens.
    mod base64_like {
        pub fn encode(input: &[u8]) -> String {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut out = String::new();
            for chunk in input.chunks(3) {
                let b = [
                    chunk[0],
                    *chunk.get(1).unwrap_or(&0),
                    *chunk.get(2).unwrap_or(&0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..=chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }
}
