//! Time for limiters and breakers, injectable so tests can step it (resilience.md §5: every
//! timing scenario runs on a manual clock, never on sleeps).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock: the time elapsed since an arbitrary, fixed origin.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Duration;
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn shared() -> SharedClock {
        Arc::new(Self {
            origin: Instant::now(),
        })
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    pub fn set(&self, to: Duration) {
        self.nanos.store(to.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// The wall-clock time (RFC 3339) of a reading of `clock` taken earlier, for reports.
pub fn wall_time(clock: &dyn Clock, at: Duration) -> String {
    let now = clock.now();
    let wall = chrono::Utc::now();
    let wall = if at <= now {
        wall - chrono::Duration::from_std(now - at).unwrap_or_default()
    } else {
        wall + chrono::Duration::from_std(at - now).unwrap_or_default()
    };
    wall.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
