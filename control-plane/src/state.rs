//! Shared state of the management API.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ipnet::IpNet;
use medgate_config::Settings;
use serde_json::Value;

use crate::auth::JwtKeys;
use crate::changes::Watermarks;
use crate::metrics::ApiMetrics;
use crate::snapshot::SnapshotHub;
use crate::store::Store;

/// Cheap to clone; everything inside is shared.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Store,
    keys: JwtKeys,
    settings: Settings,
    snapshots: SnapshotHub,
    changes: Watermarks,
    openapi: OnceLock<Arc<Value>>,
    started: Instant,
    metrics: ApiMetrics,
    trusted_proxies: Vec<IpNet>,
}

impl AppState {
    pub fn new(store: Store, keys: JwtKeys, settings: Settings) -> Self {
        // Without a server secret no certificate key can be unsealed (nor uploaded).
        let seal = crate::notifier::sealed::SealKey::from_settings(&settings, "").ok();
        let snapshots = SnapshotHub::new(store.clone(), seal);
        let changes = Watermarks::new(store.clone());
        let trusted_proxies = settings.api.trusted_proxy_networks();
        Self(Arc::new(Inner {
            changes,
            store,
            keys,
            settings,
            snapshots,
            openapi: OnceLock::new(),
            started: Instant::now(),
            metrics: ApiMetrics::new(),
            trusted_proxies,
        }))
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn keys(&self) -> &JwtKeys {
        &self.0.keys
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn snapshots(&self) -> &SnapshotHub {
        &self.0.snapshots
    }

    /// The config version and balance feed sequence, shared by the long-polls.
    pub fn changes(&self) -> &Watermarks {
        &self.0.changes
    }

    /// Peers whose `X-Forwarded-For` is believed, besides loopback (`api.trusted_proxies`).
    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.0.trusted_proxies
    }

    pub fn metrics(&self) -> &ApiMetrics {
        &self.0.metrics
    }

    pub fn uptime_secs(&self) -> u64 {
        self.0.started.elapsed().as_secs()
    }

    pub(crate) fn set_openapi(&self, doc: Value) {
        let _ = self.0.openapi.set(Arc::new(doc));
    }

    pub fn openapi(&self) -> Arc<Value> {
        self.0.openapi.get().cloned().unwrap_or_default()
    }
}
