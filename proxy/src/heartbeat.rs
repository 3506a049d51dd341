//! Reports this instance to the control plane (`POST /api/internal/heartbeat`): every
//! [`HEARTBEAT_INTERVAL_SECS`], and right after a new snapshot is applied, so that
//! `POST /api/gateway/reload` can tell within a moment which proxies took the new version.
//! A failed heartbeat is only logged: the control plane marks a silent instance stale.
//! Heartbeats also carry the protection report (breaker states, per-service figures since the
//! previous heartbeat, rate-limit refusals), and a breaker transition sends one at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use medgate_config::node::HEARTBEAT_INTERVAL_SECS;
use medgate_config::Heartbeat;

use crate::control_plane::ControlPlanes;
use crate::instance::Instance;
use crate::shared::Shared;

/// How often the applied snapshot version is checked for a change.
const VERSION_CHECK: Duration = Duration::from_millis(100);

/// Sends heartbeats until `shutdown` resolves.
pub async fn run(
    instance: Arc<Instance>,
    shared: Arc<Shared>,
    control_planes: Arc<ControlPlanes>,
    token: Option<String>,
    mut shutdown: impl std::future::Future<Output = ()> + Unpin,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let interval = Duration::from_secs(HEARTBEAT_INTERVAL_SECS);
    let mut rate = RateMeter::new(instance.requests_total());
    let mut reported_version = None;
    let mut last_sent: Option<Instant> = None;
    let mut transitions = shared.protection.breakers.transitions();
    loop {
        let version = shared.version();
        let due = last_sent.is_none_or(|t| t.elapsed() >= interval);
        // A breaker that opened or closed is reported at once, not at the next interval.
        let breaker_moved = transitions.has_changed().unwrap_or(false);
        if breaker_moved {
            transitions.borrow_and_update();
        }
        if due || version != reported_version || breaker_moved {
            let (breakers, services) = shared.protection.reports();
            let total = instance.requests_total();
            let beat = Heartbeat {
                instance_id: instance.id.clone(),
                address: instance.address.clone(),
                snapshot_version: version,
                started_at: instance.started_at.clone(),
                requests_total: total,
                requests_per_sec: rate.per_sec(total),
                breakers,
                services,
                rate_limited_total: shared.protection.rate_limited_total(),
            };
            let url = control_planes.url();
            let mut request = http
                .post(format!("{url}/api/internal/heartbeat"))
                .json(&beat);
            if let Some(t) = &token {
                request = request.bearer_auth(t);
            }
            let sent = tokio::select! {
                r = request.send() => r,
                () = &mut shutdown => return,
            };
            match sent {
                Ok(r) if r.status().is_success() => reported_version = version,
                Ok(r) => {
                    tracing::warn!(status = %r.status(), "control plane refused the heartbeat")
                }
                Err(e) => {
                    control_planes.failed(&url);
                    tracing::debug!(error = %e, "heartbeat not delivered");
                }
            }
            // Even after a failure: retry at the normal pace, not in a tight loop.
            last_sent = Some(Instant::now());
        }
        tokio::select! {
            () = tokio::time::sleep(VERSION_CHECK) => {}
            () = &mut shutdown => return,
        }
    }
}

/// Requests per second between two readings of the counter.
struct RateMeter {
    total: u64,
    at: Instant,
}

impl RateMeter {
    fn new(total: u64) -> Self {
        Self {
            total,
            at: Instant::now(),
        }
    }

    fn per_sec(&mut self, total: u64) -> f64 {
        let elapsed = self.at.elapsed().as_secs_f64();
        let delta = total.saturating_sub(self.total);
        self.total = total;
        self.at = Instant::now();
        if elapsed <= 0.0 {
            return 0.0;
        }
        // Two decimals are plenty for a dashboard and keep the JSON short.
        ((delta as f64 / elapsed) * 100.0).round() / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_requests_over_the_interval() {
        let mut m = RateMeter {
            total: 100,
            at: Instant::now() - Duration::from_secs(2),
        };
        let r = m.per_sec(300);
        assert!((99.0..=100.0).contains(&r), "{r}");
        assert_eq!(m.total, 300);
    }
}
