//! The API key resource (API §3.2): a tenant's credential for the data plane, stored as
//! hashes only, with a visible prefix, expiry, allowed models and rotation.

use chrono::{DateTime, Duration, Utc};
use medgate_config::{ApiKeyEntry, KeySecret};
use serde::{Deserialize, Serialize};

use super::secret;
use crate::error::{ApiError, ApiResult};
use crate::resource::{Resource, Scope};
use crate::store;
use crate::validate;

/// Longest grace of a rotated-out secret: one week.
pub const MAX_GRACE_SECS: u64 = 604_800;
pub const DEFAULT_GRACE_SECS: u64 = 3_600;
/// Rotated-out secrets kept in grace at once; older ones stop working on the next rotation.
pub const MAX_PREVIOUS_SECRETS: usize = 4;

/// An API key as stored: hashes of its accepted secrets, never a plaintext.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// Visible prefix, e.g. `mg_3f9a0c1b2d4e`: the start of the plaintext.
    pub prefix: String,
    /// SHA-256 (hex) of the accepted secrets: the current one, and rotated-out ones until
    /// their `valid_until`.
    pub secrets: Vec<KeySecret>,
    pub status: KeyStatus,
    pub expires_at: Option<String>,
    /// Model names (or tenant aliases) the key may call; empty means any the tenant may use.
    pub allowed_models: Vec<String>,
    pub last_rotated_at: Option<String>,
    pub revoked_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// `active` keys work (until `expires_at`); `revoked` is final and keeps the row for history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Revoked => "revoked",
        }
    }
}

/// Body of `POST /api/api-keys`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    /// Required for platform-wide callers; tenant admins get their own tenant.
    pub tenant_id: Option<String>,
    pub name: String,
    /// RFC 3339, in the future.
    pub expires_at: Option<String>,
    /// Model names or aliases the key may call (up to 100); empty means any.
    #[serde(default)]
    pub allowed_models: Vec<String>,
}

/// Body of `PUT /api/api-keys/{id}/rotate`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the previous secret keeps working, 0 to 604800 seconds (default 3600).
    pub grace_period_secs: Option<u64>,
}

/// An API key as the API shows it (no hashes).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub prefix: String,
    pub status: KeyStatus,
    pub expires_at: Option<String>,
    /// Whether `expires_at` has passed (the data plane refuses the key).
    pub expired: bool,
    pub allowed_models: Vec<String>,
    pub last_rotated_at: Option<String>,
    /// Until when a rotated-out secret still works, if one does.
    pub previous_secret_valid_until: Option<String>,
    pub revoked_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The answer to create and rotate: the key and its plaintext, shown this once.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ApiKeyIssued {
    #[serde(flatten)]
    pub api_key: ApiKeyView,
    /// The full key, `mg_<id>_<secret>`. It is not stored and cannot be shown again.
    pub key: String,
}

impl ApiKeyCreate {
    /// Checks the body; returns the normalized expiry.
    pub fn validate(&self) -> ApiResult<Option<String>> {
        validate::text("name", &self.name, 1, 100)?;
        if self.allowed_models.len() > 100 {
            return Err(ApiError::invalid("allowed_models", "at most 100 models"));
        }
        for (i, m) in self.allowed_models.iter().enumerate() {
            validate::model_name(&format!("allowed_models[{i}]"), m)?;
        }
        let expires_at = self
            .expires_at
            .as_deref()
            .map(|t| crate::api::parse_time("expires_at", t))
            .transpose()?;
        if expires_at
            .as_deref()
            .is_some_and(|t| t <= store::now().as_str())
        {
            return Err(ApiError::invalid("expires_at", "must be in the future"));
        }
        Ok(expires_at)
    }
}

impl RotateKey {
    pub fn grace(&self) -> ApiResult<u64> {
        let grace = self.grace_period_secs.unwrap_or(DEFAULT_GRACE_SECS);
        if grace > MAX_GRACE_SECS {
            return Err(ApiError::invalid(
                "grace_period_secs",
                format!("must be between 0 and {MAX_GRACE_SECS}"),
            ));
        }
        Ok(grace)
    }
}

impl ApiKey {
    /// A new active key for `tenant_id` and its plaintext.
    pub fn issue(
        tenant_id: String,
        input: ApiKeyCreate,
        expires_at: Option<String>,
    ) -> (Self, String) {
        let identity = secret::new_identity();
        let plaintext = secret::new_plaintext(&identity.prefix);
        let key = ApiKey {
            id: identity.id,
            tenant_id,
            name: input.name,
            prefix: identity.prefix,
            secrets: vec![KeySecret {
                sha256: secret::sha256_hex(&plaintext),
                valid_until: None,
            }],
            status: KeyStatus::Active,
            expires_at,
            allowed_models: input.allowed_models,
            last_rotated_at: None,
            revoked_at: None,
            created_at: String::new(),
            updated_at: String::new(),
        };
        (key, plaintext)
    }

    pub fn is_expired(&self, now: &str) -> bool {
        self.expires_at.as_deref().is_some_and(|t| t <= now)
    }

    /// Replaces the current secret; the previous one works for `grace_secs` more. Returns the
    /// new plaintext.
    pub fn rotate(&mut self, grace_secs: u64, now: DateTime<Utc>) -> ApiResult<String> {
        let now_text = store::timestamp(now);
        match self.status {
            KeyStatus::Revoked => return Err(revoked()),
            KeyStatus::Active if self.is_expired(&now_text) => {
                return Err(ApiError::conflict(
                    "key_expired",
                    "an expired key cannot be rotated; create a new one",
                ))
            }
            KeyStatus::Active => {}
        }
        let grace = i64::try_from(grace_secs).unwrap_or(i64::MAX);
        let until = store::timestamp(now + Duration::seconds(grace));
        for s in &mut self.secrets {
            if s.valid_until.is_none() {
                s.valid_until = Some(until.clone());
            }
        }
        // Newest grace first; drop the ones already over and the oldest beyond the cap.
        self.secrets.retain(|s| {
            s.valid_until
                .as_deref()
                .is_some_and(|u| u > now_text.as_str())
        });
        self.secrets
            .sort_by(|a, b| b.valid_until.cmp(&a.valid_until));
        self.secrets.truncate(MAX_PREVIOUS_SECRETS);
        let plaintext = secret::new_plaintext(&self.prefix);
        self.secrets.insert(
            0,
            KeySecret {
                sha256: secret::sha256_hex(&plaintext),
                valid_until: None,
            },
        );
        self.last_rotated_at = Some(now_text);
        Ok(plaintext)
    }

    /// Revokes the key for good: no secret works any more; the row stays for history.
    pub fn revoke(&mut self) -> ApiResult<()> {
        if self.status == KeyStatus::Revoked {
            return Err(revoked());
        }
        self.status = KeyStatus::Revoked;
        self.secrets.clear();
        self.revoked_at = Some(store::now());
        Ok(())
    }

    pub fn view(&self) -> ApiKeyView {
        let now = store::now();
        ApiKeyView {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            status: self.status,
            expires_at: self.expires_at.clone(),
            expired: self.is_expired(&now),
            allowed_models: self.allowed_models.clone(),
            last_rotated_at: self.last_rotated_at.clone(),
            previous_secret_valid_until: self
                .secrets
                .iter()
                .filter_map(|s| s.valid_until.clone())
                .filter(|u| *u > now)
                .max(),
            revoked_at: self.revoked_at.clone(),
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        }
    }

    /// The key as the data plane checks it.
    pub fn snapshot_entry(&self) -> ApiKeyEntry {
        ApiKeyEntry {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            prefix: self.prefix.clone(),
            secrets: self.secrets.clone(),
            expires_at: self.expires_at.clone(),
            allowed_models: self.allowed_models.clone(),
        }
    }
}

fn revoked() -> ApiError {
    ApiError::conflict("key_revoked", "the API key is revoked")
}

impl Resource for ApiKey {
    const KIND: &'static str = "api_key";
    const ID_PREFIX: &'static str = "key";
    const LABEL: &'static str = "API key";
    const SCOPE: Scope = Scope::Tenant;
    const AFFECTS_SNAPSHOT: bool = true;

    crate::resource_timestamps!();

    fn tenant_id(&self) -> Option<&str> {
        Some(&self.tenant_id)
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.prefix.clone())
    }
    fn unique_field() -> &'static str {
        "prefix"
    }
    fn status(&self) -> Option<String> {
        Some(self.status.as_str().to_owned())
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiKey {
        let input = ApiKeyCreate {
            tenant_id: None,
            name: "k".into(),
            expires_at: None,
            allowed_models: vec![],
        };
        ApiKey::issue("tnt_1".into(), input, None).0
    }

    #[test]
    fn rotation_keeps_the_old_secret_for_the_grace_only() {
        let mut k = key();
        let first = k.secrets[0].sha256.clone();
        let t0 = Utc::now();
        let new = k.rotate(60, t0).expect("rotate");
        assert_eq!(k.secrets.len(), 2);
        assert_eq!(k.secrets[0].sha256, secret::sha256_hex(&new));
        assert_eq!(k.secrets[0].valid_until, None);
        assert_eq!(k.secrets[1].sha256, first);
        assert_eq!(
            k.secrets[1].valid_until,
            Some(store::timestamp(t0 + Duration::seconds(60)))
        );
        // Two minutes later the first secret's grace is over: rotating drops it.
        k.rotate(0, t0 + Duration::seconds(120)).expect("rotate");
        assert_eq!(k.secrets.len(), 1, "grace 0 drops the previous secret");
    }

    #[test]
    fn rotated_out_secrets_are_capped() {
        let mut k = key();
        let t0 = Utc::now();
        for i in 0..10 {
            k.rotate(3600, t0 + Duration::seconds(i)).expect("rotate");
        }
        assert_eq!(k.secrets.len(), 1 + MAX_PREVIOUS_SECRETS);
    }

    #[test]
    fn revoked_keys_lose_their_secrets_and_cannot_rotate() {
        let mut k = key();
        k.revoke().expect("revoke");
        assert!(k.secrets.is_empty());
        assert!(k.revoke().is_err());
        assert!(k.rotate(0, Utc::now()).is_err());
    }
}
