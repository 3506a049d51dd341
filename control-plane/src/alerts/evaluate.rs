//! The evaluator: reads every rule's metric, records its value, makes ok <-> firing
//! transitions (exactly once across any number of control planes, see [`history::record`]),
//! and starts the notifications of the transitions it made.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use super::history::{self, AlertState};
use super::metrics::{self, Inputs};
use super::model::{AlertRule, Metric};
use super::notify;
use crate::error::ApiResult;
use crate::resource;
use crate::state::AppState;
use crate::store;

/// How often the background evaluator runs.
pub const EVALUATION_INTERVAL: Duration = Duration::from_secs(15);

/// What one evaluation did.
#[derive(Debug, Default)]
pub struct EvaluationSummary {
    /// Rules whose metric was read (enabled ones, plus disabled ones still firing).
    pub evaluated: usize,
    /// ok -> firing transitions this call made.
    pub fired: usize,
    /// firing -> ok transitions this call made.
    pub resolved: usize,
    /// Rules that could not be evaluated (logged); the others still were.
    pub failed: usize,
    deliveries: Vec<JoinHandle<()>>,
}

impl EvaluationSummary {
    /// Transitions this call made.
    pub fn transitions(&self) -> usize {
        self.fired + self.resolved
    }

    /// Waits until every webhook delivery this call started has stored its outcome (tests;
    /// the background evaluator lets them run on their own).
    pub async fn wait_for_deliveries(&mut self) {
        for handle in self.deliveries.drain(..) {
            let _ = handle.await;
        }
    }
}

/// Evaluates every rule now. See [`evaluate_at`].
pub async fn evaluate_once(state: &AppState) -> ApiResult<EvaluationSummary> {
    evaluate_at(state, Utc::now()).await
}

/// Evaluates every rule as of `now` (usage rows and counter samples are windowed on it; proxy
/// reports are those live at the real current time). Enabled rules are read and recorded; a
/// disabled rule that is still firing is resolved, so disabling never leaves an alert firing
/// for ever. A rule whose metric cannot be read is counted in `failed` and keeps its state.
pub async fn evaluate_at(state: &AppState, now: DateTime<Utc>) -> ApiResult<EvaluationSummary> {
    let store = state.store();
    let mut summary = EvaluationSummary::default();
    let rules = resource::load_all::<AlertRule>(store).await?;
    if rules.is_empty() {
        return Ok(summary);
    }
    let inputs = Inputs::new(now, crate::gateway::live_reports(store).await?);
    if rules
        .iter()
        .any(|r| r.enabled && r.metric == Metric::RateLimitRejections)
    {
        metrics::sample(store, &inputs).await?;
    }
    let disabled: Vec<String> = rules
        .iter()
        .filter(|r| !r.enabled)
        .map(|r| r.id.clone())
        .collect();
    let stored = history::states(store, &disabled).await?;
    let stamp = store::timestamp(now);
    for rule in &rules {
        let reading = if rule.enabled {
            metrics::read(store, rule, &inputs).await
        } else {
            match stored.get(&rule.id) {
                Some(s) if s.state == AlertState::Firing => Ok(metrics::Reading {
                    value: s.last_value.unwrap_or(0.0),
                    firing: false,
                }),
                _ => continue,
            }
        };
        summary.evaluated += 1;
        let wanted = match &reading {
            Ok(r) if r.firing => AlertState::Firing,
            _ => AlertState::Ok,
        };
        let result = match reading {
            Ok(r) => history::record(store, rule, wanted, r.value, &stamp).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(Some(event)) => {
                match wanted {
                    AlertState::Firing => summary.fired += 1,
                    AlertState::Ok => summary.resolved += 1,
                }
                tracing::info!(rule = %rule.id, kind = %event.kind, value = event.value, "alert transition");
                summary
                    .deliveries
                    .extend(notify::spawn(store, rule, &event));
            }
            Ok(None) => {}
            Err(e) => {
                summary.failed += 1;
                tracing::warn!(rule = %rule.id, error = %e, "alert rule could not be evaluated");
            }
        }
    }
    Ok(summary)
}

/// Runs [`evaluate_once`] every `every` (first run one interval after the start) until the
/// task is aborted. Failures are logged and the next tick tries again.
pub fn spawn_evaluator(state: AppState, every: Duration) -> JoinHandle<()> {
    // Once cluster-wide: on the control plane holding the `alerts.evaluate` lease.
    crate::cluster::spawn_singleton(state, "alerts.evaluate", every, |state| async move {
        match evaluate_once(&state).await {
            Ok(s) if s.transitions() > 0 || s.failed > 0 => tracing::info!(
                evaluated = s.evaluated,
                fired = s.fired,
                resolved = s.resolved,
                failed = s.failed,
                "alert rules evaluated"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "alert evaluation failed"),
        }
    })
}
