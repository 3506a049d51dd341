//! Live breaker state, as the proxies report it in their heartbeats, aggregated per rule.
//!
//! Each proxy keeps its own breaker states (one per rule, or one per rule and tenant for
//! `per_tenant` rules) and reports those that have seen traffic. The overall state of a rule
//! is the worst one reported (`open` > `half_open` > `closed`), `closed` when no live proxy
//! (one heard from within 30 seconds) reported it.

use medgate_config::{BreakerReport, BreakerState};
use serde::Serialize;

use crate::gateway::InstanceReport;

/// A breaker rule's live state over every live proxy (read-only).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct BreakerLive {
    /// The worst state reported; `closed` when nothing was reported.
    pub state: BreakerState,
    /// Earliest transition into `state` among the reports in that state.
    pub since: Option<String>,
    /// Earliest time a report in `state` lets probes through (open breakers).
    pub next_retry_at: Option<String>,
    /// Closed -> open transitions, summed over the reports.
    pub times_opened: u64,
    /// One entry per proxy instance and breaker state (per tenant for `per_tenant` rules).
    pub instances: Vec<InstanceBreaker>,
}

/// One breaker state in one proxy instance.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct InstanceBreaker {
    pub instance_id: String,
    /// The tenant of a per-tenant state; None for a shared one.
    pub tenant_id: Option<String>,
    pub state: BreakerState,
    pub since: String,
    pub next_retry_at: Option<String>,
    pub times_opened: u64,
    /// Calls and failures in the current statistics window.
    pub window_calls: u64,
    pub window_failures: u64,
}

/// Worse states rank higher.
fn severity(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

/// The live state of rule `breaker_id` in `reports`.
pub fn aggregate(breaker_id: &str, reports: &[InstanceReport]) -> BreakerLive {
    let entries: Vec<(&str, &BreakerReport)> = reports
        .iter()
        .flat_map(|r| {
            r.report
                .breakers
                .iter()
                .filter(|b| b.breaker_id == breaker_id)
                .map(|b| (r.instance_id.as_str(), b))
        })
        .collect();
    let state = entries
        .iter()
        .map(|(_, b)| b.state)
        .max_by_key(|s| severity(*s))
        .unwrap_or(BreakerState::Closed);
    let worst = || entries.iter().filter(|(_, b)| b.state == state);
    BreakerLive {
        state,
        since: worst().map(|(_, b)| b.since.clone()).min(),
        next_retry_at: worst().filter_map(|(_, b)| b.next_retry_at.clone()).min(),
        times_opened: entries
            .iter()
            .fold(0u64, |sum, (_, b)| sum.saturating_add(b.times_opened)),
        instances: entries
            .iter()
            .map(|(instance, b)| InstanceBreaker {
                instance_id: (*instance).to_owned(),
                tenant_id: b.tenant_id.clone(),
                state: b.state,
                since: b.since.clone(),
                next_retry_at: b.next_retry_at.clone(),
                times_opened: b.times_opened,
                window_calls: b.window_calls,
                window_failures: b.window_failures,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::ProtectionReport;

    fn report(instance: &str, id: &str, state: BreakerState, since: &str) -> InstanceReport {
        InstanceReport {
            instance_id: instance.into(),
            last_heartbeat_at: "2026-03-01T10:00:00Z".into(),
            report: ProtectionReport {
                breakers: vec![BreakerReport {
                    breaker_id: id.into(),
                    tenant_id: None,
                    state,
                    since: since.into(),
                    next_retry_at: None,
                    times_opened: 2,
                    window_calls: 10,
                    window_failures: 5,
                }],
                ..ProtectionReport::default()
            },
        }
    }

    #[test]
    fn the_worst_state_wins_and_counts_add_up() {
        let reports = [
            report("a", "cb1", BreakerState::HalfOpen, "2026-03-01T10:00:05Z"),
            report("b", "cb1", BreakerState::Open, "2026-03-01T10:00:09Z"),
            report("c", "cb1", BreakerState::Open, "2026-03-01T10:00:07Z"),
            report("d", "cb2", BreakerState::Open, "2026-03-01T10:00:01Z"),
        ];
        let live = aggregate("cb1", &reports);
        assert_eq!(live.state, BreakerState::Open);
        assert_eq!(live.since.as_deref(), Some("2026-03-01T10:00:07Z"));
        assert_eq!(live.times_opened, 6);
        assert_eq!(live.instances.len(), 3);
    }

    #[test]
    fn nothing_reported_is_closed() {
        let live = aggregate("cb9", &[]);
        assert_eq!(live.state, BreakerState::Closed);
        assert!(live.since.is_none() && live.instances.is_empty());
    }
}
