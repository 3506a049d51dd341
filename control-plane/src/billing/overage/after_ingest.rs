//! Overage evaluation as usage arrives: after each ingested batch, each of its tenants is
//! evaluated, at most once per [`EVERY`] per tenant. A batch inside that time schedules one
//! evaluation for when it ends (never more than one waiting per tenant), so the last usage of
//! a burst is always evaluated and a hard cap lands within about [`EVERY`] of the crossing,
//! while a tenant sending many batches a second costs one evaluation (a month's SUM and a
//! write transaction) per [`EVERY`], not one per batch.

use std::collections::{BTreeSet, HashMap};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ApiError;
use crate::state::AppState;

/// Shortest time between two evaluations of one tenant.
pub const EVERY: Duration = Duration::from_secs(2);

/// Per tenant: when its last evaluation ran, or when the one it waits for will.
static NEXT: LazyLock<Mutex<HashMap<String, Instant>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Evaluates (now or later) the tenants of a batch that was just ingested; returns at once.
pub fn schedule(state: &AppState, tenants: BTreeSet<String>) {
    let now = Instant::now();
    let mut due = Vec::new();
    {
        let mut next = NEXT.lock().unwrap_or_else(|p| p.into_inner());
        for tenant in tenants {
            match next.get(&tenant).copied() {
                // One is already waiting: it will see this batch too.
                Some(at) if at > now => {}
                Some(at) if now.duration_since(at) < EVERY => {
                    let at = at + EVERY;
                    next.insert(tenant.clone(), at);
                    due.push((tenant, at));
                }
                _ => {
                    next.insert(tenant.clone(), now);
                    due.push((tenant, now));
                }
            }
        }
        // Tenants idle for a while need no memory.
        next.retain(|_, at| now.saturating_duration_since(*at) < EVERY * 30);
    }
    for (tenant, at) in due {
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            evaluate(&state, &tenant).await;
        });
    }
}

async fn evaluate(state: &AppState, tenant: &str) {
    let outcome = async {
        let mut tx = state.store().begin().await?;
        super::evaluate_tenant(&mut tx, tenant, chrono::Utc::now(), None).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = outcome {
        tracing::warn!(tenant_id = %tenant, error = %e, "overage evaluation after ingest failed");
    }
}
