//! Bulkheads (API §1.4, resilience.md §4.2): caps on a tenant's concurrent requests, overall
//! and per model, with a bounded waiting queue; and a cap on a tenant's share of a shared
//! upstream.
//!
//! Compartments are created on first use for tenants whose isolation policy sets a cap, so
//! their number is bounded by the configured tenants (only authenticated requests get here).
//! A policy change gives the tenant fresh compartments; requests already inside keep the old
//! ones until they finish, so for that moment the old and new caps add up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use medgate_config::snapshot::IsolationEntry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkheadRefusal {
    /// Every slot is taken and the queue is full (or there is none).
    Full { scope: &'static str, limit: u32 },
    /// The request waited `queue_timeout_ms` without a slot freeing up.
    QueueTimeout { scope: &'static str, limit: u32 },
}

/// Slots held by one request; released when dropped.
#[derive(Debug, Default)]
pub struct BulkheadPass {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl BulkheadPass {
    fn add(&mut self, permit: OwnedSemaphorePermit) {
        self._permits.push(permit);
    }
}

/// One capped compartment.
#[derive(Debug)]
struct Compartment {
    slots: Arc<Semaphore>,
    limit: u32,
    queue_depth: u32,
    queue_timeout: Duration,
    waiting: AtomicU32,
}

impl Compartment {
    fn new(limit: u32, iso: &IsolationEntry) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit as usize)),
            limit,
            queue_depth: iso.max_queue_depth.unwrap_or(0),
            queue_timeout: Duration::from_millis(iso.queue_timeout_ms.unwrap_or(0)),
            waiting: AtomicU32::new(0),
        }
    }

    fn same_shape(&self, limit: u32, iso: &IsolationEntry) -> bool {
        self.limit == limit
            && self.queue_depth == iso.max_queue_depth.unwrap_or(0)
            && self.queue_timeout == Duration::from_millis(iso.queue_timeout_ms.unwrap_or(0))
    }

    async fn enter(&self, scope: &'static str) -> Result<OwnedSemaphorePermit, BulkheadRefusal> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        let full = BulkheadRefusal::Full {
            scope,
            limit: self.limit,
        };
        // Join the queue only while it has room (counted, so the bound holds under races).
        let joined = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < self.queue_depth).then_some(w + 1)
            });
        if joined.is_err() || self.queue_timeout.is_zero() {
            if joined.is_ok() {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
            }
            return Err(full);
        }
        let waited =
            tokio::time::timeout(self.queue_timeout, Arc::clone(&self.slots).acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(full),
            Err(_elapsed) => Err(BulkheadRefusal::QueueTimeout {
                scope,
                limit: self.limit,
            }),
        }
    }
}

/// Every tenant's compartments and in-flight counts on shared upstreams.
#[derive(Debug, Default)]
pub struct Bulkheads {
    compartments: Mutex<HashMap<String, Arc<Compartment>>>,
    upstream_inflight: Mutex<HashMap<(String, String), Arc<AtomicU32>>>,
}

impl Bulkheads {
    /// Takes a slot of the tenant's overall compartment, waiting in its queue if configured.
    pub async fn enter_tenant(
        &self,
        iso: &IsolationEntry,
        tenant_id: &str,
        pass: &mut BulkheadPass,
    ) -> Result<(), BulkheadRefusal> {
        let Some(limit) = iso.max_concurrent_requests else {
            return Ok(());
        };
        let compartment = self.compartment(tenant_id.to_owned(), limit, iso);
        pass.add(compartment.enter("tenant").await?);
        Ok(())
    }

    /// Takes a slot of the tenant x model compartment, if the policy caps that model.
    pub async fn enter_model(
        &self,
        iso: &IsolationEntry,
        tenant_id: &str,
        model: &str,
        pass: &mut BulkheadPass,
    ) -> Result<(), BulkheadRefusal> {
        let Some(&limit) = iso.max_concurrent_per_model.get(model) else {
            return Ok(());
        };
        let compartment = self.compartment(format!("{tenant_id}\u{1f}{model}"), limit, iso);
        pass.add(compartment.enter("tenant_model").await?);
        Ok(())
    }

    fn compartment(&self, key: String, limit: u32, iso: &IsolationEntry) -> Arc<Compartment> {
        let mut map = self
            .compartments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match map.get(&key) {
            Some(c) if c.same_shape(limit, iso) => Arc::clone(c),
            _ => {
                let c = Arc::new(Compartment::new(limit, iso));
                map.insert(key, Arc::clone(&c));
                c
            }
        }
    }

    /// Counts the tenant on an upstream if it stays within `cap` in-flight requests there;
    /// None when the cap is reached.
    pub fn take_upstream_share(
        &self,
        tenant_id: &str,
        upstream: &str,
        cap: u32,
    ) -> Option<UpstreamShare> {
        let counter = {
            let mut map = self
                .upstream_inflight
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(
                map.entry((tenant_id.to_owned(), upstream.to_owned()))
                    .or_default(),
            )
        };
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()?;
        Some(UpstreamShare { counter })
    }

    /// Forgets compartments and counters of tenants no longer in the configuration.
    pub fn retain_tenants(&self, keep: &dyn Fn(&str) -> bool) {
        let tenant_of = |key: &str| key.split('\u{1f}').next().unwrap_or_default().to_owned();
        self.compartments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|k, _| keep(&tenant_of(k)));
        self.upstream_inflight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|(t, _), c| keep(t) || c.load(Ordering::Acquire) > 0);
    }
}

/// The cap on a tenant's in-flight requests to one upstream: `pct` of its sized concurrency,
/// at least one request.
pub fn share_cap(pct: u8, max_concurrency: u32) -> u32 {
    ((u64::from(max_concurrency) * u64::from(pct.min(100))) / 100).max(1) as u32
}

/// One in-flight request of a tenant on an upstream; released when dropped.
#[derive(Debug)]
pub struct UpstreamShare {
    counter: Arc<AtomicU32>,
}

impl Drop for UpstreamShare {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max: u32, queue: u32, timeout_ms: u64) -> IsolationEntry {
        IsolationEntry {
            policy_id: "iso".into(),
            max_concurrent_requests: Some(max),
            max_concurrent_per_model: [("m".to_owned(), 1)].into_iter().collect(),
            max_queue_depth: Some(queue),
            queue_timeout_ms: Some(timeout_ms),
            max_share_of_upstream_pct: None,
            allowed_cidrs: vec![],
            dedicated_pool: None,
            spillover_to_shared: false,
        }
    }

    #[tokio::test]
    async fn the_request_past_the_cap_is_refused_when_there_is_no_queue() {
        let b = Bulkheads::default();
        let iso = policy(2, 0, 0);
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut pass = BulkheadPass::default();
            b.enter_tenant(&iso, "a", &mut pass).await.expect("room");
            held.push(pass);
        }
        let mut pass = BulkheadPass::default();
        assert_eq!(
            b.enter_tenant(&iso, "a", &mut pass).await,
            Err(BulkheadRefusal::Full {
                scope: "tenant",
                limit: 2
            })
        );
        // Another tenant has its own compartment.
        b.enter_tenant(&iso, "b", &mut pass).await.expect("b");
        held.pop();
        let mut pass = BulkheadPass::default();
        b.enter_tenant(&iso, "a", &mut pass)
            .await
            .expect("slot freed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_gets_the_next_free_slot_or_times_out() {
        let b = Arc::new(Bulkheads::default());
        let iso = policy(1, 1, 1_000);
        let mut first = BulkheadPass::default();
        b.enter_tenant(&iso, "a", &mut first).await.expect("room");
        // The queue holds one: a third request is refused at once.
        let waiter = {
            let (b, iso) = (Arc::clone(&b), iso.clone());
            tokio::spawn(async move {
                let mut pass = BulkheadPass::default();
                b.enter_tenant(&iso, "a", &mut pass).await.map(|()| pass)
            })
        };
        tokio::task::yield_now().await;
        let mut third = BulkheadPass::default();
        assert!(matches!(
            b.enter_tenant(&iso, "a", &mut third).await,
            Err(BulkheadRefusal::Full { .. })
        ));
        drop(first);
        assert!(
            waiter.await.expect("join").is_ok(),
            "queued one got the slot"
        );

        let mut holder = BulkheadPass::default();
        b.enter_tenant(&iso, "a", &mut holder).await.expect("room");
        let mut late = BulkheadPass::default();
        assert!(matches!(
            b.enter_tenant(&iso, "a", &mut late).await,
            Err(BulkheadRefusal::QueueTimeout { .. })
        ));
    }

    #[tokio::test]
    async fn per_model_caps_only_the_named_model() {
        let b = Bulkheads::default();
        let iso = policy(10, 0, 0);
        let mut one = BulkheadPass::default();
        b.enter_model(&iso, "a", "m", &mut one).await.expect("room");
        let mut two = BulkheadPass::default();
        assert!(b.enter_model(&iso, "a", "m", &mut two).await.is_err());
        b.enter_model(&iso, "a", "other", &mut two)
            .await
            .expect("uncapped model");
    }

    #[test]
    fn upstream_share_caps_in_flight_requests() {
        let b = Bulkheads::default();
        let cap = share_cap(30, 10);
        assert_eq!(cap, 3);
        let held: Vec<_> = (0..3)
            .map(|_| b.take_upstream_share("a", "u", cap).expect("room"))
            .collect();
        assert!(b.take_upstream_share("a", "u", cap).is_none());
        assert!(b.take_upstream_share("b", "u", cap).is_some());
        drop(held);
        assert!(b.take_upstream_share("a", "u", cap).is_some());
        assert_eq!(share_cap(1, 10), 1, "never below one request");
    }
}
