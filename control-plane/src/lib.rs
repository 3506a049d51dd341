//! medgate's control plane: the management API (axum), its store (sqlx, SQLite or
//! PostgreSQL), authentication, the audit trail, the OpenAPI document and the snapshot
//! compiler the data plane watches.
#![forbid(unsafe_code)]

pub mod access_logs;
pub mod alerts;
pub mod api;
mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod billing;
pub mod changes;
pub mod cluster;
pub mod demo;
pub mod domains;
pub mod error;
pub mod gateway;
mod health;
pub mod inference;
pub mod keys;
pub mod metrics;
pub mod models;
pub mod notifier;
pub mod protection;
pub mod resource;
pub mod routing;
pub mod settings;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod templates;
pub mod tenant_models;
pub mod tenants;
pub mod validate;

use std::future::Future;
use std::net::SocketAddr;

use medgate_config::Settings;
use tokio::net::TcpListener;

pub use app::router;
pub use auth::{JwtKeys, Role};
pub use state::AppState;
pub use store::Store;

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Keys(#[from] auth::JwtError),
    #[error("cannot seal the upstream API keys stored in plaintext: {0}")]
    SealKeys(error::ApiError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Opens the store (running migrations) and builds the shared state.
pub async fn open(settings: &Settings, jwt_secret: Option<&str>) -> Result<AppState, StartError> {
    let keys = JwtKeys::from_settings(settings, jwt_secret)?;
    let store = Store::connect(&settings.effective_database_url()).await?;
    store.migrate().await?;
    models::seal_plaintext_keys(&store, settings)
        .await
        .map_err(StartError::SealKeys)?;
    Ok(AppState::new(store, keys, settings.clone()))
}

/// Serves the management API on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Alert rules are evaluated, notifications delivered, expired rows purged, backups taken
    // and last month's invoices drafted for as long as the API serves. All but the notifier
    // run once cluster-wide (job leases); the notifier runs on every control plane, each notification
    // leased by the one sending it.
    let evaluator = alerts::spawn_evaluator(state.clone(), alerts::EVALUATION_INTERVAL);
    let notifier = notifier::spawn_notifier(state.clone(), notifier::DELIVERY_INTERVAL);
    let purger = settings::general::spawn_purger(state.clone(), settings::general::PURGE_INTERVAL);
    let backups = backup::spawn_backup_scheduler(state.clone());
    let invoicing = billing::invoices::schedule::spawn(state.clone());
    let app = router(state.clone());
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    evaluator.abort();
    notifier.abort();
    purger.abort();
    backups.abort();
    invoicing.abort();
    // Hand the singleton jobs over now rather than after the lease TTL.
    cluster::release_all(&state).await;
    served
}

/// Binds the configured API address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}
