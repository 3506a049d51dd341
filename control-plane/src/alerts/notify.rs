//! Webhook delivery of transitions: a signed JSON POST tried at once (up to [`ATTEMPTS`]
//! within about a second, for latency); when those fail for a reason worth retrying, the
//! delivery is handed to the notifier's outbox (kind `alert_webhook`), which retries it with
//! backoff for hours. Each outcome is appended to the history, so a failure is visible, never
//! lost silently. E-mail recipients of a transition go through the outbox directly (see
//! `history::record`).
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
    let body = serde_json::to_value(&payload).unwrap_or_default();
    let secret = rule.webhook_secret.clone();
    let store = store.clone();
    let event_id = event.event_id.clone();
    let tenant_id = rule.tenant_id.clone();
    let rule_id = rule.id.clone();
    Some(tokio::spawn(async move {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut tried = deliver(&url, secret.as_deref(), &event_id, &bytes).await;
        if tried.outcome == "retrying" {
            let handed = hand_over(&store, tenant_id.as_deref(), &rule_id, &event_id, body).await;
            if let Err(e) = handed {
                tracing::error!(event_id, error = %e, "webhook retry could not be queued");
                tried.outcome = "failed";
            }
        }
        if let Err(e) = history::record_delivery(
            &store,
            &event_id,
            "webhook",
            tried.outcome,
            tried.attempts,
            tried.status,
            tried.error,
        )
        .await
        {
            tracing::error!(event_id, error = %e, "webhook delivery outcome could not be stored");
        }
    }))
}

/// What the immediate attempts came to.
struct Tried {
    /// `delivered`, `failed` (not worth retrying) or `retrying` (to hand over).
    outcome: &'static str,
    attempts: u32,
    status: Option<u16>,
    error: Option<String>,
}

/// Up to [`ATTEMPTS`] POSTs; retries on connection errors, timeouts, 429 and 5xx.
async fn deliver(url: &str, secret: Option<&str>, event_id: &str, body: &[u8]) -> Tried {
    let (mut status, mut error) = (None, None);
    for attempt in 1..=ATTEMPTS {
        let outcome = webhook::post(url, secret, event_id, body).await;
        if outcome.delivered {
            return Tried {
                outcome: "delivered",
                attempts: attempt,
                status: outcome.status,
                error: None,
            };
        }
        status = outcome.status;
        error = outcome.error;
        if !outcome.retryable {
            return Tried {
                outcome: "failed",
                attempts: attempt,
                status,
                error,
            };
        }
        if let Some(wait) = BACKOFF.get(attempt as usize - 1) {
            tokio::time::sleep(*wait).await;
        }
    }
    tracing::warn!(
        event_id,
        ?status,
        ?error,
        "webhook not delivered yet; the notifier retries it"
    );
    Tried {
        outcome: "retrying",
        attempts: ATTEMPTS,
        status,
        error,
    }
}

/// Queues the delivery in the notifier's outbox (once per event).
async fn hand_over(
    store: &Store,
    tenant_id: Option<&str>,
    rule_id: &str,
    event_id: &str,
    body: serde_json::Value,
) -> crate::error::ApiResult<()> {
    let payload = serde_json::json!({
        "event_id": event_id,
        "alert_id": rule_id,
        "immediate_attempts": ATTEMPTS,
        "body": body,
    });
    let kind = crate::notifier::ALERT_WEBHOOK_KIND;
    let mut tx = store.begin().await?;
    crate::notifier::enqueue(
        &mut tx,
        tenant_id,
        kind,
        &format!("{kind}:{event_id}"),
        &payload,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
