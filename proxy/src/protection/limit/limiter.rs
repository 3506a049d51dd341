//! The limiter: charges the rules that apply to a request, all-or-nothing, across the
//! local store and Redis.

use std::sync::Arc;

use medgate_config::StoreFailureMode;

use super::admission::{Admission, Charged, Place};
use super::gcra::{retry_after, Gcra};
use super::local::{LocalCharge, LocalStore};
use super::redis::{RedisCharge, RedisLimitStore};
use super::rules::Matched;
use super::{LimitRefusal, LimitRequest, LimitRules, RateLimitHeaders};
use crate::protection::clock::SharedClock;

/// Largest token count one request is charged or settled with: usage figures beyond it are
/// treated as bogus and clamped (resilience.md §5.5.5).
pub const MAX_TOKENS_PER_REQUEST: u64 = 10_000_000;

/// Counter state shared by all requests (and by admissions in flight).
pub(crate) struct Shared {
    pub(crate) clock: SharedClock,
    pub(crate) local: LocalStore,
    pub(crate) redis: Option<RedisLimitStore>,
}

impl Shared {
    /// The store clock in nanoseconds (saturating: ~584 years of uptime).
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The rate limiter of one proxy. Send + Sync; one instance serves every request and
/// outlives snapshots (state is keyed by rule id, see [`LimitRules`]).
#[derive(Clone)]
pub struct Limiter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("local_keys", &self.local_keys())
            .field("redis", &self.shared.redis)
            .finish()
    }
}

/// What one applicable rule charges for this request.
struct Item {
    matched: Matched,
    cost: u64,
}

impl Limiter {
    /// A limiter on `clock` (local counters); `redis` holds cluster-mode counters. Without
    /// it, cluster rules behave as during a Redis outage (their `on_store_error`).
    pub fn new(clock: SharedClock, redis: Option<RedisLimitStore>) -> Self {
        Self {
            shared: Arc::new(Shared {
                clock,
                local: LocalStore::default(),
                redis,
            }),
        }
    }

    /// Charges every rule of `rules` that applies to `req`, or none.
    ///
    /// `requests` rules cost 1; `tokens` rules cost `estimated_tokens` (clamped to
    /// [`MAX_TOKENS_PER_REQUEST`]; an estimate of 0 charges nothing but is still refused
    /// while the counter is in debt). Order: cost above a capacity is refused outright
    /// (non-retryable); then local rules are checked and charged atomically; then cluster
    /// rules in one Redis script. If Redis refuses, or a `local_fallback` rule refuses, or a
    /// `fail_closed` rule meets an unreachable Redis, the local charges are refunded. A
    /// Redis error or timeout (bounded by the store's timeout) makes each cluster rule follow
    /// its `on_store_error`.
    pub async fn admit(
        &self,
        rules: &LimitRules,
        req: &LimitRequest<'_>,
        estimated_tokens: u64,
    ) -> Result<Admission, LimitRefusal> {
        let estimate = estimated_tokens.min(MAX_TOKENS_PER_REQUEST);
        let items: Vec<Item> = rules
            .matching(req)
            .into_iter()
            .map(|matched| {
                let cost = if matched.rule.is_tokens() {
                    estimate
                } else {
                    1
                };
                Item { matched, cost }
            })
            .collect();
        if items.is_empty() {
            return Ok(Admission::empty());
        }
        for item in &items {
            let capacity = item.matched.rule.gcra.capacity();
            if item.cost > capacity {
                return Err(LimitRefusal::CostAboveBurst {
                    rule_id: item.matched.rule.entry.id.clone(),
                    cost: item.cost,
                    capacity,
                });
            }
        }
        let (cluster, local): (Vec<&Item>, Vec<&Item>) =
            items.iter().partition(|i| i.matched.rule.is_cluster());

        let mut charged: Vec<Charged> = Vec::with_capacity(items.len());
        self.admit_local(&local, &mut charged)?;
        if !cluster.is_empty() {
            if let Err(refusal) = self.admit_cluster(&cluster, &mut charged).await {
                self.refund(&charged);
                return Err(refusal);
            }
        }
        Ok(Admission::new(Arc::clone(&self.shared), charged, estimate))
    }

    /// Local rules: checked and charged together in the local store.
    fn admit_local(&self, local: &[&Item], charged: &mut Vec<Charged>) -> Result<(), LimitRefusal> {
        let local_keys: Vec<String> = local.iter().map(|i| i.matched.local_key()).collect();
        let batch: Vec<LocalCharge<'_>> = local
            .iter()
            .zip(&local_keys)
            .map(|(i, key)| LocalCharge {
                key,
                gcra: i.matched.rule.gcra,
                cost: i.cost,
                capped: false,
            })
            .collect();
        let now = self.shared.now();
        match self.shared.local.charge_all(&batch, now) {
            Ok(tats) => {
                for (item, tat) in local.iter().zip(tats) {
                    charged.push(Charged::new(
                        &item.matched,
                        item.cost,
                        Place::Local,
                        tat,
                        now,
                    ));
                }
                Ok(())
            }
            Err(refused) => {
                let rule = local.get(refused.index).map(|i| &i.matched.rule);
                Err(exceeded(
                    rule.map(|r| (&r.entry.id, r.gcra)),
                    refused.wait,
                    refused.tat,
                    now,
                ))
            }
        }
    }

    /// Cluster rules: Redis when it answers, else each rule's `on_store_error`.
    async fn admit_cluster(
        &self,
        cluster: &[&Item],
        charged: &mut Vec<Charged>,
    ) -> Result<(), LimitRefusal> {
        let outcome = match &self.shared.redis {
            Some(redis) => {
                let batch: Vec<RedisCharge> = cluster
                    .iter()
                    .map(|i| RedisCharge {
                        key: redis.key(
                            &i.matched.tag,
                            &i.matched.rule.entry.id,
                            &i.matched.counter,
                        ),
                        interval_ns: i.matched.rule.gcra.interval_ns(),
                        capacity: i.matched.rule.gcra.capacity(),
                        cost: i.cost,
                    })
                    .collect();
                redis.admit(&batch).await.map_err(|e| {
                    tracing::debug!(error = %e, "rate-limit store call failed");
                })
            }
            None => Err(()),
        };
        // Levels from Redis are relative to its clock; they are mapped onto ours for headers.
        let now = self.shared.now();
        match outcome {
            Ok(outcome) if outcome.admitted => {
                for (item, level) in cluster.iter().zip(outcome.levels_ns) {
                    let tat = now.saturating_add(level);
                    charged.push(Charged::new(
                        &item.matched,
                        item.cost,
                        Place::Redis,
                        tat,
                        now,
                    ));
                }
                Ok(())
            }
            Ok(outcome) => {
                let mut worst: Option<(&Item, std::time::Duration, u64)> = None;
                for (item, level) in cluster.iter().zip(outcome.levels_ns) {
                    let tat = now.saturating_add(level);
                    if let Err(wait) = item.matched.rule.gcra.check(tat, now, item.cost) {
                        if worst.is_none_or(|(_, w, _)| wait > w) {
                            worst = Some((item, wait, tat));
                        }
                    }
                }
                // Redis refused, so some rule has a wait; should rounding hide it, the first
                // rule is reported with the minimum Retry-After (1 s).
                let worst =
                    worst.or_else(|| cluster.first().map(|i| (*i, Default::default(), now)));
                let rule = worst.map(|(item, _, _)| &item.matched.rule);
                let (wait, tat) = worst.map_or((Default::default(), now), |(_, w, t)| (w, t));
                Err(exceeded(
                    rule.map(|r| (&r.entry.id, r.gcra)),
                    wait,
                    tat,
                    now,
                ))
            }
            Err(()) => self.store_failed(cluster, charged, now),
        }
    }

    /// Redis is unreachable: fail_open admits, fail_closed refuses, local_fallback charges
    /// the rule's fallback bucket in memory (all fallback rules at once, all-or-nothing).
    fn store_failed(
        &self,
        cluster: &[&Item],
        charged: &mut Vec<Charged>,
        now: u64,
    ) -> Result<(), LimitRefusal> {
        if let Some(closed) = cluster
            .iter()
            .find(|i| i.matched.rule.entry.on_store_error == StoreFailureMode::FailClosed)
        {
            return Err(LimitRefusal::StoreUnavailable {
                rule_id: closed.matched.rule.entry.id.clone(),
            });
        }
        let (fallback, open): (Vec<&Item>, Vec<&Item>) = cluster
            .iter()
            .partition(|i| i.matched.rule.entry.on_store_error == StoreFailureMode::LocalFallback);
        let keys: Vec<String> = fallback.iter().map(|i| i.matched.fallback_key()).collect();
        let batch: Vec<LocalCharge<'_>> = fallback
            .iter()
            .zip(&keys)
            .map(|(i, key)| LocalCharge {
                key,
                gcra: i.matched.rule.fallback,
                cost: i.cost,
                capped: true,
            })
            .collect();
        match self.shared.local.charge_all(&batch, now) {
            Ok(tats) => {
                for (item, tat) in fallback.iter().zip(tats) {
                    charged.push(Charged::new(
                        &item.matched,
                        item.cost,
                        Place::Fallback,
                        tat,
                        now,
                    ));
                }
                for item in open {
                    charged.push(Charged::new(
                        &item.matched,
                        item.cost,
                        Place::Uncharged,
                        now,
                        now,
                    ));
                }
                Ok(())
            }
            Err(refused) => {
                let rule = fallback.get(refused.index).map(|i| &i.matched.rule);
                Err(exceeded(
                    rule.map(|r| (&r.entry.id, r.fallback)),
                    refused.wait,
                    refused.tat,
                    now,
                ))
            }
        }
    }

    /// Gives back the in-memory charges of a request refused later in the chain.
    fn refund(&self, charged: &[Charged]) {
        let now = self.shared.now();
        for c in charged {
            let cost = i128::from(c.cost);
            match c.place {
                Place::Local => {
                    let key = c.matched.local_key();
                    self.shared
                        .local
                        .adjust(&key, c.matched.rule.gcra, -cost, now);
                }
                Place::Fallback => {
                    let key = c.matched.fallback_key();
                    self.shared
                        .local
                        .adjust(&key, c.matched.rule.fallback, -cost, now);
                }
                // Redis charges are never followed by a refusal (Redis runs last).
                Place::Redis | Place::Uncharged => {}
            }
        }
    }

    /// Drops local counters that have drained (call on a timer, e.g. every 30 s).
    pub fn sweep(&self) {
        let removed = self.shared.local.sweep(self.shared.now());
        tracing::debug!(removed, "rate-limit keys swept");
    }

    /// Local counters held (export as a gauge).
    pub fn local_keys(&self) -> usize {
        self.shared.local.len()
    }
}

/// A 429 for `rule` (id, bucket) whose counter stands at `tat`.
fn exceeded(
    rule: Option<(&String, Gcra)>,
    wait: std::time::Duration,
    tat: u64,
    now: u64,
) -> LimitRefusal {
    let (rule_id, headers) = match rule {
        Some((id, gcra)) => (id.clone(), gcra.headers(tat, now)),
        None => (
            String::new(),
            RateLimitHeaders {
                limit: 0,
                remaining: 0,
                reset_secs: 0,
            },
        ),
    };
    LimitRefusal::Exceeded {
        rule_id,
        retry_after: retry_after(wait),
        headers,
    }
}
