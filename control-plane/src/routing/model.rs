//! The route resource (API §7.1): which requests the gateway forwards where, for the platform
//! or for one tenant.

use async_trait::async_trait;
use medgate_config::{
    HealthCheck, LoadBalancing, RouteEntry, RouteMatch, RouteTarget, RouteTimeouts,
};
use serde::{Deserialize, Serialize};

use super::input::RouteInput;
use crate::auth::Principal;
use crate::domains::{self, Domain};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Crud, Resource, Scope};
use crate::store::Tx;

/// A generic reverse-proxy route. `tenant_id` None makes it a platform route, which tenant
/// roles neither see nor change.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Route {
    pub id: String,
    pub name: String,
    pub tenant_id: Option<String>,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    pub targets: Vec<RouteTarget>,
    pub load_balancing: LoadBalancing,
    pub health_check: Option<HealthCheck>,
    pub strip_prefix: bool,
    pub timeouts: RouteTimeouts,
    pub retries: u8,
    pub plugins: Vec<String>,
    pub priority: i32,
    /// Plain-HTTP requests get `308` to the same URL on the proxy's HTTPS listener.
    #[serde(default)]
    pub https_redirect: bool,
    /// Disabled routes stay stored but leave the snapshot.
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl Route {
    fn from_input(id: String, tenant_id: Option<String>, mut input: RouteInput) -> ApiResult<Self> {
        input.validate()?;
        Ok(Route {
            id,
            name: input.name,
            tenant_id,
            matcher: input.matcher,
            targets: input.targets,
            load_balancing: input.load_balancing,
            health_check: input.health_check,
            strip_prefix: input.strip_prefix,
            timeouts: input.timeouts,
            retries: input.retries,
            plugins: input.plugins,
            priority: input.priority,
            https_redirect: input.https_redirect,
            enabled: input.enabled.unwrap_or(true),
            created_at: String::new(),
            updated_at: String::new(),
        })
    }

    /// The route as the data plane runs it, with `hosts` narrowed to those it may serve.
    pub fn snapshot_entry(&self, hosts: Vec<String>) -> RouteEntry {
        RouteEntry {
            id: self.id.clone(),
            name: self.name.clone(),
            tenant_id: self.tenant_id.clone(),
            matcher: RouteMatch {
                hosts,
                ..self.matcher.clone()
            },
            targets: self.targets.clone(),
            load_balancing: self.load_balancing,
            health_check: self.health_check.clone(),
            strip_prefix: self.strip_prefix,
            timeouts: self.timeouts,
            retries: self.retries,
            plugins: self.plugins.clone(),
            priority: self.priority,
            https_redirect: self.https_redirect,
        }
    }
}

impl Resource for Route {
    const KIND: &'static str = "route";
    const ID_PREFIX: &'static str = "rte";
    const LABEL: &'static str = "route";
    const SCOPE: Scope = Scope::Tenant;
    const AFFECTS_SNAPSHOT: bool = true;

    crate::resource_timestamps!();

    fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }
    /// Names are unique per owner (`*` stands for the platform).
    fn unique_key(&self) -> Option<String> {
        Some(format!(
            "{}/{}",
            self.tenant_id.as_deref().unwrap_or("*"),
            self.name
        ))
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn status(&self) -> Option<String> {
        Some(if self.enabled { "enabled" } else { "disabled" }.to_owned())
    }
}

#[async_trait]
impl Crud for Route {
    type Create = RouteInput;
    type Update = RouteInput;
    type View = Route;
    const PATH: &'static str = "/api/routes";
    const TAG: &'static str = "routes";

    fn build(id: String, input: RouteInput, principal: &Principal) -> ApiResult<Self> {
        let tenant_id = match principal.tenant_scope() {
            Some(_) => Some(resource::owning_tenant(principal, input.tenant_id.clone())?),
            None => input.tenant_id.clone(),
        };
        Route::from_input(id, tenant_id, input)
    }

    fn apply(&mut self, input: RouteInput) -> ApiResult<()> {
        if input.tenant_id.is_some() && input.tenant_id != self.tenant_id {
            return Err(ApiError::invalid(
                "tenant_id",
                "a route cannot move to another owner; omit it or repeat the route's own",
            ));
        }
        let mut updated = Route::from_input(self.id.clone(), self.tenant_id.clone(), input)?;
        updated.created_at = std::mem::take(&mut self.created_at);
        *self = updated;
        Ok(())
    }

    fn view(&self) -> Route {
        self.clone()
    }

    /// A tenant's route may only take hosts of the tenant's own domains: anything else would
    /// capture other tenants' (or the platform's) traffic. Unverified domains are accepted
    /// here so routes can be prepared; the snapshot carries only verified hosts.
    async fn check_references(&self, tx: &mut Tx) -> ApiResult<()> {
        let Some(tenant) = &self.tenant_id else {
            return Ok(());
        };
        if self.matcher.hosts.is_empty() {
            return Err(ApiError::invalid(
                "match.hosts",
                "a tenant's route must name at least one of the tenant's domains",
            ));
        }
        let owned: Vec<String> = resource::load_for_tenant_tx::<Domain>(tx, tenant, None)
            .await?
            .into_iter()
            .map(|d| d.value.hostname)
            .collect();
        for (i, host) in self.matcher.hosts.iter().enumerate() {
            if !owned.iter().any(|d| domains::covers(d, host)) {
                return Err(ApiError::invalid(
                    &format!("match.hosts[{i}]"),
                    "must be one of the tenant's domains (or *. below one); add the domain first",
                ));
            }
        }
        Ok(())
    }
}
