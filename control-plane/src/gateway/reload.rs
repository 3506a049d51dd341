//! `POST /api/gateway/reload`: makes every proxy fetch the latest snapshot and reports which
//! did.
//!
//! The reload bumps the snapshot version: every proxy long-polls `?after=<its version>`, so a
//! new version wakes them all at once, and the content is recompiled from the store, so a proxy
//! that somehow held different content gets the current one. Proxies send a heartbeat right
//! after applying a snapshot, so within a moment their heartbeats carry the new version; the
//! answer waits for that, up to [`WAIT`].

use std::time::Duration;

use serde::Serialize;

use super::instances::{self, InstanceStatus};
use crate::error::ApiResult;
use crate::store::{self, Store};

/// Longest wait for live instances to report the new version.
const WAIT: Duration = Duration::from_secs(3);

/// What a reload achieved.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReloadReport {
    /// The snapshot version every proxy was asked to apply.
    pub target_version: u64,
    /// Live instances whose heartbeat reports that version or a later one.
    pub applied: Vec<InstanceStatus>,
    /// Live instances that had not reported it when the wait ended. Stale instances are in
    /// neither list.
    pub pending: Vec<InstanceStatus>,
    /// Whether every live instance applied it.
    pub complete: bool,
    pub waited_ms: u64,
}

/// Bumps the version, then waits for live instances to report it.
pub async fn reload(store: &Store) -> ApiResult<ReloadReport> {
    let mut tx = store.begin().await?;
    let target = store::bump_config_version(&mut tx).await?;
    tx.commit().await?;
    let started = tokio::time::Instant::now();
    loop {
        let (applied, pending): (Vec<_>, Vec<_>) = instances::list(store)
            .await?
            .into_iter()
            .filter(|i| !i.stale)
            .partition(|i| i.applied_version.is_some_and(|v| v >= target));
        let waited = started.elapsed();
        if pending.is_empty() || waited >= WAIT {
            return Ok(ReloadReport {
                target_version: target,
                complete: pending.is_empty(),
                applied,
                pending,
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
