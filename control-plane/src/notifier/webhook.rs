//! Signed webhooks, shared by every sender (alert transitions, outbox notifications).
//!
//! A delivery is a JSON `POST`. The receiver authenticates it with
//! `X-Medgate-Signature: t=<unix secs>,v1=<hex>`, where `v1` is HMAC-SHA256 over
//! `"<t>.<body>"` keyed with the shared secret, and deduplicates with `X-Medgate-Event-Id`
//! (a retry after a lost answer repeats the same id). Redirects are not followed: a receiver
//! must answer itself.

use std::sync::OnceLock;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest wait for one attempt (connect, send, answer).
pub const TIMEOUT: Duration = Duration::from_secs(5);
pub const SIGNATURE_HEADER: &str = "x-medgate-signature";
pub const EVENT_ID_HEADER: &str = "x-medgate-event-id";

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

/// What one POST gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver answered 2xx.
    pub delivered: bool,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it was not delivered.
    pub error: Option<String>,
    /// Worth trying again soon: no answer, a timeout, 429 or 5xx.
    pub retryable: bool,
}

/// One signed POST of `body` (already serialized JSON) to `url`.
pub async fn post(url: &str, secret: Option<&str>, event_id: &str, body: &[u8]) -> Attempt {
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            return Attempt {
                delivered: false,
                status: None,
                error: Some(e.clone()),
                retryable: false,
            }
        }
    };
    let t = chrono::Utc::now().timestamp();
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_ID_HEADER, event_id)
        .body(body.to_vec());
    if let Some(secret) = secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, t, body));
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => Attempt {
            delivered: true,
            status: Some(response.status().as_u16()),
            error: None,
            retryable: false,
        },
        Ok(response) => {
            let code = response.status();
            Attempt {
                delivered: false,
                status: Some(code.as_u16()),
                error: Some(format!("receiver answered {code}")),
                retryable: code.is_server_error() || code.as_u16() == 429,
            }
        }
        Err(e) => Attempt {
            delivered: false,
            status: None,
            error: Some(if e.is_timeout() {
                format!("no answer within {} s", TIMEOUT.as_secs())
            } else if e.is_connect() {
                "connection failed".to_owned()
            } else {
                "request failed".to_owned()
            }),
            retryable: true,
        },
    }
}

/// One client for every delivery: no redirects, bounded time.
fn client() -> Result<&'static reqwest::Client, &'static String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .connect_timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("medgate-notifier/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("http client unavailable: {e}"))
        })
        .as_ref()
}

/// Checks a webhook URL: `http(s)://` with a host, no credentials, no fragment, at most 2048
/// characters (a query string is allowed: receivers often take a token there).
pub fn check_url(url: &str) -> Result<(), &'static str> {
    if url.len() > 2048 {
        return Err("must be at most 2048 characters");
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Err("must be an http(s) URL");
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must start with http:// or https://");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name a host");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials (the deliveries are signed instead)");
    }
    if parsed.fragment().is_some() {
        return Err("must not have a fragment");
    }
    Ok(())
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

    #[test]
    fn webhook_urls() {
        assert!(check_url("https://hooks.example.com/x?token=1").is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("not a url").is_err());
        assert!(check_url("https://user:pw@example.com/").is_err());
        assert!(check_url("https://example.com/#frag").is_err());
    }
}
