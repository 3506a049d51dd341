//! Change watermarks shared by every long-poll of this control plane.
//!
//! Proxies long-poll for a newer snapshot (`GET /api/internal/snapshot?after=`) and for balance
//! changes (`GET /api/internal/balances?after=`). The store is the source of truth, also for
//! changes made through another control plane of the cluster, so something has to look at it;
//! instead of every waiting request polling on its own, one task per control plane reads the
//! two watermarks (the config version and the balance feed's sequence) every [`POLL`] and wakes
//! the waiters through `watch` channels. The store's load is then a pair of single-row reads
//! per control plane per poll, whatever the number of proxies; a change reaches a waiting
//! proxy within one poll plus the time to answer it.
//!
//! The task starts with the first waiter and stops once the state is dropped.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use sqlx::Row;
use tokio::sync::watch;

use crate::store::Store;

/// How often the watermarks are read.
pub const POLL: Duration = Duration::from_millis(100);

/// The latest known watermarks, and the task that keeps them current.
pub struct Watermarks(Arc<Inner>);

struct Inner {
    store: Store,
    config: watch::Sender<u64>,
    feed: watch::Sender<u64>,
    started: OnceLock<()>,
}

impl Watermarks {
    pub fn new(store: Store) -> Self {
        Self(Arc::new(Inner {
            store,
            config: watch::Sender::new(0),
            feed: watch::Sender::new(0),
            started: OnceLock::new(),
        }))
    }

    /// Follows the config version (starts the reader if needed).
    pub fn config(&self) -> watch::Receiver<u64> {
        self.start();
        self.0.config.subscribe()
    }

    /// Follows the balance feed's sequence (starts the reader if needed).
    pub fn feed(&self) -> watch::Receiver<u64> {
        self.start();
        self.0.feed.subscribe()
    }

    fn start(&self) {
        self.0.started.get_or_init(|| {
            let weak = Arc::downgrade(&self.0);
            tokio::spawn(follow(weak));
        });
    }
}

async fn follow(weak: Weak<Inner>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else {
            return;
        };
        match read(&inner.store).await {
            Ok((config, feed)) => {
                inner
                    .config
                    .send_if_modified(|v| replace_if_newer(v, config));
                inner.feed.send_if_modified(|v| replace_if_newer(v, feed));
            }
            Err(e) => tracing::debug!(error = %e, "change watermarks not read"),
        }
    }
}

fn replace_if_newer(current: &mut u64, read: u64) -> bool {
    let newer = read > *current;
    if newer {
        *current = read;
    }
    newer
}

async fn read(store: &Store) -> Result<(u64, u64), sqlx::Error> {
    let config = store.config_version().await?;
    let feed = sqlx::query("SELECT seq FROM balance_feed WHERE id = 1")
        .fetch_optional(store.reader())
        .await?
        .map_or(0, |r| r.get::<i64, _>("seq"));
    Ok((config, u64::try_from(feed).unwrap_or(0)))
}

/// Waits until `rx` shows a value above `after`, or `deadline`; true when it did.
pub async fn wait_above(
    rx: &mut watch::Receiver<u64>,
    after: u64,
    deadline: tokio::time::Instant,
) -> bool {
    let reached = tokio::time::timeout_at(deadline, rx.wait_for(|v| *v > after)).await;
    matches!(reached, Ok(Ok(_)))
}
