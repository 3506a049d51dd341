//! Webhook delivery of transitions: a signed JSON POST, retried with backoff, each outcome
//! appended to the history so a failure is visible, never lost silently. E-mail recipients of
//! a transition go through the notifier's outbox instead (see `history::record`).
//!
//! Signing and the HTTP client are the notifier's ([`crate::notifier::webhook`]): the receiver
//! authenticates a delivery with `X-Medgate-Signature: t=<unix secs>,v1=<hex>`, where `v1` is
//! HMAC-SHA256 over `"<t>.<body>"` keyed with the rule's `webhook_secret`, and deduplicates
//! with `X-Medgate-Event-Id` (a retry after a lost answer repeats the same id).

use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

use super::history::{self, AlertEvent};
use super::model::AlertRule;
use crate::notifier::webhook;
pub use crate::notifier::webhook::{signature, EVENT_ID_HEADER, SIGNATURE_HEADER};
use crate::store::Store;

/// Attempts per delivery, and the waits between them.
pub const ATTEMPTS: u32 = 3;
const BACKOFF: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

/// The JSON body of a delivery.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    alert_id: &'a str,
    name: &'a str,
    tenant_id: Option<&'a str>,
    metric: &'a str,
    /// `firing` or `resolved`.
    state: &'a str,
    value: f64,
    threshold: f64,
    at: &'a str,
}

/// Starts delivering `event` to the rule's webhook, if it has one, without waiting for it.
/// Call only after the transition committed (its `pending` row is then already stored).
pub fn spawn(store: &Store, rule: &AlertRule, event: &AlertEvent) -> Option<JoinHandle<()>> {
    let url = rule.webhook_url.clone()?;
    let state = if event.kind == "fired" {
        "firing"
    } else {
        "resolved"
    };
    let payload = Payload {
        alert_id: &rule.id,
        name: &rule.name,
        tenant_id: rule.tenant_id.as_deref(),
        metric: rule.metric.as_str(),
        state,
        value: event.value,
        threshold: event.threshold,
        at: &event.at,
    };
    let body = serde_json::to_vec(&payload).unwrap_or_default();
    let secret = rule.webhook_secret.clone();
    let store = store.clone();
    let event_id = event.event_id.clone();
    Some(tokio::spawn(async move {
        let (outcome, attempts, status, error) =
            deliver(&url, secret.as_deref(), &event_id, body).await;
        if let Err(e) = history::record_delivery(
            &store, &event_id, "webhook", outcome, attempts, status, error,
        )
        .await
        {
            tracing::error!(event_id, error = %e, "webhook delivery outcome could not be stored");
        }
    }))
}

/// Up to [`ATTEMPTS`] POSTs; retries on connection errors, timeouts, 429 and 5xx. Returns
/// (outcome, attempts, last status, last error).
async fn deliver(
    url: &str,
    secret: Option<&str>,
    event_id: &str,
    body: Vec<u8>,
) -> (&'static str, u32, Option<u16>, Option<String>) {
    let (mut status, mut error) = (None, None);
    for attempt in 1..=ATTEMPTS {
        let outcome = webhook::post(url, secret, event_id, &body).await;
        if outcome.delivered {
            return ("delivered", attempt, outcome.status, None);
        }
        status = outcome.status;
        error = outcome.error;
        if !outcome.retryable {
            return ("failed", attempt, status, error);
        }
        if let Some(wait) = BACKOFF.get(attempt as usize - 1) {
            tokio::time::sleep(*wait).await;
        }
    }
    tracing::warn!(event_id, ?status, ?error, "webhook delivery failed");
    ("failed", ATTEMPTS, status, error)
}
