//! Gateway configuration (API §7.4, `GET/PUT /api/gateway/config`): the gateway-wide
//! settings the data plane applies, stored as one platform resource and compiled into the
//! snapshot's `gateway` section (so a change bumps the snapshot version and reaches every
//! proxy like any other configuration change).

use medgate_config::{GatewayEntry, SnapshotError};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Resource, Scope};
use crate::store::Store;

/// The one id the configuration is stored under.
const ID: &str = "gateway";

/// The gateway-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Largest inference request body, bytes (1 KiB to 100 MiB; default 10 MiB). Larger
    /// bodies get 413.
    pub max_body_bytes: u64,
    /// Fraction of successful requests written to the access log, 0 to 1 (default 1).
    /// Responses with status 400 or more are always logged.
    pub access_log_sample_rate: f64,
    /// Connect timeout towards upstreams without one of their own (the management API behind
    /// the proxy), milliseconds (1 to 120000; default 5000). Models carry their own timeouts.
    pub upstream_connect_timeout_ms: u64,
    /// Longest silence from such an upstream, milliseconds (1 to 3600000; default 60000).
    pub upstream_read_timeout_ms: u64,
    /// When the settings were first changed from the defaults; None while they are the
    /// defaults.
    pub created_at: Option<String>,
    /// Last change; None while the settings are the defaults.
    pub updated_at: Option<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self::from_entry(&GatewayEntry::default())
    }
}

impl GatewayConfig {
    fn from_entry(e: &GatewayEntry) -> Self {
        Self {
            max_body_bytes: e.max_body_bytes,
            access_log_sample_rate: e.access_log_sample_rate,
            upstream_connect_timeout_ms: e.upstream_connect_timeout_ms,
            upstream_read_timeout_ms: e.upstream_read_timeout_ms,
            created_at: None,
            updated_at: None,
        }
    }

    /// What the data plane receives.
    pub fn entry(&self) -> GatewayEntry {
        GatewayEntry {
            max_body_bytes: self.max_body_bytes,
            access_log_sample_rate: self.access_log_sample_rate,
            upstream_connect_timeout_ms: self.upstream_connect_timeout_ms,
            upstream_read_timeout_ms: self.upstream_read_timeout_ms,
        }
    }

    /// The snapshot's own rules, so the API never stores what the data plane would refuse.
    fn validate(&self) -> ApiResult<()> {
        match self.entry().validate() {
            Ok(()) => Ok(()),
            Err(SnapshotError::BadGateway { field, message }) => {
                Err(ApiError::invalid(field, message))
            }
            Err(other) => Err(ApiError::internal(other)),
        }
    }
}

impl Resource for GatewayConfig {
    const KIND: &'static str = "gateway_config";
    const ID_PREFIX: &'static str = "gw";
    const LABEL: &'static str = "gateway configuration";
    const SCOPE: Scope = Scope::Platform;
    const AFFECTS_SNAPSHOT: bool = true;

    fn id(&self) -> &str {
        ID
    }

    fn set_timestamps(&mut self, created_at: &str, updated_at: &str) {
        self.created_at = Some(created_at.to_owned());
        self.updated_at = Some(updated_at.to_owned());
    }
}

/// Body of `PUT /api/gateway/config`: omitted fields keep their value.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfigUpdate {
    pub max_body_bytes: Option<u64>,
    pub access_log_sample_rate: Option<f64>,
    pub upstream_connect_timeout_ms: Option<u64>,
    pub upstream_read_timeout_ms: Option<u64>,
}

impl GatewayConfigUpdate {
    fn apply_to(&self, c: &mut GatewayConfig) -> ApiResult<()> {
        if let Some(v) = self.max_body_bytes {
            c.max_body_bytes = v;
        }
        if let Some(v) = self.access_log_sample_rate {
            c.access_log_sample_rate = v;
        }
        if let Some(v) = self.upstream_connect_timeout_ms {
            c.upstream_connect_timeout_ms = v;
        }
        if let Some(v) = self.upstream_read_timeout_ms {
            c.upstream_read_timeout_ms = v;
        }
        c.validate()
    }
}

/// The settings in force (the defaults until the first change).
pub async fn current(store: &Store) -> ApiResult<GatewayConfig> {
    Ok(resource::load::<GatewayConfig>(store, ID)
        .await?
        .map(|s| s.value)
        .unwrap_or_default())
}

/// Applies an update: the first one stores the record, later ones replace it. Retried when
/// another writer got there first (including two first updates racing to insert).
pub async fn update(store: &Store, input: GatewayConfigUpdate) -> ApiResult<GatewayConfig> {
    resource::retrying(GatewayConfig::LABEL, || async {
        let mut tx = store.begin().await?;
        let value = match resource::load_tx::<GatewayConfig>(&mut tx, ID).await? {
            Some(mut stored) => {
                input.apply_to(&mut stored.value)?;
                resource::replace(&mut tx, &mut stored).await?;
                stored.value
            }
            None => {
                let mut value = GatewayConfig::default();
                input.apply_to(&mut value)?;
                resource::insert(&mut tx, &mut value)
                    .await
                    .map_err(|e| match e {
                        ApiError::Conflict {
                            code: "already_exists",
                            ..
                        } => ApiError::conflict("concurrent_modification", "inserted meanwhile"),
                        other => other,
                    })?;
                value
            }
        };
        tx.commit().await?;
        Ok(value)
    })
    .await
}
