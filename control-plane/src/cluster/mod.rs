//! Running as one of several control planes on a shared PostgreSQL (cluster mode).
//!
//! Every control plane serves the whole API; the proxies' long-polls read the shared store,
//! so a change made through any control plane reaches every proxy. Background jobs that must
//! run once cluster-wide (alert evaluation, retention purges, scheduled backups) run under a
//! lease ([`lease`]): each tick, the job runs only on the control plane holding the job's
//! lease, renewed by that tick. A control plane that dies stops renewing; another takes the
//! lease over after [`LEASE_TTL`]. On one node (SQLite) the lease is always this process's.

pub mod lease;
mod routes;

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use routes::routes;

use crate::state::AppState;

/// How long a lease outlives its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);

/// This control-plane process, as lease holder.
pub static INSTANCE_ID: LazyLock<String> = LazyLock::new(|| {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let id = uuid::Uuid::now_v7().simple().to_string();
    if host.is_empty() {
        id
    } else {
        format!("{host}-{}", &id[id.len() - 8..])
    }
});

/// Runs `job` every `every` (first one period after the start) on whichever control plane
/// holds lease `name` (see [`JobLease`]).
pub fn spawn_singleton<F, Fut>(
    state: AppState,
    name: &'static str,
    every: Duration,
    job: F,
) -> JoinHandle<()>
where
    F: Fn(AppState) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut lease = JobLease::new(name, every);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if lease.held(&state).await {
                job(state.clone()).await;
            }
        }
    })
}

/// The lease of one singleton job that runs every `every`, as seen by this control plane.
/// The lease lives [`LEASE_TTL`] or three periods, whichever is longer, so a slow tick does
/// not lose it.
#[derive(Debug)]
pub struct JobLease {
    name: &'static str,
    ttl: Duration,
    leading: bool,
}

impl JobLease {
    pub fn new(name: &'static str, every: Duration) -> Self {
        Self {
            name,
            ttl: LEASE_TTL.max(every * 3),
            leading: false,
        }
    }

    /// Takes or renews the lease; true when this control plane is to run the job now.
    pub async fn held(&mut self, state: &AppState) -> bool {
        let held = match lease::try_hold(state.store(), self.name, &INSTANCE_ID, self.ttl).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(job = self.name, error = %e, "lease check failed; skipping a tick");
                false
            }
        };
        if held != self.leading {
            tracing::info!(job = self.name, instance = %*INSTANCE_ID, leading = held, "job lease changed hands");
            self.leading = held;
        }
        held
    }
}

/// Gives up every lease this process holds (on a clean stop, so another control plane takes
/// the jobs over at its next tick instead of after the TTL).
pub async fn release_all(state: &AppState) {
    if let Ok(leases) = lease::list(state.store()).await {
        for l in leases.iter().filter(|l| l.holder == *INSTANCE_ID) {
            let _ = lease::release(state.store(), &l.name, &INSTANCE_ID).await;
        }
    }
}
