//! The in-memory counter store: a striped map from counter key to TAT.
//!
//! Memory contract: an entry exists only while its counter is non-empty (TAT > now); a key
//! whose TAT has passed is indistinguishable from a fresh one, so [`LocalStore::sweep`]
//! drops it and nothing is lost. Keys are built from identities the caller has already
//! authenticated (tenant, API key, a model resolved against the catalog, a route id), so
//! unauthenticated traffic cannot create entries; the caller must not pass raw client input
//! (an unknown model name) as an identity.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::gcra::Gcra;

/// Stripes: enough that concurrent requests rarely contend, few enough to sweep quickly.
const SHARDS: usize = 64;

type Shard = HashMap<String, u64>;

/// One counter to charge in an all-or-nothing batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalCharge<'a> {
    pub(crate) key: &'a str,
    pub(crate) gcra: Gcra,
    pub(crate) cost: u64,
    /// Admit on min(cost, capacity) but charge the full cost (fallback buckets, which may
    /// be smaller than a request the cluster rule accepts).
    pub(crate) capped: bool,
}

/// Why a batch was refused: the longest wait among the counters without room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalRefused {
    /// Index in the batch of the counter with the longest wait.
    pub(crate) index: usize,
    pub(crate) wait: Duration,
    /// That counter's TAT (unchanged).
    pub(crate) tat: u64,
}

/// Striped TAT store. Send + Sync; every operation locks only the stripes it needs.
#[derive(Debug)]
pub(crate) struct LocalStore {
    shards: Vec<Mutex<Shard>>,
    // Randomly keyed per process, so crafted key sets cannot all land in one stripe.
    hasher: RandomState,
}

impl Default for LocalStore {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl LocalStore {
    fn shard_of(&self, key: &str) -> usize {
        // The modulo keeps the index in range whatever the hash.
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    fn lock(&self, index: usize) -> Option<MutexGuard<'_, Shard>> {
        // A poisoned stripe only means a panic elsewhere while it was held; the map itself
        // is always consistent (single inserts), so keep using it.
        self.shards
            .get(index)
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Charges every counter of `batch` or none (the GCRA check of each, then the commit
    /// of all, under the locks of every stripe involved, taken in ascending order so two
    /// batches can never deadlock). Ok holds each counter's new TAT, in batch order.
    pub(crate) fn charge_all(
        &self,
        batch: &[LocalCharge<'_>],
        now: u64,
    ) -> Result<Vec<u64>, LocalRefused> {
        let mut indexes: Vec<usize> = batch.iter().map(|c| self.shard_of(c.key)).collect();
        let shard_of_item = indexes.clone();
        indexes.sort_unstable();
        indexes.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> = indexes
            .into_iter()
            .filter_map(|i| self.lock(i).map(|g| (i, g)))
            .collect();

        let mut tats: Vec<u64> = Vec::with_capacity(batch.len());
        let mut refused: Option<LocalRefused> = None;
        for (i, charge) in batch.iter().enumerate() {
            // A key repeated in one batch sees the tentative value of its earlier charge.
            let earlier = batch[..i]
                .iter()
                .zip(&tats)
                .rev()
                .find(|(c, _)| c.key == charge.key);
            let current = match earlier {
                Some((_, tat)) => *tat,
                None => shard_map(&guards, shard_of_item.get(i).copied())
                    .and_then(|m| m.get(charge.key).copied())
                    .unwrap_or(0),
            };
            let decision = if charge.capped {
                charge.gcra.check_capped(current, now, charge.cost)
            } else {
                charge.gcra.check(current, now, charge.cost)
            };
            match decision {
                Ok(tat) => tats.push(tat),
                Err(wait) => {
                    tats.push(current);
                    if refused.is_none_or(|r| wait > r.wait) {
                        refused = Some(LocalRefused {
                            index: i,
                            wait,
                            tat: current,
                        });
                    }
                }
            }
        }
        if let Some(r) = refused {
            return Err(r);
        }
        for (i, (charge, tat)) in batch.iter().zip(&tats).enumerate() {
            let Some(map) = shard_map_mut(&mut guards, shard_of_item.get(i).copied()) else {
                continue;
            };
            store(map, charge.key, *tat, now);
        }
        Ok(tats)
    }

    /// Applies a debit (delta > 0) or refund (delta < 0) to one counter, always; returns the
    /// new TAT.
    pub(crate) fn adjust(&self, key: &str, gcra: Gcra, delta: i128, now: u64) -> u64 {
        let Some(mut map) = self.lock(self.shard_of(key)) else {
            return now;
        };
        let current = map.get(key).copied().unwrap_or(0);
        let tat = gcra.adjust(current, now, delta);
        store(&mut map, key, tat, now);
        tat
    }

    /// The TAT of one counter (0 when absent).
    #[cfg(test)]
    pub(crate) fn tat(&self, key: &str) -> u64 {
        self.lock(self.shard_of(key))
            .and_then(|m| m.get(key).copied())
            .unwrap_or(0)
    }

    /// Drops every counter that has drained (TAT <= now) and gives back the memory of
    /// stripes that shrank a lot. Returns how many entries were removed.
    pub(crate) fn sweep(&self, now: u64) -> usize {
        let mut removed = 0;
        for i in 0..self.shards.len() {
            let Some(mut map) = self.lock(i) else {
                continue;
            };
            let before = map.len();
            map.retain(|_, tat| *tat > now);
            removed += before - map.len();
            if map.capacity() > 4 * map.len() + 64 {
                map.shrink_to_fit();
            }
        }
        removed
    }

    /// Entries currently held (metric; includes drained ones not yet swept).
    pub(crate) fn len(&self) -> usize {
        (0..self.shards.len())
            .filter_map(|i| self.lock(i).map(|m| m.len()))
            .sum()
    }
}

fn shard_map<'g>(
    guards: &'g [(usize, MutexGuard<'_, Shard>)],
    index: Option<usize>,
) -> Option<&'g Shard> {
    let index = index?;
    let pos = guards.binary_search_by_key(&index, |(i, _)| *i).ok()?;
    guards.get(pos).map(|(_, g)| &**g)
}

fn shard_map_mut<'g, 'm>(
    guards: &'g mut [(usize, MutexGuard<'m, Shard>)],
    index: Option<usize>,
) -> Option<&'g mut Shard> {
    let index = index?;
    let pos = guards.binary_search_by_key(&index, |(i, _)| *i).ok()?;
    guards.get_mut(pos).map(|(_, g)| &mut **g)
}

/// Keeps only non-empty counters, so a zero-cost check never creates an entry.
fn store(map: &mut Shard, key: &str, tat: u64, now: u64) {
    if tat > now {
        match map.get_mut(key) {
            Some(v) => *v = tat,
            None => {
                map.insert(key.to_owned(), tat);
            }
        }
    } else {
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn per_minute(limit: u64) -> Gcra {
        Gcra::new(60 * SEC, limit, limit)
    }

    fn charge(key: &str, limit: u64, cost: u64) -> LocalCharge<'_> {
        LocalCharge {
            key,
            gcra: per_minute(limit),
            cost,
            capped: false,
        }
    }

    #[test]
    fn a_batch_is_charged_whole_or_not_at_all() {
        let store = LocalStore::default();
        store.charge_all(&[charge("b", 1, 1)], 0).expect("room");
        let refused = store
            .charge_all(&[charge("a", 10, 1), charge("b", 1, 1)], 0)
            .expect_err("b is full");
        assert_eq!(refused.index, 1);
        assert_eq!(refused.wait, Duration::from_secs(60));
        assert_eq!(store.tat("a"), 0, "a must not be charged");
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_key_repeated_in_a_batch_counts_twice() {
        let store = LocalStore::default();
        assert!(store
            .charge_all(&[charge("k", 1, 1), charge("k", 1, 1)], 0)
            .is_err());
        let tats = store
            .charge_all(&[charge("k", 2, 1), charge("k", 2, 1)], 0)
            .expect("room");
        assert_eq!(tats, [30 * SEC, 60 * SEC]);
    }

    #[test]
    fn zero_cost_and_refunds_create_no_entries() {
        let store = LocalStore::default();
        store.charge_all(&[charge("z", 5, 0)], 0).expect("room");
        store.adjust("r", per_minute(5), -3, 0);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn concurrent_batches_on_shared_stripes_do_not_deadlock() {
        let store = std::sync::Arc::new(LocalStore::default());
        let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
        let keys = std::sync::Arc::new(keys);
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (store, keys) = (store.clone(), keys.clone());
                std::thread::spawn(move || {
                    for round in 0..2000 {
                        let a = &keys[(round * 7 + t) % 200];
                        let b = &keys[(round * 13 + 3 * t) % 200];
                        let _ = store.charge_all(&[charge(a, 1000, 1), charge(b, 1000, 1)], 0);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("no panic");
        }
    }
}
