//! Static mode (`medgate proxy --config gateway.yaml`): the snapshot's content written by hand
//! (GitOps), with the same validation as snapshots from the control plane.

use std::path::Path;

use medgate_config::{
    ApiKeyEntry, DomainEntry, GatewayEntry, ModelEntry, ProtectionEntry, RouteEntry, Snapshot,
    TenantEntry, TenantModelEntry,
};
use serde::Deserialize;

/// The file: everything of a snapshot but its version and hash.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticGateway {
    pub tenants: Vec<TenantEntry>,
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    #[serde(default)]
    pub api_keys: Vec<ApiKeyEntry>,
    #[serde(default)]
    pub tenant_models: Vec<TenantModelEntry>,
    #[serde(default)]
    pub gateway: GatewayEntry,
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
    /// Custom domains, taken as verified (whoever writes the file vouches for them).
    #[serde(default)]
    pub domains: Vec<DomainEntry>,
    /// Rate limits, circuit breakers and degradation rules.
    #[serde(default)]
    pub protection: ProtectionEntry,
}

/// Whether a YAML file is a static gateway file (it has a top-level `tenants` key).
pub fn is_gateway_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_yaml::from_str::<serde_yaml::Value>(&t).ok())
        .is_some_and(|v| v.get("tenants").is_some())
}

/// Reads and checks the file; `version` is stamped on the resulting snapshot.
pub fn load(path: &Path, version: u64) -> Result<Snapshot, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let file: StaticGateway = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
    let snapshot = Snapshot::from_parts(
        version,
        file.tenants,
        file.models,
        file.api_keys,
        file.tenant_models,
        file.gateway,
    )
    .with_routing(file.routes, file.domains)
    .with_protection(file.protection);
    snapshot.validate().map_err(|e| e.to_string())?;
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_gateway_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/gateway.yaml");
        let snapshot = load(&path, 1).expect("the example loads and validates");
        assert_eq!(snapshot.protection.rate_limits.len(), 2);
        assert_eq!(snapshot.protection.breakers.len(), 2);
        assert_eq!(snapshot.protection.degradations.len(), 2);
        let iso = snapshot.tenants[0].isolation.as_ref().expect("isolation");
        assert_eq!(iso.dedicated_pool.as_deref(), Some("clinic-pool"));
    }
}
