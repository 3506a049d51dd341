//! The snapshot in force, indexed for the request path.
//!
//! A [`Catalog`] is built once per snapshot swap (never per request): key lookup by prefix,
//! model lookup by name, id and tenant alias, and prebuilt upstream peers. Requests load the
//! current `Arc<Catalog>` once and use that one consistent view for their whole life.

use std::collections::HashMap;
use std::sync::Arc;

use medgate_config::{
    ApiKeyEntry, ModelEntry, ParameterRule, Snapshot, TenantEntry, TenantModelEntry,
};

use crate::routing::Routing;
use crate::upstream::UpstreamTarget;

/// An API key with its times parsed.
#[derive(Debug)]
pub struct KeyRecord {
    pub entry: ApiKeyEntry,
    pub expires_at_ms: Option<i64>,
    /// (SHA-256 bytes, valid until in ms since the epoch).
    pub secrets: Vec<([u8; 32], Option<i64>)>,
}

/// A model with its upstream targets ready to dial.
#[derive(Debug)]
pub struct ModelRecord {
    pub entry: ModelEntry,
    pub targets: Vec<UpstreamTarget>,
    pub total_weight: u32,
}

/// Why a model cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRefusal {
    NotFound,
    Disabled,
    NotAllowed,
}

/// The indexed snapshot.
#[derive(Debug)]
pub struct Catalog {
    pub snapshot: Arc<Snapshot>,
    tenants: HashMap<String, usize>,
    keys: HashMap<String, KeyRecord>,
    models: Vec<ModelRecord>,
    model_by_name: HashMap<String, usize>,
    model_by_id: HashMap<String, usize>,
    tenant_models: HashMap<(String, String), usize>,
    aliases: HashMap<(String, String), usize>,
    /// Generic routes with their balancers, and verified domains.
    pub routing: Routing,
}

impl Catalog {
    /// Indexes a validated snapshot.
    pub fn new(snapshot: Snapshot) -> Self {
        Self::new_after(snapshot, None)
    }

    /// Indexes a validated snapshot that replaces `previous`, whose unchanged routes keep
    /// their balancers (and so their targets' health).
    pub fn new_after(snapshot: Snapshot, previous: Option<&Catalog>) -> Self {
        let routing = Routing::build(&snapshot, previous.map(|p| &p.routing));
        let snapshot = Arc::new(snapshot);
        let tenants = snapshot
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        let keys = snapshot
            .api_keys
            .iter()
            .map(|k| {
                let record = KeyRecord {
                    entry: k.clone(),
                    expires_at_ms: k.expires_at.as_deref().and_then(parse_ms),
                    secrets: k
                        .secrets
                        .iter()
                        .filter_map(|s| {
                            let bytes = hex::decode(&s.sha256).ok()?;
                            let digest: [u8; 32] = bytes.try_into().ok()?;
                            Some((digest, s.valid_until.as_deref().and_then(parse_ms)))
                        })
                        .collect(),
                };
                (k.prefix.clone(), record)
            })
            .collect();
        let models: Vec<ModelRecord> = snapshot
            .models
            .iter()
            .map(|m| {
                let targets: Vec<UpstreamTarget> = m
                    .upstreams
                    .iter()
                    .filter(|u| u.weight > 0)
                    .filter_map(|u| UpstreamTarget::new(m, u))
                    .collect();
                let total_weight = targets.iter().map(|t| t.weight).sum();
                ModelRecord {
                    entry: m.clone(),
                    targets,
                    total_weight,
                }
            })
            .collect();
        let model_by_name = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.entry.name.clone(), i))
            .collect();
        let model_by_id: HashMap<String, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.entry.id.clone(), i))
            .collect();
        let tenant_models = snapshot
            .tenant_models
            .iter()
            .enumerate()
            .map(|(i, tm)| ((tm.tenant_id.clone(), tm.model_id.clone()), i))
            .collect();
        let aliases = snapshot
            .tenant_models
            .iter()
            .filter_map(|tm| {
                let alias = tm.alias.clone()?;
                let model = *model_by_id.get(&tm.model_id)?;
                Some(((tm.tenant_id.clone(), alias), model))
            })
            .collect();
        Self {
            snapshot,
            tenants,
            keys,
            models,
            model_by_name,
            model_by_id,
            tenant_models,
            aliases,
            routing,
        }
    }

    pub fn version(&self) -> u64 {
        self.snapshot.version
    }

    pub fn tenant(&self, id: &str) -> Option<&TenantEntry> {
        self.tenants.get(id).map(|&i| &self.snapshot.tenants[i])
    }

    pub fn key(&self, prefix: &str) -> Option<&KeyRecord> {
        self.keys.get(prefix)
    }

    pub fn tenant_model(&self, tenant_id: &str, model_id: &str) -> Option<&TenantModelEntry> {
        self.tenant_models
            .get(&(tenant_id.to_owned(), model_id.to_owned()))
            .map(|&i| &self.snapshot.tenant_models[i])
    }

    /// Finds the model a tenant's request names: a tenant alias, a model name, or a model id.
    pub fn find_model(&self, tenant_id: &str, requested: &str) -> Option<&ModelRecord> {
        self.aliases
            .get(&(tenant_id.to_owned(), requested.to_owned()))
            .or_else(|| self.model_by_name.get(requested))
            .or_else(|| self.model_by_id.get(requested))
            .map(|&i| &self.models[i])
    }

    /// A model by its exact name (degradation fallbacks are named by the operator).
    pub fn model_named(&self, name: &str) -> Option<&ModelRecord> {
        self.model_by_name.get(name).map(|&i| &self.models[i])
    }

    /// Whether this tenant, with this key, may use the model (ignoring whether it is enabled).
    pub fn allowed(&self, tenant: &TenantEntry, key: &ApiKeyEntry, model: &ModelEntry) -> bool {
        let plan_ok =
            tenant.allowed_models.is_empty() || tenant.allowed_models.contains(&model.name);
        let config = self.tenant_model(&tenant.id, &model.id);
        let tenant_ok = match config {
            Some(c) => c.enabled,
            None => model.available_to_all_tenants,
        };
        let key_ok = key.allowed_models.is_empty()
            || key.allowed_models.contains(&model.name)
            || config
                .and_then(|c| c.alias.as_ref())
                .is_some_and(|a| key.allowed_models.contains(a));
        plan_ok && tenant_ok && key_ok
    }

    /// Resolves a requested model for a tenant and key.
    pub fn resolve(
        &self,
        tenant: &TenantEntry,
        key: &ApiKeyEntry,
        requested: &str,
    ) -> Result<&ModelRecord, ModelRefusal> {
        let model = self
            .find_model(&tenant.id, requested)
            .ok_or(ModelRefusal::NotFound)?;
        if !self.allowed(tenant, key, &model.entry) {
            // A model the tenant may not use does not exist for it, unless it named it exactly.
            return Err(ModelRefusal::NotAllowed);
        }
        if !model.entry.enabled || model.targets.is_empty() {
            return Err(ModelRefusal::Disabled);
        }
        Ok(model)
    }

    /// Models this tenant and key may call, with the name clients should use.
    pub fn models_for(
        &self,
        tenant: &TenantEntry,
        key: &ApiKeyEntry,
    ) -> Vec<(String, &ModelEntry)> {
        self.models
            .iter()
            .filter(|m| m.entry.enabled && self.allowed(tenant, key, &m.entry))
            .flat_map(|m| {
                let alias = self
                    .tenant_model(&tenant.id, &m.entry.id)
                    .and_then(|c| c.alias.clone());
                std::iter::once((m.entry.name.clone(), &m.entry))
                    .chain(alias.map(|a| (a, &m.entry)))
            })
            .collect()
    }

    /// The parameter rules in force: the model's, overridden per parameter by the tenant's.
    pub fn parameter_rules(
        &self,
        tenant_id: &str,
        model: &ModelEntry,
    ) -> Vec<(String, ParameterRule)> {
        let mut rules = model.parameters.clone();
        if let Some(config) = self.tenant_model(tenant_id, &model.id) {
            for (name, rule) in &config.parameters {
                rules.insert(name.clone(), rule.clone());
            }
        }
        rules.into_iter().collect()
    }
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn parse_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
