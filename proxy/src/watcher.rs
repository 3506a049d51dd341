//! Keeps the snapshot current: long-polls the control plane (`?after=<version>`), or watches a
//! static YAML file. Failures keep the last good snapshot in force; traffic never stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use medgate_config::Snapshot;

use crate::control_plane::ControlPlanes;
use crate::shared::Shared;

/// Long-polls `GET {url}/api/internal/snapshot` until `shutdown` resolves.
pub async fn watch_control_plane(
    shared: Arc<Shared>,
    control_planes: Arc<ControlPlanes>,
    token: Option<String>,
    mut shutdown: impl std::future::Future<Output = ()> + Unpin,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap_or_default();
    let mut backoff = Duration::from_millis(200);
    loop {
        let after = shared.version();
        let url = control_planes.url();
        let mut request = http.get(format!("{url}/api/internal/snapshot"));
        if let Some(v) = after {
            request = request.query(&[("after", v.to_string()), ("wait_secs", "25".to_owned())]);
        }
        if let Some(t) = &token {
            request = request.bearer_auth(t);
        }
        let outcome = tokio::select! {
            r = request.send() => r,
            () = &mut shutdown => return,
        };
        let wait = match outcome {
            Ok(r) if r.status() == reqwest::StatusCode::NO_CONTENT => None,
            Ok(r) if r.status().is_success() => match r.json::<Snapshot>().await {
                Ok(snapshot) => {
                    if let Err(e) = shared.install(snapshot) {
                        tracing::error!(error = %e, "control plane sent an invalid snapshot; keeping the current one");
                        Some(Duration::from_secs(5))
                    } else {
                        backoff = Duration::from_millis(200);
                        None
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable snapshot");
                    Some(backoff)
                }
            },
            Ok(r) => {
                tracing::warn!(status = %r.status(), "control plane refused the snapshot request");
                Some(Duration::from_secs(5))
            }
            Err(e) => {
                control_planes.failed(&url);
                tracing::debug!(error = %e, "control plane unreachable; keeping the current snapshot");
                Some(backoff)
            }
        };
        if let Some(wait) = wait {
            backoff = (backoff * 2).min(Duration::from_secs(5));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return,
            }
        }
    }
}

/// Reloads a static gateway file when it changes (checked every 500 ms).
pub async fn watch_file(
    shared: Arc<Shared>,
    path: PathBuf,
    mut shutdown: impl std::future::Future<Output = ()> + Unpin,
) {
    let mut last_seen = None;
    loop {
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified != last_seen {
            last_seen = modified;
            match crate::static_config::load(&path, shared.version().unwrap_or(0) + 1) {
                Ok(snapshot) => {
                    if let Err(e) = shared.install(snapshot) {
                        tracing::error!(error = %e, path = %path.display(), "invalid gateway file; keeping the current config");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, path = %path.display(), "unreadable gateway file; keeping the current config")
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = &mut shutdown => return,
        }
    }
}

/// Keeps the funds of gated tenants current: long-polls `GET {url}/api/internal/balances`
/// (`?after=<cursor>`), asking at once instead while a delivered usage cost waits for the
/// feed to show its debit. On failure the last known funds stay in force.
pub async fn watch_funds(
    funds: Arc<crate::funds::Funds>,
    control_planes: Arc<ControlPlanes>,
    token: Option<String>,
    mut shutdown: impl std::future::Future<Output = ()> + Unpin,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap_or_default();
    let mut cursor = 0u64;
    let mut backoff = Duration::from_millis(200);
    loop {
        let epoch = funds.epoch();
        let wait_secs = if cursor == 0 || funds.awaiting_feed() {
            0
        } else {
            25
        };
        let url = control_planes.url();
        let mut request = http.get(format!("{url}/api/internal/balances")).query(&[
            ("after", cursor.to_string()),
            ("wait_secs", wait_secs.to_string()),
        ]);
        if let Some(t) = &token {
            request = request.bearer_auth(t);
        }
        let outcome = tokio::select! {
            r = request.send() => r,
            () = &mut shutdown => return,
        };
        let retry = match outcome {
            Ok(r) if r.status().is_success() => {
                match r.json::<medgate_config::FundsFeed>().await {
                    Ok(feed) => {
                        funds.apply(&feed.funds, epoch);
                        cursor = feed.cursor;
                        backoff = Duration::from_millis(200);
                        // Nothing new and nothing waiting: a short pause keeps an immediate
                        // answer from turning into a busy loop.
                        (wait_secs == 0).then_some(Duration::from_millis(100))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable funds feed");
                        Some(backoff)
                    }
                }
            }
            Ok(r) => {
                tracing::debug!(status = %r.status(), "control plane refused the funds feed");
                Some(Duration::from_secs(5))
            }
            Err(e) => {
                control_planes.failed(&url);
                tracing::debug!(error = %e, "control plane unreachable; keeping the known funds");
                Some(backoff)
            }
        };
        if let Some(wait) = retry {
            backoff = (backoff * 2).min(Duration::from_secs(5));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return,
            }
        }
    }
}
