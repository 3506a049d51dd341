//! The snapshot: everything the data plane needs, compiled by the control plane into one
//! immutable, versioned value (DESIGN.md §3.1).
//!
//! Later issues add models, keys, routes, limits and breakers; the rules stay the same: the
//! proxy applies a snapshot whole or not at all, and `hash` lets both sides check they hold the
//! same content.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The compiled configuration of the data plane at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Monotonically increasing; bumped by every mutation that changes the snapshot.
    pub version: u64,
    /// SHA-256 (hex) of the canonical JSON of everything but `version` and `hash`.
    pub hash: String,
    pub tenants: Vec<TenantEntry>,
}

/// What the data plane knows about one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    pub id: String,
    pub code: String,
    pub status: TenantStatus,
    /// Plan quotas in force (None when the tenant has no plan).
    pub quotas: Option<PlanQuotas>,
    /// Models the plan allows; empty means every enabled model.
    pub allowed_models: Vec<String>,
    /// Request payload logging (off unless the tenant opted in).
    pub log_request_payloads: bool,
    /// Origins allowed for browser calls (CORS).
    pub cors_allowed_origins: Vec<String>,
    /// Compute isolation (bulkheads, network allowlist) from the tenant's isolation policy.
    pub isolation: Option<IsolationEntry>,
}

/// A tenant's lifecycle state: `pending -> active <-> suspended -> terminated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Pending,
    Active,
    Suspended,
    Terminated,
}

impl TenantStatus {
    /// Only active tenants may send traffic.
    pub fn may_send_traffic(self) -> bool {
        self == TenantStatus::Active
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Pending => "pending",
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Terminated => "terminated",
        }
    }
}

/// Per-tenant quotas from the tenant's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanQuotas {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub monthly_tokens: Option<u64>,
    pub max_api_keys: Option<u64>,
}

/// Compute isolation for one tenant, as the data plane enforces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IsolationEntry {
    pub policy_id: String,
    pub max_concurrent_requests: Option<u32>,
    pub max_concurrent_per_model: BTreeMap<String, u32>,
    pub max_queue_depth: Option<u32>,
    pub queue_timeout_ms: Option<u64>,
    pub max_share_of_upstream_pct: Option<u8>,
    pub allowed_cidrs: Vec<String>,
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("snapshot hash mismatch: carries {carried}, content hashes to {computed}")]
    HashMismatch { carried: String, computed: String },
    #[error("duplicate tenant id {0}")]
    DuplicateTenant(String),
    #[error("duplicate tenant code {0}")]
    DuplicateTenantCode(String),
    #[error("snapshot version must be at least 1")]
    ZeroVersion,
}

impl Snapshot {
    /// Builds a snapshot and stamps its content hash.
    pub fn new(version: u64, mut tenants: Vec<TenantEntry>) -> Self {
        tenants.sort_by(|a, b| a.id.cmp(&b.id));
        let mut snapshot = Self {
            version,
            hash: String::new(),
            tenants,
        };
        snapshot.hash = snapshot.content_hash();
        snapshot
    }

    /// SHA-256 over the canonical JSON of the content (version and hash excluded), so two
    /// compilations of the same store state hash the same.
    pub fn content_hash(&self) -> String {
        let content = serde_json::json!({ "tenants": self.tenants });
        // serde_json maps are ordered (BTreeMap) without the preserve_order feature, and
        // structs serialize in declaration order: the text is canonical for our types.
        let text = serde_json::to_string(&content).unwrap_or_default();
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// Checks the snapshot as a whole; the proxy refuses it on any error.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        if self.version == 0 {
            return Err(SnapshotError::ZeroVersion);
        }
        let computed = self.content_hash();
        if computed != self.hash {
            return Err(SnapshotError::HashMismatch {
                carried: self.hash.clone(),
                computed,
            });
        }
        let mut ids = HashSet::new();
        let mut codes = HashSet::new();
        for tenant in &self.tenants {
            if !ids.insert(tenant.id.as_str()) {
                return Err(SnapshotError::DuplicateTenant(tenant.id.clone()));
            }
            if !codes.insert(tenant.code.as_str()) {
                return Err(SnapshotError::DuplicateTenantCode(tenant.code.clone()));
            }
        }
        Ok(())
    }

    pub fn tenant(&self, id: &str) -> Option<&TenantEntry> {
        self.tenants.iter().find(|t| t.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str, code: &str) -> TenantEntry {
        TenantEntry {
            id: id.into(),
            code: code.into(),
            status: TenantStatus::Active,
            quotas: None,
            allowed_models: vec![],
            log_request_payloads: false,
            cors_allowed_origins: vec![],
            isolation: None,
        }
    }

    #[test]
    fn hash_ignores_version_and_input_order() {
        let a = Snapshot::new(1, vec![tenant("t1", "a"), tenant("t2", "b")]);
        let b = Snapshot::new(7, vec![tenant("t2", "b"), tenant("t1", "a")]);
        assert_eq!(a.hash, b.hash);
        a.validate().expect("valid");
    }

    #[test]
    fn tampered_content_is_refused() {
        let mut s = Snapshot::new(1, vec![tenant("t1", "a")]);
        s.tenants[0].status = TenantStatus::Suspended;
        assert!(matches!(
            s.validate(),
            Err(SnapshotError::HashMismatch { .. })
        ));
    }

    #[test]
    fn duplicates_are_refused() {
        let s = Snapshot::new(1, vec![tenant("t1", "a"), tenant("t1", "b")]);
        assert_eq!(
            s.validate(),
            Err(SnapshotError::DuplicateTenant("t1".into()))
        );
        let s = Snapshot::new(1, vec![tenant("t1", "a"), tenant("t2", "a")]);
        assert_eq!(
            s.validate(),
            Err(SnapshotError::DuplicateTenantCode("a".into()))
        );
    }

    #[test]
    fn only_active_tenants_send_traffic() {
        assert!(TenantStatus::Active.may_send_traffic());
        for s in [
            TenantStatus::Pending,
            TenantStatus::Suspended,
            TenantStatus::Terminated,
        ] {
            assert!(!s.may_send_traffic(), "{s:?}");
        }
    }
}
