//! Webhook delivery of transitions: a signed JSON POST, retried with backoff, each outcome
//! appended to the history so a failure is visible, never lost silently.
//!
//! The receiver authenticates a delivery with `X-Medgate-Signature: t=<unix secs>,v1=<hex>`,
//! where `v1` is HMAC-SHA256 over `"<t>.<body>"` keyed with the rule's `webhook_secret`, and
//! deduplicates with `X-Medgate-Event-Id` (a retry after a lost answer repeats the same id).

use std::sync::OnceLock;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::task::JoinHandle;

use super::history::{self, AlertEvent};
use super::model::AlertRule;
use crate::store::Store;

/// Attempts per delivery, and the waits between them.
pub const ATTEMPTS: u32 = 3;
const BACKOFF: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];
/// Longest wait for one attempt (connect, send, answer).
pub const TIMEOUT: Duration = Duration::from_secs(5);
pub const SIGNATURE_HEADER: &str = "x-medgate-signature";
pub const EVENT_ID_HEADER: &str = "x-medgate-event-id";

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

/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return format!("t={t},v1="),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
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
    let client = match client() {
        Ok(c) => c,
        Err(e) => return ("failed", 0, None, Some(e.clone())),
    };
    let (mut status, mut error) = (None, None);
    for attempt in 1..=ATTEMPTS {
        let t = chrono::Utc::now().timestamp();
        let mut request = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, event_id)
            .body(body.clone());
        if let Some(secret) = secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, t, &body));
        }
        let retry = match request.send().await {
            Ok(response) if response.status().is_success() => {
                return ("delivered", attempt, Some(response.status().as_u16()), None);
            }
            Ok(response) => {
                let code = response.status();
                status = Some(code.as_u16());
                error = Some(format!("receiver answered {code}"));
                code.is_server_error() || code.as_u16() == 429
            }
            Err(e) => {
                status = None;
                error = Some(if e.is_timeout() {
                    format!("no answer within {} s", TIMEOUT.as_secs())
                } else if e.is_connect() {
                    "connection failed".to_owned()
                } else {
                    "request failed".to_owned()
                });
                true
            }
        };
        if !retry {
            return ("failed", attempt, status, error);
        }
        if let Some(wait) = BACKOFF.get(attempt as usize - 1) {
            tokio::time::sleep(*wait).await;
        }
    }
    tracing::warn!(event_id, ?status, ?error, "webhook delivery failed");
    ("failed", ATTEMPTS, status, error)
}

/// One client for every delivery: no redirects (a receiver must answer itself), bounded time.
fn client() -> Result<&'static reqwest::Client, &'static String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .connect_timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("medgate-alerts/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("http client unavailable: {e}"))
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_time_dot_body() {
        // Python: hmac.new(b"secret", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature("secret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(
            signature("secret", 1_700_000_000, b"{}"),
            signature("other", 1_700_000_000, b"{}")
        );
    }
}
