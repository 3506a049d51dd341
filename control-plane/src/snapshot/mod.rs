//! The snapshot compiler and the endpoint the data plane watches (DESIGN.md §3.1).
//!
//! `GET /api/internal/snapshot?after=<version>` long-polls: it answers as soon as the store's
//! version exceeds `after` (checked every 200 ms, which also covers changes made by other
//! control-plane replicas), or 204 when nothing changed within the wait.

mod compile;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use medgate_config::Snapshot;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::api::extract::ApiQuery;
use crate::api::{ApiBuilder, Endpoint};
use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::notifier::sealed::SealKey;
use crate::state::AppState;
use crate::store::Store;

pub use compile::compile;

/// Compiles snapshots on demand and shares the latest among concurrent watchers.
pub struct SnapshotHub {
    store: Store,
    /// Opens domain certificates' private keys; None without a server secret.
    seal: Option<SealKey>,
    latest: Mutex<Option<Arc<Snapshot>>>,
}

impl SnapshotHub {
    pub fn new(store: Store, seal: Option<SealKey>) -> Self {
        Self {
            store,
            seal,
            latest: Mutex::new(None),
        }
    }

    /// The snapshot at the store's current version (compiled once per version).
    pub async fn current(&self) -> ApiResult<Arc<Snapshot>> {
        let version = self.store.config_version().await?;
        let mut latest = self.latest.lock().await;
        if let Some(s) = latest.as_ref().filter(|s| s.version == version) {
            return Ok(s.clone());
        }
        let snapshot = Arc::new(compile(&self.store, self.seal.as_ref()).await?);
        *latest = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// Waits until the version exceeds `after`, up to `wait`.
    /// The store is asked once; then the control plane's shared watermark (`versions`, see
    /// [`crate::changes`]) wakes the wait.
    pub async fn newer_than(
        &self,
        after: u64,
        wait: Duration,
        mut versions: tokio::sync::watch::Receiver<u64>,
    ) -> ApiResult<Option<Arc<Snapshot>>> {
        let deadline = tokio::time::Instant::now() + wait;
        if self.store.config_version().await? > after
            || crate::changes::wait_above(&mut versions, after, deadline).await
        {
            return self.current().await.map(Some);
        }
        Ok(None)
    }
}

/// Query of the snapshot endpoint.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    /// Answer only with a version newer than this (long-poll); absent means "now".
    pub after: Option<u64>,
    /// Longest wait in seconds, 0 to 60 (default 30).
    pub wait_secs: Option<u64>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/internal/snapshot",
            "internal.snapshot",
            "Compiled data-plane snapshot (long-poll with ?after=)",
        )
        .access(Access::Node)
        .resource("snapshot")
        .query::<SnapshotQuery>()
        .response::<Snapshot>(),
        get_snapshot,
    )
}

async fn get_snapshot(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
) -> ApiResult<Response> {
    let wait = q.wait_secs.unwrap_or(30);
    if wait > 60 {
        return Err(ApiError::invalid("wait_secs", "must be between 0 and 60"));
    }
    let snapshot = match q.after {
        None => Some(state.snapshots().current().await?),
        Some(after) => {
            state
                .snapshots()
                .newer_than(after, Duration::from_secs(wait), state.changes().config())
                .await?
        }
    };
    Ok(match snapshot {
        Some(s) => Json(s.as_ref().clone()).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}
