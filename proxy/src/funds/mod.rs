//! The money gate of the data plane (DESIGN.md §4 step 5; issue 5): a tenant on a spending
//! limit whose balance plus overdraft is spent gets 402.
//!
//! The control plane debits usage when it ingests usage events; the proxy learns each gated
//! tenant's spendable amount from the funds feed. Between the two, the proxy counts what it
//! knows and the feed does not yet show:
//! * `reserved`: the estimated cost of requests in flight, taken before forwarding (a request
//!   whose estimate does not fit in what is left is refused) and released when it ends;
//! * `pending`: the actual cost of finished requests until the feed reflects their debit. A
//!   request's debit is in the balances once the control plane accepted its usage event (the
//!   sink reports it: [`Funds::delivered`]); the first feed answer fetched after that shows it,
//!   and the pending amount is dropped then.
//!
//! So a tenant can overshoot its limit by at most the difference between the actual and the
//! estimated cost of the requests in flight when it ran out (the estimate counts `max_tokens`,
//! or 512 output tokens when the request sets none). Without a feed (static mode) nothing is
//! gated.
//!
//! With Redis (cluster mode) the proxies share their holds ([`cluster`]): a reservation must
//! fit in what is left after every live proxy's holds, so the bound above holds for the
//! cluster, not per proxy. While Redis is unreachable each proxy decides alone (the bound is
//! then per proxy again) and republishes its holds once Redis answers. A cost whose debit a
//! proxy's feed already shows stays published for [`LINGER`] more, so a proxy whose feed is
//! a moment older does not count it as spendable again (it can only refuse a little early).

pub mod cluster;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medgate_config::FundsEntry;
use tokio::sync::mpsc;

pub use cluster::ClusterHolds;

/// How long a cost the feed shows stays in the published holds.
pub const LINGER: Duration = Duration::from_secs(2);

const MICROS_PER_MINOR: i128 = 1_000_000;

#[derive(Debug, Default)]
struct TenantFunds {
    spendable_micros: i128,
    reserved_micros: i128,
    pending_micros: i128,
    /// Costs the feed shows, still published until their deadline (cluster mode only).
    lingering: VecDeque<(Instant, i128)>,
}

impl TenantFunds {
    /// What this proxy counts against the feed's spendable amount.
    fn counted(&self) -> i128 {
        self.reserved_micros + self.pending_micros
    }

    fn available(&self) -> i128 {
        self.spendable_micros - self.counted()
    }

    /// What this proxy publishes to the other proxies.
    fn published(&self) -> i128 {
        self.counted() + self.lingering.iter().map(|(_, m)| m).sum::<i128>()
    }
}

#[derive(Debug)]
struct Pending {
    tenant_id: String,
    micros: i128,
    /// The delivery epoch in which the control plane accepted the usage event.
    delivered_in: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// Gated tenants only.
    tenants: HashMap<String, TenantFunds>,
    /// By request id.
    pending: HashMap<String, Pending>,
    /// Sequence of published holds (taken with the value, under the lock).
    seq: u64,
}

impl State {
    /// This proxy's hold of `tenant_id` for publishing, with its sequence number.
    fn snapshot_hold(&mut self, tenant_id: &str) -> (i128, u64) {
        self.seq += 1;
        let held = self
            .tenants
            .get(tenant_id)
            .map_or(0, TenantFunds::published);
        (held, self.seq)
    }
}

/// Funds of gated tenants, shared by all requests.
#[derive(Debug, Default)]
pub struct Funds {
    state: Mutex<State>,
    /// Bumped on every accepted usage delivery.
    epoch: AtomicU64,
    cluster: Option<Cluster>,
}

/// The cluster side: the shared holds and the queue of tenants whose hold changed.
#[derive(Debug)]
struct Cluster {
    holds: ClusterHolds,
    changed: mpsc::UnboundedSender<String>,
    changed_rx: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    /// Reservations decided by this proxy alone because Redis did not answer.
    unshared: AtomicU64,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    pub available_minor: i64,
}

/// An estimate held while a request runs; released when dropped unless settled.
#[derive(Debug)]
pub struct Reservation {
    funds: Arc<Funds>,
    tenant_id: String,
    micros: i128,
    settled: bool,
}

impl Funds {
    /// Funds of this proxy alone (`None`) or shared with the cluster's proxies through Redis;
    /// in the latter case run [`Funds::publish_until`] in the background.
    pub fn new(cluster: Option<ClusterHolds>) -> Self {
        Self {
            cluster: cluster.map(|holds| {
                let (changed, rx) = mpsc::unbounded_channel();
                Cluster {
                    holds,
                    changed,
                    changed_rx: Mutex::new(Some(rx)),
                    unshared: AtomicU64::new(0),
                }
            }),
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a republish of the tenant's hold (cluster mode).
    fn changed(&self, tenant_id: &str) {
        if let Some(c) = &self.cluster {
            // The receiver lives as long as the publisher; without one there is no cluster.
            let _ = c.changed.send(tenant_id.to_owned());
        }
    }

    /// Reservations this proxy admitted alone because Redis did not answer.
    pub fn unshared_decisions(&self) -> u64 {
        self.cluster
            .as_ref()
            .map_or(0, |c| c.unshared.load(Ordering::Relaxed))
    }

    /// The current delivery epoch: take it before fetching the feed.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Takes in a feed answer fetched after `epoch` was read: new spendable amounts (a tenant
    /// without a limit stops being gated), and drops the pending costs delivered before the
    /// fetch began (the answer includes their debits).
    pub fn apply(&self, funds: &[FundsEntry], epoch: u64) {
        let mut changed = Vec::new();
        {
            let mut state = self.lock();
            for f in funds {
                match f.spendable_minor {
                    Some(minor) => {
                        state
                            .tenants
                            .entry(f.tenant_id.clone())
                            .or_default()
                            .spendable_micros = i128::from(minor) * MICROS_PER_MINOR;
                    }
                    None => {
                        if state.tenants.remove(&f.tenant_id).is_some() {
                            changed.push(f.tenant_id.clone());
                        }
                    }
                }
            }
            let linger = self.cluster.as_ref().map(|_| Instant::now() + LINGER);
            let State {
                tenants, pending, ..
            } = &mut *state;
            pending.retain(|_, p| {
                let reflected = p.delivered_in.is_some_and(|d| d <= epoch);
                if reflected {
                    if let Some(t) = tenants.get_mut(&p.tenant_id) {
                        t.pending_micros -= p.micros;
                        if let Some(until) = linger {
                            t.lingering.push_back((until, p.micros));
                        }
                    }
                }
                !reflected
            });
        }
        for tenant_id in changed {
            self.changed(&tenant_id);
        }
    }

    /// Whether some delivered cost waits for a feed answer (then the feed is asked at once
    /// instead of long-polling).
    pub fn awaiting_feed(&self) -> bool {
        self.lock()
            .pending
            .values()
            .any(|p| p.delivered_in.is_some())
    }

    /// Reserves `estimate_micros` for a request of `tenant_id`; None when the tenant is not
    /// gated; refused when the estimate does not fit in what is left (in cluster mode: after
    /// the other proxies' holds too).
    pub async fn reserve(
        self: &Arc<Self>,
        tenant_id: &str,
        estimate_micros: i64,
    ) -> Result<Option<Reservation>, Exhausted> {
        let estimate = i128::from(estimate_micros.max(0));
        let (reservation, check, held, seq) = {
            let mut state = self.lock();
            let Some(t) = state.tenants.get_mut(tenant_id) else {
                return Ok(None);
            };
            let available = t.available();
            if available <= 0 || available < estimate {
                return Err(exhausted(available));
            }
            let check = cluster::Check {
                spendable: t.spendable_micros,
                counted: t.counted(),
                estimate,
            };
            t.reserved_micros += estimate;
            let (held, seq) = state.snapshot_hold(tenant_id);
            let reservation = Reservation {
                funds: Arc::clone(self),
                tenant_id: tenant_id.to_owned(),
                micros: estimate,
                settled: false,
            };
            (reservation, check, held, seq)
        };
        let Some(cluster) = &self.cluster else {
            return Ok(Some(reservation));
        };
        match cluster
            .holds
            .publish(tenant_id, held, seq, Some(check))
            .await
        {
            Ok(p) if !p.admitted => {
                drop(reservation);
                Err(exhausted(check.spendable - p.others - check.counted))
            }
            Ok(_) => Ok(Some(reservation)),
            Err(e) => {
                cluster.unshared.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "spending holds not shared; deciding alone");
                // Republished once Redis answers again (the refresh loop).
                Ok(Some(reservation))
            }
        }
    }

    /// Publishes this proxy's holds while the proxy runs (cluster mode; returns at once
    /// otherwise): each changed hold at once, and every live one before it expires.
    pub async fn publish_until(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let Some(mut changed) = cluster
            .changed_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let mut tick = tokio::time::interval(cluster.holds.refresh_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            let tenants: Vec<String> = tokio::select! {
                () = &mut shutdown => return,
                Some(first) = changed.recv() => {
                    let mut batch = vec![first];
                    while let Ok(more) = changed.try_recv() {
                        if !batch.contains(&more) {
                            batch.push(more);
                        }
                    }
                    batch
                }
                _ = tick.tick() => self.live_holds(),
            };
            for tenant_id in tenants {
                let (held, seq) = self.lock().snapshot_hold(&tenant_id);
                if let Err(e) = cluster.holds.publish(&tenant_id, held, seq, None).await {
                    tracing::debug!(error = %e, tenant = %tenant_id, "hold not published");
                }
            }
        }
    }

    /// Tenants with a non-zero hold (to refresh), after dropping lingering costs whose time
    /// is up (their tenants are refreshed too, so the drop is published).
    fn live_holds(&self) -> Vec<String> {
        let now = Instant::now();
        let mut state = self.lock();
        state
            .tenants
            .iter_mut()
            .filter_map(|(id, t)| {
                let before = t.lingering.len();
                while t.lingering.front().is_some_and(|(until, _)| *until <= now) {
                    t.lingering.pop_front();
                }
                (t.published() != 0 || t.lingering.len() != before).then(|| id.clone())
            })
            .collect()
    }

    /// The control plane accepted these usage events: their debits are in the balances.
    pub fn delivered<'a>(&self, request_ids: impl Iterator<Item = &'a str>) {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let mut state = self.lock();
        if state.pending.is_empty() {
            return;
        }
        for id in request_ids {
            if let Some(p) = state.pending.get_mut(id) {
                p.delivered_in = Some(epoch);
            }
        }
    }

    fn release(&self, tenant_id: &str, micros: i128) {
        if let Some(t) = self.lock().tenants.get_mut(tenant_id) {
            t.reserved_micros -= micros;
        }
        self.changed(tenant_id);
    }
}

fn exhausted(available_micros: i128) -> Exhausted {
    Exhausted {
        available_minor: i64::try_from(available_micros.div_euclid(MICROS_PER_MINOR))
            .unwrap_or(i64::MIN),
    }
}

impl Reservation {
    /// The request ended costing `actual_micros`: the estimate is released and the actual
    /// cost counted until the feed shows the debit of `request_id`.
    pub fn settle(mut self, request_id: &str, actual_micros: i64) {
        self.settled = true;
        let actual = i128::from(actual_micros.max(0));
        {
            let mut state = self.funds.lock();
            let Some(t) = state.tenants.get_mut(&self.tenant_id) else {
                return;
            };
            t.reserved_micros -= self.micros;
            if actual > 0 {
                t.pending_micros += actual;
                state.pending.insert(
                    request_id.to_owned(),
                    Pending {
                        tenant_id: self.tenant_id.clone(),
                        micros: actual,
                        delivered_in: None,
                    },
                );
            }
        }
        self.funds.changed(&self.tenant_id);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.funds.release(&self.tenant_id, self.micros);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gated(tenant: &str, minor: Option<i64>) -> FundsEntry {
        FundsEntry {
            tenant_id: tenant.into(),
            spendable_minor: minor,
            currency: "CNY".into(),
        }
    }

    #[tokio::test]
    async fn an_estimate_that_does_not_fit_is_refused() {
        let funds = Arc::new(Funds::default());
        funds.apply(&[gated("t", Some(1))], funds.epoch()); // 1,000,000 micros
        let a = funds
            .reserve("t", 600_000)
            .await
            .expect("fits")
            .expect("gated");
        assert!(
            funds.reserve("t", 600_000).await.is_err(),
            "only 400,000 left"
        );
        drop(a);
        assert!(funds.reserve("t", 600_000).await.is_ok(), "released");
        assert!(
            funds.reserve("other", 10).await.expect("ok").is_none(),
            "not gated"
        );
    }

    #[tokio::test]
    async fn a_finished_cost_counts_until_the_feed_shows_its_debit() {
        let funds = Arc::new(Funds::default());
        funds.apply(&[gated("t", Some(1))], funds.epoch());
        let r = funds
            .reserve("t", 500_000)
            .await
            .expect("fits")
            .expect("gated");
        r.settle("req-1", 700_000);
        assert!(funds.reserve("t", 400_000).await.is_err(), "300,000 left");
        // A feed answer fetched before the delivery still counts the pending cost.
        let before = funds.epoch();
        funds.delivered(["req-1"].into_iter());
        assert!(funds.awaiting_feed());
        funds.apply(&[gated("t", Some(1))], before);
        assert!(funds.reserve("t", 400_000).await.is_err());
        // Fetched after the delivery: the balance (now 0.3 minor after the debit) includes it.
        let after = funds.epoch();
        funds.apply(&[gated("t", Some(0))], after);
        assert!(!funds.awaiting_feed());
        assert!(funds.reserve("t", 1).await.is_err(), "spent");
        funds.apply(&[gated("t", None)], funds.epoch());
        assert!(
            funds.reserve("t", 1).await.expect("ok").is_none(),
            "no limit any more"
        );
    }
}

#[cfg(test)]
mod cluster_tests;
