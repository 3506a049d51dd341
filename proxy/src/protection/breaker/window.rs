//! Closed-state statistics: one tumbling window of calls and failures plus the count of
//! consecutive failures.
//!
//! Tumbling, not sliding (resilience.md §5.1 scenario 9): failures on both sides of a window
//! boundary are never added together. This is Sentinel's single-bucket `LeapArray`, which
//! keeps the state O(1) per breaker.

/// Counters of one breaker state while closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct WindowStats {
    /// The window the counters belong to (see `Rule::window_index`).
    index: u64,
    /// Calls and failures that ended in that window.
    pub calls: u64,
    pub failures: u64,
    /// Failures since the last success, across windows (`consecutive_failures` strategy).
    pub consecutive: u64,
}

impl WindowStats {
    /// Starts a new window when `index` is a later one; counters of an old window are
    /// dropped whole (tumbling). An earlier index (a time read before the latest one) counts
    /// in the current window rather than wiping it.
    pub fn roll(&mut self, index: u64) {
        if index > self.index {
            self.index = index;
            self.calls = 0;
            self.failures = 0;
        }
    }

    /// Counts one call that ended in window `index`.
    pub fn record(&mut self, index: u64, failed: bool) {
        self.roll(index);
        self.calls = self.calls.saturating_add(1);
        if failed {
            self.failures = self.failures.saturating_add(1);
            self.consecutive = self.consecutive.saturating_add(1);
        } else {
            self.consecutive = 0;
        }
    }

    /// Calls and failures of window `index`, zero when the counters belong to another one.
    pub fn current(&self, index: u64) -> (u64, u64) {
        if index == self.index {
            (self.calls, self.failures)
        } else {
            (0, 0)
        }
    }

    /// Forgets everything: after a rule change, on closing, on manual recovery.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_window_drops_the_old_counts_but_not_the_consecutive_run() {
        let mut w = WindowStats::default();
        w.record(3, true);
        w.record(3, true);
        assert_eq!(w.current(3), (2, 2));
        w.record(4, true);
        assert_eq!(w.current(4), (1, 1));
        assert_eq!(w.current(3), (0, 0));
        assert_eq!(w.consecutive, 3);
        w.record(4, false);
        assert_eq!(w.consecutive, 0);
        assert_eq!(w.current(4), (2, 1));
    }
}
