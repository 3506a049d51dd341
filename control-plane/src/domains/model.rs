//! The domain resource (API §8): a host name a tenant claims, and the proof that it controls
//! it.

use async_trait::async_trait;
use medgate_config::{DomainCertificate, DomainEntry};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::resource::{self, Crud, Resource, Scope};
use crate::store::Tx;
use crate::validate;

/// Prefix of the DNS record that carries the token.
pub const RECORD_PREFIX: &str = "_medgate-challenge";
/// Path under which the HTTP check fetches the token.
pub const HTTP_PATH: &str = "/.well-known/medgate-challenge/";

/// A tenant's custom domain. Only verified domains route traffic to their tenant.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Domain {
    pub id: String,
    pub tenant_id: String,
    /// Lowercase fully qualified name, unique across tenants.
    pub hostname: String,
    pub status: DomainStatus,
    pub verification: Verification,
    pub verified_at: Option<String>,
    pub last_checked_at: Option<String>,
    /// Why the last check failed.
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// `pending` until the first check; each check then sets `verified` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    Pending,
    Verified,
    Failed,
}

impl DomainStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainStatus::Pending => "pending",
            DomainStatus::Verified => "verified",
            DomainStatus::Failed => "failed",
        }
    }
}

/// How ownership is proven.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMethod {
    /// A TXT record `record_name` with the value `expected_value`.
    #[default]
    DnsTxt,
    /// `http://<hostname>/.well-known/medgate-challenge/<token>` answers the token.
    Http,
}

/// What the tenant publishes to prove it controls the domain. The token is not a secret: it
/// is published in DNS or on the web by design.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verification {
    pub method: VerificationMethod,
    /// 32 random hex characters.
    pub token: String,
    /// The TXT record to create, `_medgate-challenge.<hostname>`.
    pub record_name: String,
    /// The TXT record's value, `medgate-verification=<token>`.
    pub expected_value: String,
    /// The URL the HTTP check fetches (it must answer `token`).
    pub http_url: String,
}

impl Verification {
    fn new(hostname: &str, method: VerificationMethod) -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        Self {
            method,
            record_name: format!("{RECORD_PREFIX}.{hostname}"),
            expected_value: format!("medgate-verification={token}"),
            http_url: format!("http://{hostname}{HTTP_PATH}{token}"),
            token,
        }
    }
}

/// Body of `POST /api/domains`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainCreate {
    /// Required for platform-wide callers; tenant admins get their own tenant.
    pub tenant_id: Option<String>,
    /// A fully qualified host name; stored in lower case, without a trailing dot.
    pub hostname: String,
    /// Default `dns_txt`.
    #[serde(default)]
    pub verification_method: VerificationMethod,
}

/// Body of `PUT /api/domains/{id}`: the host name and tenant are the domain's identity and
/// cannot change (delete and add the domain instead).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainUpdate {
    /// Switching the method of a domain that is not verified yet sets it back to `pending`.
    pub verification_method: Option<VerificationMethod>,
}

impl Domain {
    /// Records the outcome of a check made at `now`.
    pub fn record_check(&mut self, outcome: Result<(), String>, now: &str) {
        self.last_checked_at = Some(now.to_owned());
        match outcome {
            Ok(()) => {
                self.status = DomainStatus::Verified;
                self.verified_at = Some(now.to_owned());
                self.last_error = None;
            }
            Err(e) => {
                // A failed re-check withdraws the domain: it no longer proves ownership.
                self.status = DomainStatus::Failed;
                self.verified_at = None;
                self.last_error = Some(e);
            }
        }
    }

    /// The domain as the data plane needs it, with its certificate if it has one.
    pub fn snapshot_entry(&self, certificate: Option<DomainCertificate>) -> DomainEntry {
        DomainEntry {
            hostname: self.hostname.clone(),
            tenant_id: self.tenant_id.clone(),
            certificate,
        }
    }
}

/// Whether a route host (exact or `*.suffix`) lies within `domain`: whoever controls a
/// domain controls its subdomains.
pub fn covers(domain: &str, host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

impl Resource for Domain {
    const KIND: &'static str = "domain";
    const ID_PREFIX: &'static str = "dom";
    const LABEL: &'static str = "domain";
    const SCOPE: Scope = Scope::Tenant;
    const AFFECTS_SNAPSHOT: bool = true;

    crate::resource_timestamps!();

    fn tenant_id(&self) -> Option<&str> {
        Some(&self.tenant_id)
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.hostname.clone())
    }
    fn unique_field() -> &'static str {
        "hostname"
    }
    fn name(&self) -> Option<&str> {
        Some(&self.hostname)
    }
    fn status(&self) -> Option<String> {
        Some(self.status.as_str().to_owned())
    }
}

#[async_trait]
impl Crud for Domain {
    type Create = DomainCreate;
    type Update = DomainUpdate;
    type View = Domain;
    const PATH: &'static str = "/api/domains";
    const TAG: &'static str = "domains";

    fn build(id: String, input: DomainCreate, principal: &Principal) -> ApiResult<Self> {
        let tenant_id = resource::owning_tenant(principal, input.tenant_id)?;
        let hostname = input.hostname.trim_end_matches('.').to_ascii_lowercase();
        validate::hostname("hostname", &hostname, 2)?;
        Ok(Domain {
            id,
            tenant_id,
            verification: Verification::new(&hostname, input.verification_method),
            hostname,
            status: DomainStatus::Pending,
            verified_at: None,
            last_checked_at: None,
            last_error: None,
            created_at: String::new(),
            updated_at: String::new(),
        })
    }

    fn apply(&mut self, input: DomainUpdate) -> ApiResult<()> {
        if let Some(method) = input.verification_method {
            if method != self.verification.method && self.status != DomainStatus::Verified {
                self.status = DomainStatus::Pending;
                self.last_error = None;
            }
            self.verification.method = method;
        }
        Ok(())
    }

    fn view(&self) -> Domain {
        self.clone()
    }

    /// The domain's certificate (and its private key) leaves with it.
    async fn on_delete(&self, tx: &mut Tx) -> ApiResult<()> {
        super::certificate::remove_for_domain(tx, &self.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_hosts_within_a_domain() {
        assert!(covers("clinic.example", "clinic.example"));
        assert!(covers("clinic.example", "*.clinic.example"));
        assert!(covers("clinic.example", "*.api.clinic.example"));
        assert!(covers("clinic.example", "api.clinic.example"));
        assert!(!covers("clinic.example", "evilclinic.example"));
        assert!(!covers("clinic.example", "*.evilclinic.example"));
        assert!(!covers("clinic.example", "*.example"));
    }
}
