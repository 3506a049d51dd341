//! The state machine of one breaker state: one rule, or one (rule, tenant) when the rule is
//! `per_tenant`. See the module docs of `breaker` for the states and their contract.
//!
//! Everything happens under one `std::sync::Mutex` per state: admissions, outcomes and
//! transitions. That is what makes the half-open probe count exact and every transition
//! happen once, however many threads race; the critical sections are a few comparisons.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use medgate_config::BreakerState;
use tokio::sync::watch;

use super::classify::is_failure;
use super::rule::Rule;
use super::window::WindowStats;
use super::CallOutcome;
use crate::protection::clock::SharedClock;

/// What every state of a registry shares: the clock and the transition counter.
pub(super) struct Shared {
    pub clock: SharedClock,
    transitions: watch::Sender<u64>,
}

impl Shared {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            transitions: watch::Sender::new(0),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.transitions.subscribe()
    }

    /// Counts `transitions` transitions and wakes the watchers (the heartbeat). Called after
    /// the state's mutex is released: the transition was decided (once) under it, and a
    /// watcher holding a `watch::Ref` while reading reports cannot deadlock with us.
    /// `send_modify` updates even without receivers, so late subscribers see the right count.
    fn bump(&self, transitions: u64) {
        if transitions > 0 {
            self.transitions
                .send_modify(|n| *n = n.wrapping_add(transitions));
        }
    }
}

/// An admission, to hand back with the outcome. `epoch` names the state it was admitted in:
/// an outcome from an older state is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket {
    epoch: u64,
    probe: bool,
}

impl Ticket {
    /// Whether the permit is a half-open probe.
    pub fn is_probe(self) -> bool {
        self.probe
    }
}

/// Why a state refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused {
    pub state: BreakerState,
    pub retry_after: Duration,
}

/// A consistent copy of a state, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct View {
    pub state: BreakerState,
    pub since: Duration,
    pub next_retry_at: Option<Duration>,
    pub times_opened: u64,
    pub window_calls: u64,
    pub window_failures: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open {
        until: Duration,
    },
    HalfOpen {
        /// Past this, a round whose probes have not all reported reopens on the next acquire.
        deadline: Duration,
        /// Probe permits of this round (the rule's value when the round started).
        allowed: u32,
        issued: u32,
        succeeded: u32,
    },
}

struct Inner {
    rule: Arc<Rule>,
    phase: Phase,
    since: Duration,
    /// Bumped on every phase change and on recovery; see [`Ticket`].
    epoch: u64,
    times_opened: u64,
    /// Consecutive failed half-open rounds: the backoff step.
    failed_rounds: u32,
    stats: WindowStats,
    /// The rule was removed: admit everything, count nothing.
    retired: bool,
}

/// One breaker state.
pub(super) struct Cell {
    shared: Arc<Shared>,
    pub breaker_id: String,
    pub tenant_id: Option<String>,
    inner: Mutex<Inner>,
}

impl Cell {
    pub fn new(
        shared: Arc<Shared>,
        rule: Arc<Rule>,
        tenant_id: Option<String>,
        retired: bool,
    ) -> Self {
        let now = shared.clock.now();
        Self {
            breaker_id: rule.entry.id.clone(),
            tenant_id,
            inner: Mutex::new(Inner {
                rule,
                phase: Phase::Closed,
                since: now,
                epoch: 0,
                times_opened: 0,
                failed_rounds: 0,
                stats: WindowStats::default(),
                retired,
            }),
            shared,
        }
    }

    /// A poisoned mutex only means another thread panicked mid-update; the counters are
    /// still usable, and a breaker that stopped working would be worse.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The time, read while holding the state's mutex: decisions on one state then see
    /// non-decreasing times, so a thread that read the clock earlier can never apply an older
    /// time after a newer one (e.g. roll the window back at a boundary).
    fn now(&self) -> Duration {
        self.shared.clock.now()
    }

    /// Admits a call or refuses it. Moves Open -> HalfOpen once the open time is over, and
    /// HalfOpen -> Open when the round outlived `half_open_max_wait`.
    pub fn try_acquire(&self) -> Result<Ticket, Refused> {
        let (admission, transitions) = {
            let mut inner = self.lock();
            inner.acquire(self.now())
        };
        self.shared.bump(transitions);
        admission
    }

    /// Counts the outcome of an admitted call (ignored when the state changed since).
    pub fn record(&self, ticket: Ticket, outcome: &CallOutcome) {
        let transitions = {
            let mut inner = self.lock();
            inner.record(ticket, outcome, self.now())
        };
        self.shared.bump(transitions);
    }

    /// A permit dropped without an outcome: a probe counts as a failed probe (its client went
    /// away or its task was cancelled; waiting for it could leave the breaker half-open for
    /// ever); a closed-state call is simply not counted.
    pub fn abandon(&self, ticket: Ticket) {
        let transitions = {
            let mut inner = self.lock();
            let now = self.now();
            let probing = matches!(inner.phase, Phase::HalfOpen { .. });
            if inner.current(ticket) && ticket.probe && probing {
                inner.fail_round(now);
                1
            } else {
                0
            }
        };
        self.shared.bump(transitions);
    }

    /// A permit given back uncounted (the call was refused locally after all): a probe
    /// permit returns to the round so another call can probe.
    pub fn cancel(&self, ticket: Ticket) {
        let mut inner = self.lock();
        if inner.current(ticket) && ticket.probe {
            if let Phase::HalfOpen { issued, .. } = &mut inner.phase {
                *issued = issued.saturating_sub(1);
            }
        }
    }

    /// Installs a changed rule: the phase stays (an open breaker stays open until its time),
    /// the counters restart so the new thresholds judge only calls made under them.
    pub fn reconfigure(&self, rule: Arc<Rule>) {
        let mut inner = self.lock();
        inner.rule = rule;
        inner.stats.reset();
    }

    /// The rule was removed: from now on the state admits everything and counts nothing.
    pub fn retire(&self) {
        self.lock().retired = true;
    }

    /// Manual recovery: closed, counters and backoff reset, outstanding permits forgotten.
    pub fn recover(&self) {
        let transitions = {
            let mut inner = self.lock();
            let now = self.now();
            if inner.phase == Phase::Closed {
                inner.epoch = inner.epoch.wrapping_add(1);
                inner.stats.reset();
                inner.failed_rounds = 0;
                0
            } else {
                inner.close(now);
                1
            }
        };
        self.shared.bump(transitions);
    }

    pub fn view(&self) -> View {
        let inner = self.lock();
        let now = self.now();
        let (window_calls, window_failures) = inner.stats.current(inner.rule.window_index(now));
        let (state, next_retry_at) = match inner.phase {
            Phase::Closed => (BreakerState::Closed, None),
            Phase::Open { until } => (BreakerState::Open, Some(until)),
            Phase::HalfOpen { .. } => (BreakerState::HalfOpen, None),
        };
        View {
            state,
            since: inner.since,
            next_retry_at,
            times_opened: inner.times_opened,
            window_calls,
            window_failures,
        }
    }
}

impl Refused {
    fn new(state: BreakerState, retry_after: Duration) -> Self {
        Self {
            state,
            retry_after: retry_after.max(Duration::from_millis(1)),
        }
    }
}

impl Inner {
    /// The decision of [`Cell::try_acquire`], with the number of transitions it made.
    fn acquire(&mut self, now: Duration) -> (Result<Ticket, Refused>, u64) {
        if self.retired {
            return (Ok(self.ticket(false)), 0);
        }
        let mut transitions = 0;
        if let Phase::Open { until } = self.phase {
            if now < until {
                return (Err(Refused::new(BreakerState::Open, until - now)), 0);
            }
            self.start_round(now);
            transitions += 1;
        }
        let admission = match &mut self.phase {
            Phase::Closed => Ok(self.ticket(false)),
            Phase::Open { .. } => Err(Refused::new(BreakerState::Open, Duration::ZERO)),
            Phase::HalfOpen { deadline, .. } if now >= *deadline => {
                self.fail_round(now);
                transitions += 1;
                let retry_after = self.open_until().saturating_sub(now);
                Err(Refused::new(BreakerState::Open, retry_after))
            }
            Phase::HalfOpen {
                deadline,
                allowed,
                issued,
                ..
            } => {
                if *issued < *allowed {
                    *issued += 1;
                    Ok(self.ticket(true))
                } else {
                    let retry_after = deadline.saturating_sub(now);
                    Err(Refused::new(BreakerState::HalfOpen, retry_after))
                }
            }
        };
        (admission, transitions)
    }

    /// The decision of [`Cell::record`], with the number of transitions it made.
    fn record(&mut self, ticket: Ticket, outcome: &CallOutcome, now: Duration) -> u64 {
        if !self.current(ticket) {
            return 0;
        }
        let failed = is_failure(&self.rule.entry, outcome);
        let transitioned = match &mut self.phase {
            Phase::Closed => {
                let index = self.rule.window_index(now);
                self.stats.record(index, failed);
                let trips = self.rule.trips(&self.stats);
                if trips {
                    self.open(now);
                    self.times_opened = self.times_opened.saturating_add(1);
                }
                trips
            }
            Phase::HalfOpen { .. } if failed => {
                self.fail_round(now);
                true
            }
            Phase::HalfOpen {
                succeeded, allowed, ..
            } => {
                *succeeded += 1;
                let all = *succeeded >= *allowed;
                if all {
                    self.close(now);
                }
                all
            }
            Phase::Open { .. } => false,
        };
        u64::from(transitioned)
    }

    fn ticket(&self, probe: bool) -> Ticket {
        Ticket {
            epoch: self.epoch,
            probe,
        }
    }

    /// Whether an outcome of `ticket` still belongs to this state.
    fn current(&self, ticket: Ticket) -> bool {
        !self.retired && ticket.epoch == self.epoch
    }

    fn enter(&mut self, phase: Phase, now: Duration) {
        self.phase = phase;
        self.since = now;
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// Opens for the current backoff step.
    fn open(&mut self, now: Duration) {
        let until = now.saturating_add(self.rule.open_duration(self.failed_rounds));
        self.enter(Phase::Open { until }, now);
    }

    /// A half-open round failed (a probe failed, was dropped, or the round expired): open
    /// again for the next backoff step.
    fn fail_round(&mut self, now: Duration) {
        self.failed_rounds = self.failed_rounds.saturating_add(1);
        self.open(now);
    }

    fn start_round(&mut self, now: Duration) {
        let phase = Phase::HalfOpen {
            deadline: now.saturating_add(self.rule.half_open_max_wait),
            allowed: self.rule.half_open_probes,
            issued: 0,
            succeeded: 0,
        };
        self.enter(phase, now);
    }

    fn close(&mut self, now: Duration) {
        self.enter(Phase::Closed, now);
        self.stats.reset();
        self.failed_rounds = 0;
    }

    fn open_until(&self) -> Duration {
        match self.phase {
            Phase::Open { until } => until,
            _ => self.since,
        }
    }
}
