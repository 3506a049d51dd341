//! Isolation policies (API §1.4), modelled on resilience.md §4.3: what a tenant shares and
//! what it gets for itself. The data plane enforces the compute and network parts (the
//! traffic-protection issue); the data strategy accepts `shared` only until others exist.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Tenant;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::resource::{Crud, Resource, Scope};
use crate::store::{resources, Tx};
use crate::validate;

/// An isolation policy, assignable to tenants.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IsolationPolicy {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[serde(flatten)]
    pub spec: IsolationSpec,
    /// Bumped on every change.
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

/// The policy's content: body of create and update.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IsolationSpecInput {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    pub tier: Option<String>,
    #[serde(default)]
    pub deployment_model: Option<DeploymentModel>,
    #[serde(default)]
    pub data: Option<DataIsolation>,
    #[serde(default)]
    pub compute: Option<ComputeIsolation>,
    #[serde(default)]
    pub upstreams: Option<UpstreamIsolation>,
    #[serde(default)]
    pub circuit_breaker_scope: Option<BreakerScope>,
    #[serde(default)]
    pub on_limit: Option<OnLimit>,
    pub reject_status: Option<u16>,
    #[serde(default)]
    pub network: Option<NetworkIsolation>,
}

/// The enforceable part of a policy.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IsolationSpec {
    pub enabled: bool,
    /// Free-form tier label (e.g. `enterprise`).
    pub tier: Option<String>,
    pub deployment_model: DeploymentModel,
    pub data: DataIsolation,
    pub compute: ComputeIsolation,
    pub upstreams: UpstreamIsolation,
    pub circuit_breaker_scope: BreakerScope,
    pub on_limit: OnLimit,
    /// Status of a refusal by a limit of this policy: 429 or 503.
    pub reject_status: u16,
    pub network: NetworkIsolation,
}

/// Deployment isolation level (AWS SaaS Lens).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentModel {
    #[default]
    Pool,
    Bridge,
    Silo,
}

/// How tenant data is separated in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataIsolation {
    /// `shared` (tenant_id scoping everywhere) is implemented; others are refused with 422.
    pub strategy: String,
    /// Data residency region label.
    pub region: Option<String>,
}

impl Default for DataIsolation {
    fn default() -> Self {
        Self {
            strategy: "shared".into(),
            region: None,
        }
    }
}

/// Bulkheads and fair share on shared upstreams.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputeIsolation {
    pub max_concurrent_requests: Option<u32>,
    #[serde(default)]
    pub max_concurrent_per_model: BTreeMap<String, u32>,
    pub max_queue_depth: Option<u32>,
    pub queue_timeout_ms: Option<u64>,
    pub priority_weight: Option<u32>,
    /// Cap on this tenant's share of a shared upstream's concurrency, 1 to 100.
    pub max_share_of_upstream_pct: Option<u8>,
}

/// Which upstream pool serves the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamIsolation {
    /// `shared`, or `dedicated:<pool_id>`.
    pub pool: String,
    pub spillover_to_shared: bool,
}

impl Default for UpstreamIsolation {
    fn default() -> Self {
        Self {
            pool: "shared".into(),
            spillover_to_shared: false,
        }
    }
}

/// Whether breakers are keyed per tenant or shared.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BreakerScope {
    PerTenant,
    #[default]
    Shared,
}

/// What happens when a limit of this policy is reached.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnLimit {
    #[default]
    Reject,
    Queue,
    Degrade,
}

/// Network allowlist; empty means any source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkIsolation {
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
}

impl IsolationSpecInput {
    fn into_parts(self) -> ApiResult<(String, Option<String>, IsolationSpec)> {
        validate::text("name", &self.name, 1, 100)?;
        if let Some(d) = &self.description {
            validate::text("description", d, 0, 2000)?;
        }
        if let Some(t) = &self.tier {
            validate::text("tier", t, 1, 50)?;
        }
        let data = self.data.unwrap_or_default();
        if data.strategy != "shared" {
            return Err(ApiError::Unprocessable {
                code: "not_implemented",
                message: format!(
                    "data.strategy {:?} is not implemented; only \"shared\" (tenant_id scoping) is available",
                    data.strategy
                ),
                details: serde_json::json!({ "field": "data.strategy", "supported": ["shared"] }),
            });
        }
        let compute = self.compute.unwrap_or_default();
        validate::positive(
            "compute.max_concurrent_requests",
            compute.max_concurrent_requests.map(u64::from),
        )?;
        validate::positive(
            "compute.priority_weight",
            compute.priority_weight.map(u64::from),
        )?;
        validate::positive("compute.queue_timeout_ms", compute.queue_timeout_ms)?;
        for (model, limit) in &compute.max_concurrent_per_model {
            validate::model_name("compute.max_concurrent_per_model", model)?;
            if *limit == 0 {
                return Err(ApiError::invalid(
                    "compute.max_concurrent_per_model",
                    format!("{model}: must be greater than 0"),
                ));
            }
        }
        if compute.max_queue_depth.is_some() && compute.max_concurrent_requests.is_none() {
            return Err(ApiError::invalid(
                "compute.max_queue_depth",
                "needs compute.max_concurrent_requests",
            ));
        }
        if let Some(pct) = compute.max_share_of_upstream_pct {
            if !(1..=100).contains(&pct) {
                return Err(ApiError::invalid(
                    "compute.max_share_of_upstream_pct",
                    "must be between 1 and 100",
                ));
            }
        }
        let upstreams = self.upstreams.unwrap_or_default();
        let pool_ok = upstreams.pool == "shared"
            || upstreams
                .pool
                .strip_prefix("dedicated:")
                .is_some_and(|p| !p.is_empty() && p.len() <= 100);
        if !pool_ok {
            return Err(ApiError::invalid(
                "upstreams.pool",
                "must be \"shared\" or \"dedicated:<pool_id>\"",
            ));
        }
        let reject_status = self.reject_status.unwrap_or(429);
        if reject_status != 429 && reject_status != 503 {
            return Err(ApiError::invalid("reject_status", "must be 429 or 503"));
        }
        let network = self.network.unwrap_or_default();
        if network.allowed_cidrs.len() > 200 {
            return Err(ApiError::invalid(
                "network.allowed_cidrs",
                "at most 200 networks",
            ));
        }
        for (i, c) in network.allowed_cidrs.iter().enumerate() {
            validate::cidr(&format!("network.allowed_cidrs[{i}]"), c)?;
        }
        let spec = IsolationSpec {
            enabled: self.enabled.unwrap_or(true),
            tier: self.tier,
            deployment_model: self.deployment_model.unwrap_or_default(),
            data,
            compute,
            upstreams,
            circuit_breaker_scope: self.circuit_breaker_scope.unwrap_or_default(),
            on_limit: self.on_limit.unwrap_or_default(),
            reject_status,
            network,
        };
        Ok((self.name, self.description, spec))
    }
}

impl Resource for IsolationPolicy {
    const KIND: &'static str = "isolation_policy";
    const ID_PREFIX: &'static str = "iso";
    const LABEL: &'static str = "isolation policy";
    const SCOPE: Scope = Scope::Platform;
    const AFFECTS_SNAPSHOT: bool = true;

    crate::resource_timestamps!();

    fn unique_key(&self) -> Option<String> {
        Some(self.name.clone())
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn status(&self) -> Option<String> {
        Some(
            if self.spec.enabled {
                "enabled"
            } else {
                "disabled"
            }
            .to_owned(),
        )
    }
}

#[async_trait]
impl Crud for IsolationPolicy {
    type Create = IsolationSpecInput;
    type View = Self;
    type Update = IsolationSpecInput;
    const PATH: &'static str = "/api/isolation-policies";
    const TAG: &'static str = "isolation_policies";

    fn build(id: String, input: IsolationSpecInput, _principal: &Principal) -> ApiResult<Self> {
        let (name, description, spec) = input.into_parts()?;
        Ok(IsolationPolicy {
            id,
            name,
            description,
            spec,
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        })
    }

    fn view(&self) -> Self {
        self.clone()
    }

    fn apply(&mut self, input: IsolationSpecInput) -> ApiResult<()> {
        let (name, description, spec) = input.into_parts()?;
        self.name = name;
        self.description = description;
        self.spec = spec;
        self.version += 1;
        Ok(())
    }

    async fn check_delete(&self, tx: &mut Tx) -> ApiResult<()> {
        let mut users = 0;
        for row in resources::all(tx, Tenant::KIND).await? {
            let tenant: Tenant = serde_json::from_str(&row.body).map_err(ApiError::internal)?;
            if tenant.isolation_policy_id.as_deref() == Some(self.id.as_str()) {
                users += 1;
            }
        }
        if users > 0 {
            return Err(ApiError::conflict(
                "policy_in_use",
                format!("{users} tenant(s) use this policy; assign them another first"),
            ));
        }
        Ok(())
    }
}
