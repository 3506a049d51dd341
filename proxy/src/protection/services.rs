//! Per-service traffic figures (`model:<name>`, `upstream:<url>`): what the heartbeat reports
//! for `GET /api/health/services`, and the recent mean latency that latency-triggered
//! degradation rules read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use medgate_config::{BreakerState, ServiceReport};

use super::clock::SharedClock;

/// Longest latency window a degradation rule can look back over (one-second buckets).
pub const MAX_LATENCY_WINDOW_SECS: u64 = 300;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    second: u64,
    calls: u64,
    latency_ms: u64,
}

#[derive(Debug)]
struct Stat {
    // Since the previous report.
    calls: u64,
    failures: u64,
    latency_sum_ms: u64,
    max_latency_ms: u64,
    // Rolling, for latency triggers.
    buckets: Vec<Bucket>,
}

impl Stat {
    fn new() -> Self {
        Self {
            calls: 0,
            failures: 0,
            latency_sum_ms: 0,
            max_latency_ms: 0,
            buckets: vec![Bucket::default(); MAX_LATENCY_WINDOW_SECS as usize],
        }
    }
}

/// Figures of every service this proxy called.
pub struct ServiceStats {
    clock: SharedClock,
    stats: Mutex<HashMap<String, Stat>>,
}

impl ServiceStats {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            stats: Mutex::new(HashMap::new()),
        }
    }

    /// Records one finished call.
    pub fn record(&self, service: &str, failed: bool, latency: Duration) {
        let ms = latency.as_millis() as u64;
        let second = self.clock.now().as_secs();
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let stat = match stats.get_mut(service) {
            Some(s) => s,
            None => stats.entry(service.to_owned()).or_insert_with(Stat::new),
        };
        stat.calls += 1;
        stat.failures += u64::from(failed);
        stat.latency_sum_ms += ms;
        stat.max_latency_ms = stat.max_latency_ms.max(ms);
        let slot = &mut stat.buckets[(second % MAX_LATENCY_WINDOW_SECS) as usize];
        if slot.second != second {
            *slot = Bucket {
                second,
                ..Bucket::default()
            };
        }
        slot.calls += 1;
        slot.latency_ms += ms;
    }

    /// Mean latency (ms) and number of calls over the last `window` (capped at
    /// [`MAX_LATENCY_WINDOW_SECS`]); None without calls.
    pub fn mean_latency(&self, service: &str, window: Duration) -> Option<(f64, u64)> {
        let now = self.clock.now().as_secs();
        let secs = window.as_secs().clamp(1, MAX_LATENCY_WINDOW_SECS);
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let stat = stats.get(service)?;
        let (calls, sum) = stat
            .buckets
            .iter()
            .filter(|b| b.calls > 0 && b.second + secs > now && b.second <= now)
            .fold((0, 0), |(c, s), b| (c + b.calls, s + b.latency_ms));
        (calls > 0).then(|| (sum as f64 / calls as f64, calls))
    }

    /// The figures since the previous report (then reset), for the heartbeat. Services idle
    /// since then are still listed, with zero calls, so their breaker state stays visible.
    pub fn report(&self, state_of: &dyn Fn(&str) -> BreakerState) -> Vec<ServiceReport> {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<ServiceReport> = stats
            .iter_mut()
            .map(|(service, s)| {
                let report = ServiceReport {
                    service: service.clone(),
                    calls: s.calls,
                    failures: s.failures,
                    mean_latency_ms: if s.calls == 0 {
                        0.0
                    } else {
                        s.latency_sum_ms as f64 / s.calls as f64
                    },
                    max_latency_ms: s.max_latency_ms,
                    healthy: None,
                    breaker_state: state_of(service),
                };
                s.calls = 0;
                s.failures = 0;
                s.latency_sum_ms = 0;
                s.max_latency_ms = 0;
                report
            })
            .collect();
        out.sort_by(|a, b| a.service.cmp(&b.service));
        out
    }

    /// Forgets services no longer configured.
    pub fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::protection::clock::ManualClock;

    #[test]
    fn mean_latency_covers_only_the_window() {
        let clock = ManualClock::new();
        let stats = ServiceStats::new(Arc::clone(&clock) as SharedClock);
        stats.record("model:m", false, Duration::from_millis(100));
        clock.advance(Duration::from_secs(20));
        stats.record("model:m", false, Duration::from_millis(300));
        stats.record("model:m", true, Duration::from_millis(500));
        assert_eq!(
            stats.mean_latency("model:m", Duration::from_secs(10)),
            Some((400.0, 2))
        );
        assert_eq!(
            stats.mean_latency("model:m", Duration::from_secs(60)),
            Some((300.0, 3))
        );
        assert_eq!(stats.mean_latency("model:x", Duration::from_secs(60)), None);
    }

    #[test]
    fn a_report_resets_the_interval_figures() {
        let stats = ServiceStats::new(ManualClock::new());
        stats.record("upstream:u", true, Duration::from_millis(10));
        stats.record("upstream:u", false, Duration::from_millis(30));
        let first = stats.report(&|_| BreakerState::Closed);
        assert_eq!((first[0].calls, first[0].failures), (2, 1));
        assert_eq!(first[0].mean_latency_ms, 20.0);
        assert_eq!(first[0].max_latency_ms, 30);
        let second = stats.report(&|_| BreakerState::Open);
        assert_eq!(second[0].calls, 0);
        assert_eq!(second[0].breaker_state, BreakerState::Open);
    }
}
