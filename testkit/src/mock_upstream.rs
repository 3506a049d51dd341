//! A mock OpenAI-compatible upstream: an echo model served over HTTP/1.1.
//!
//! Used by integration tests, benchmarks and `medgate serve --demo` (as the built-in demo
//! model). It answers:
//!
//! - `POST /v1/chat/completions`: echoes the last user message (streaming or not),
//! - `POST /v1/completions`: echoes `prompt`,
//! - `POST /v1/embeddings`: deterministic unit vectors (8 floats unless `dimensions`),
//! - `GET /v1/models` and `GET /v1/models/{id}`: the single model [`MOCK_MODEL`],
//! - `GET /health`: `ok` (not counted or recorded),
//!
//! with OpenAI-style error envelopes for everything else. Token usage is an estimate:
//! `prompt_tokens = ceil(chars of all message contents / 4)` (at least 1) and
//! `completion_tokens` = the number of whitespace-separated words of the answer (at least 1).
//!
//! Every request under `/v1` is counted ([`MockUpstream::hits`]) and recorded
//! ([`MockUpstream::requests`]) before it is answered, so a test can inspect a request whose
//! response is still delayed. [`Behavior`] (forced status, delays, chunking, usage) can be
//! changed at any time and applies to requests that arrive afterwards.
//!
//! ```no_run
//! # async fn demo() {
//! use medgate_testkit::{Behavior, MockUpstream};
//! let upstream = MockUpstream::start().await;
//! upstream.set_behavior(Behavior { status: Some(503), ..Behavior::default() });
//! // point the gateway at upstream.base_url() ...
//! assert_eq!(upstream.hits(), 0);
//! upstream.shutdown().await;
//! # }
//! ```

mod openai;
mod server;
mod sse;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderMap, Method};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use openai::{EMBEDDING_DIMS, MOCK_MODEL};

/// Largest request body accepted; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// How many requests [`MockUpstream::requests`] keeps (the most recent ones).
pub const MAX_RECORDED: usize = 1000;
/// Older recorded requests are also dropped while the recorded bodies add up to more than
/// this, so a long benchmark or demo run with large bodies stays bounded in memory. The most
/// recent request is always kept.
pub const MAX_RECORDED_BODY_BYTES: usize = 256 * 1024 * 1024;

/// How the mock answers; see [`MockUpstream::set_behavior`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behavior {
    /// Answer every `/v1` request with this status and an OpenAI-style error body
    /// (`type` "server_error" for 5xx, "invalid_request_error" otherwise).
    pub status: Option<u16>,
    /// Wait this long before sending the response headers.
    pub delay_ms: u64,
    /// Wait this long between consecutive SSE events of a stream.
    pub chunk_delay_ms: u64,
    /// Content chunks per stream (the answer is split evenly by characters; pieces may be
    /// empty when it is shorter than this). Default 5.
    pub stream_chunks: usize,
    /// Never send `usage`, neither in JSON bodies nor as the final stream chunk.
    pub omit_usage: bool,
}

impl Default for Behavior {
    fn default() -> Behavior {
        Behavior {
            status: None,
            delay_ms: 0,
            chunk_delay_ms: 0,
            stream_chunks: 5,
            omit_usage: false,
        }
    }
}

/// One request received under `/v1`, as recorded on arrival (after its body was read).
/// A request refused for a body over [`MAX_BODY_BYTES`] is counted in
/// [`MockUpstream::hits`] but not recorded.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    /// Path without the query string, e.g. `/v1/chat/completions`.
    pub path: String,
    /// All request headers.
    pub headers: HeaderMap,
    /// The `Authorization` header value, when present and valid UTF-8.
    pub authorization: Option<String>,
    /// Length of the request body in bytes.
    pub body_len: usize,
    /// The parsed JSON body; `Value::Null` when the body is empty or not JSON.
    pub json: Value,
}

impl RecordedRequest {
    /// A header value as a string, when present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Shared {
    behavior: Mutex<Behavior>,
    hits: AtomicU64,
    seq: AtomicU64,
    log: Mutex<RequestLog>,
}

#[derive(Default)]
struct RequestLog {
    entries: VecDeque<RecordedRequest>,
    body_bytes: usize,
}

impl RequestLog {
    fn push(&mut self, request: RecordedRequest) {
        self.body_bytes += request.body_len;
        self.entries.push_back(request);
        while self.entries.len() > MAX_RECORDED
            || (self.body_bytes > MAX_RECORDED_BODY_BYTES && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.body_bytes -= old.body_len;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running mock upstream. Dropping it (or [`MockUpstream::shutdown`]) stops it at once:
/// the port is closed and in-flight requests and streams are cut off.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockUpstream")
            .field("addr", &self.addr)
            .field("hits", &self.hits())
            .finish_non_exhaustive()
    }
}

impl MockUpstream {
    /// Starts on an ephemeral port of 127.0.0.1; panics when it cannot bind.
    pub async fn start() -> MockUpstream {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(addr)
            .await
            .expect("bind the mock upstream on 127.0.0.1:0")
    }

    /// Starts on `addr` (port 0 picks a free one).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            behavior: Mutex::new(Behavior::default()),
            hits: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            log: Mutex::new(RequestLog::default()),
        });
        let (stop, task) = server::spawn(listener, Arc::clone(&shared));
        Ok(MockUpstream {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received under `/v1` (including rejected ones).
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::Relaxed)
    }

    /// The most recent requests received under `/v1` (at most [`MAX_RECORDED`]), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).entries.iter().cloned().collect()
    }

    /// The most recent request received under `/v1`.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.shared.log).entries.back().cloned()
    }

    /// Forgets the recorded requests and resets [`MockUpstream::hits`] to 0.
    pub fn clear(&self) {
        let mut log = lock(&self.shared.log);
        log.entries.clear();
        log.body_bytes = 0;
        self.shared.hits.store(0, Ordering::Relaxed);
    }

    /// The current behavior.
    pub fn behavior(&self) -> Behavior {
        *lock(&self.shared.behavior)
    }

    /// Replaces the behavior for requests that arrive from now on.
    pub fn set_behavior(&self, behavior: Behavior) {
        *lock(&self.shared.behavior) = behavior;
    }

    /// Stops the server: closes the port and cuts off in-flight requests and streams.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
