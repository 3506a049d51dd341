//! The upstream exchange of one inference request, made with Pingora's connector from inside
//! `request_filter` (DESIGN.md §4: the body was read and rewritten before choosing the
//! upstream, which Pingora's native path cannot replay above 64 KiB), streaming the answer
//! back as it comes.

use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::ErrorType;
use serde_json::Value;

use super::sse::{usage_of, SseMeter, Usage};
use crate::openai_error::GatewayError;
use crate::protection::breaker::{CallOutcome, Permits};
use crate::upstream::UpstreamTarget;

/// Most response bytes kept to read `usage` from a non-streamed answer.
const MAX_METERED_BODY: usize = 16 * 1024 * 1024;

/// What to send.
pub struct Exchange<'a> {
    pub target: &'a UpstreamTarget,
    pub path: String,
    pub body: Bytes,
    pub request_id: &'a str,
    /// The gateway added `stream_options.include_usage`: hide that chunk from the client.
    pub hide_usage_chunk: bool,
    /// Added to the client's response (rate-limit figures, the degraded marker).
    pub extra_headers: &'a [(&'static str, String)],
    /// Permits of the circuit breakers in front of the upstream, told the upstream's answer.
    pub permits: Option<Permits>,
}

/// Tells the breakers how the upstream did as soon as that is known: at the first byte of
/// the body (its time is the TTFB that slow-call rules judge, so a long stream is not a slow
/// call and a half-open probe does not wait for the stream's end), at an error status, or
/// when the exchange fails. Whatever is still unreported when dropped counts as no response.
struct BreakerVerdict {
    permits: Option<Permits>,
    started: Instant,
}

impl BreakerVerdict {
    fn answered(&mut self, status: u16) {
        if let Some(p) = self.permits.take() {
            p.record(CallOutcome {
                status: Some(status),
                ttfb: Some(self.started.elapsed()),
            });
        }
    }
}

impl Drop for BreakerVerdict {
    fn drop(&mut self) {
        if let Some(p) = self.permits.take() {
            p.record(CallOutcome {
                status: None,
                ttfb: None,
            });
        }
    }
}

/// What happened.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Status the client saw (499 when it went away first).
    pub status: u16,
    pub usage: Option<Usage>,
    pub content_chars: u64,
    pub ttft: Option<Duration>,
    pub streamed: bool,
    pub bytes_sent: u64,
    /// Set when the exchange failed before any response reached the client.
    pub error: Option<GatewayError>,
    /// The upstream's own status, None when it never answered.
    pub upstream_status: Option<u16>,
    /// The upstream broke off the response (not the client).
    pub upstream_failed: bool,
}

impl Outcome {
    /// The upstream's status as circuit breakers classify it: None when the upstream could
    /// not be reached, timed out, or broke off its answer.
    pub fn upstream_result(&self) -> Option<u16> {
        if self.error.is_some() || self.upstream_failed {
            None
        } else {
            self.upstream_status
        }
    }
}

/// Runs the exchange and writes the response to `session`.
pub async fn exchange(
    connector: &Connector,
    session: &mut Session,
    mut ex: Exchange<'_>,
) -> Outcome {
    let started = Instant::now();
    let mut verdict = BreakerVerdict {
        permits: ex.permits.take(),
        started,
    };
    let peer = &ex.target.peer;
    let mut upstream = match connector.get_http_session(peer).await {
        Ok((s, _reused)) => s,
        Err(e) => return failed(upstream_error(&e, "connect to")),
    };
    if let Err(e) = send_request(&mut upstream, &ex).await {
        return failed(upstream_error(&e, "send the request to"));
    }
    if let Err(e) = upstream.read_response_header().await {
        return failed(upstream_error(&e, "read the response of"));
    }
    let Some(head) = upstream.response_header() else {
        return failed(GatewayError::new(
            502,
            "api_error",
            "upstream_error",
            "the upstream sent no response",
        ));
    };
    let status = head.status.as_u16();
    if status >= 400 {
        verdict.answered(status);
    }
    let is_sse = head
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut outcome = Outcome {
        status,
        upstream_status: Some(status),
        streamed: is_sse,
        ..Outcome::default()
    };
    let downstream_head = match response_head(
        head,
        is_sse && ex.hide_usage_chunk,
        ex.request_id,
        ex.extra_headers,
    ) {
        Ok(h) => h,
        Err(_) => {
            return failed(GatewayError::new(
                502,
                "api_error",
                "upstream_error",
                "the upstream sent an unusable header",
            ))
        }
    };
    if session
        .write_response_header(Box::new(downstream_head), false)
        .await
        .is_err()
    {
        verdict.answered(status);
        outcome.status = 499;
        return outcome;
    }

    let mut meter = SseMeter::new(ex.hide_usage_chunk);
    let mut collected: Vec<u8> = Vec::new();
    let mut complete = false;
    loop {
        let chunk = match upstream.read_response_body().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                complete = true;
                break;
            }
            Err(e) => {
                tracing::warn!(request_id = ex.request_id, error = %e, "upstream failed mid-response");
                outcome.upstream_failed = true;
                outcome.status = if outcome.status < 400 {
                    502
                } else {
                    outcome.status
                };
                break;
            }
        };
        if outcome.ttft.is_none() && !chunk.is_empty() {
            outcome.ttft = Some(started.elapsed());
            verdict.answered(status);
        }
        let out = if is_sse {
            meter.feed(&chunk)
        } else {
            if collected.len() + chunk.len() <= MAX_METERED_BODY {
                collected.extend_from_slice(&chunk);
            }
            chunk
        };
        if out.is_empty() {
            continue;
        }
        outcome.bytes_sent += out.len() as u64;
        if session.write_response_body(Some(out), false).await.is_err() {
            outcome.status = 499;
            break;
        }
    }
    if is_sse {
        let rest = meter.finish();
        if !rest.is_empty() && outcome.status != 499 {
            outcome.bytes_sent += rest.len() as u64;
            if session
                .write_response_body(Some(rest), false)
                .await
                .is_err()
            {
                outcome.status = 499;
            }
        }
        outcome.usage = meter.usage;
        outcome.content_chars = meter.content_chars;
    } else if let Ok(value) = serde_json::from_slice::<Value>(&collected) {
        outcome.usage = usage_of(&value);
    }
    if complete {
        verdict.answered(status);
    }
    if complete && outcome.status != 499 {
        if session.write_response_body(None, true).await.is_err() {
            outcome.status = 499;
        }
        connector
            .release_http_session(upstream, peer, peer.options.idle_timeout)
            .await;
    } else {
        upstream.shutdown().await;
    }
    outcome
}

async fn send_request(upstream: &mut HttpSession, ex: &Exchange<'_>) -> pingora::Result<()> {
    let mut req = RequestHeader::build("POST", ex.path.as_bytes(), Some(6))?;
    req.insert_header("host", &ex.target.host)?;
    req.insert_header("content-type", "application/json")?;
    req.insert_header("content-length", ex.body.len().to_string())?;
    req.insert_header("x-request-id", ex.request_id)?;
    if let Some(auth) = &ex.target.authorization {
        req.insert_header("authorization", auth)?;
    }
    upstream.write_request_header(Box::new(req)).await?;
    upstream.write_request_body(ex.body.clone(), true).await?;
    upstream.finish_request_body().await
}

/// The client's response header: the upstream's status and content headers, our request id.
/// The length is dropped when the gateway changes the body (hidden usage chunk).
fn response_head(
    upstream: &ResponseHeader,
    body_changes: bool,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> pingora::Result<ResponseHeader> {
    let mut head = ResponseHeader::build(upstream.status, Some(8 + extra.len()))?;
    for name in [
        "content-type",
        "cache-control",
        "openai-processing-ms",
        "x-ratelimit-remaining-tokens",
    ] {
        if let Some(v) = upstream.headers.get(name) {
            head.insert_header(name, v.clone())?;
        }
    }
    match upstream.headers.get("content-length") {
        Some(len) if !body_changes => head.insert_header("content-length", len.clone())?,
        _ => head.insert_header("transfer-encoding", "chunked")?,
    }
    head.insert_header("x-request-id", request_id)?;
    for (name, value) in extra {
        head.insert_header(*name, value)?;
    }
    Ok(head)
}

fn failed(error: GatewayError) -> Outcome {
    Outcome {
        status: error.status,
        error: Some(error),
        ..Outcome::default()
    }
}

fn upstream_error(e: &pingora::Error, what: &str) -> GatewayError {
    match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout => GatewayError::new(
            504,
            "api_error",
            "upstream_timeout",
            format!("timed out trying to {what} the model's upstream"),
        ),
        _ => GatewayError::new(
            502,
            "api_error",
            "upstream_unreachable",
            format!("could not {what} the model's upstream"),
        ),
    }
}
