//! The HTTP side of the mock: accept loop, routing, body reading, responses.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use bytes::{Bytes, BytesMut};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use super::openai::{self, Ctx, Reply};
use super::sse::SseBody;
use super::{lock, Behavior, RecordedRequest, Shared, MAX_BODY_BYTES};

/// Serves `listener` on a new task until the returned sender fires or is dropped.
pub(super) fn spawn(
    listener: TcpListener,
    shared: Arc<Shared>,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let router = Router::new().fallback(handle).with_state(shared);
    let (stop, stopped) = oneshot::channel();
    (stop, tokio::spawn(serve(listener, router, stopped)))
}

/// Accepts HTTP/1.1 connections until `stopped`, each on its own task; then drops the
/// listener and aborts every connection.
async fn serve(listener: TcpListener, router: Router, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else {
                    // Out of file descriptors or similar: back off briefly.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if path != "/v1" && !path.starts_with("/v1/") {
        return match (request.method(), path.as_str()) {
            (&Method::GET, "/health" | "/healthz") => Response::new(Body::from("ok")),
            _ => not_found(request.method(), &path),
        };
    }
    shared.hits.fetch_add(1, Ordering::Relaxed);
    let behavior = *lock(&shared.behavior);
    let (parts, body) = request.into_parts();

    let bytes = match read_body(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge) => {
            let reply = openai::error(
                413,
                &format!("request body exceeds {MAX_BODY_BYTES} bytes"),
                None,
                None,
            );
            return respond(reply, &behavior).await;
        }
        Err(ReadError::Aborted) => {
            let reply = openai::error(400, "could not read the request body", None, None);
            return respond(reply, &behavior).await;
        }
    };
    let parsed = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice::<Value>(&bytes).ok()
    };

    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ctx = Ctx {
        seq,
        created,
        behavior: &behavior,
    };
    let reply = match behavior.status {
        Some(status) => {
            let status = StatusCode::from_u16(status).map_or(500, |s| s.as_u16());
            openai::error(
                status,
                &format!("mock upstream: forced status {status}"),
                None,
                None,
            )
        }
        None => route(&parts.method, &path, parsed.as_ref(), &ctx),
    };

    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    lock(&shared.log).push(RecordedRequest {
        method: parts.method,
        path,
        headers: parts.headers,
        authorization,
        body_len: bytes.len(),
        json: parsed.unwrap_or(Value::Null),
    });
    respond(reply, &behavior).await
}

fn route(method: &Method, path: &str, body: Option<&Value>, ctx: &Ctx<'_>) -> Reply {
    type Endpoint = fn(&Value, &Ctx<'_>) -> Reply;
    let endpoint: Option<Endpoint> = match path {
        "/v1/chat/completions" => Some(openai::chat_completions),
        "/v1/completions" => Some(openai::completions),
        "/v1/embeddings" => Some(openai::embeddings),
        _ => None,
    };
    if let Some(endpoint) = endpoint {
        if method != Method::POST {
            return method_not_allowed(method, path);
        }
        return match body {
            Some(json) => endpoint(json, ctx),
            None => openai::error(
                400,
                "We could not parse the JSON body of your request. The request body must be \
                 a JSON object.",
                None,
                None,
            ),
        };
    }
    if path == "/v1/models" {
        if method != Method::GET {
            return method_not_allowed(method, path);
        }
        return openai::list_models();
    }
    if let Some(id) = path.strip_prefix("/v1/models/").filter(|id| !id.is_empty()) {
        if method != Method::GET {
            return method_not_allowed(method, path);
        }
        return openai::get_model(id);
    }
    openai_not_found(method, path)
}

fn openai_not_found(method: &Method, path: &str) -> Reply {
    openai::error(
        404,
        &format!("Unknown request URL: {method} {path}"),
        None,
        Some("unknown_url"),
    )
}

fn method_not_allowed(method: &Method, path: &str) -> Reply {
    openai::error(
        405,
        &format!("Method {method} is not allowed for {path}"),
        None,
        None,
    )
}

fn not_found(method: &Method, path: &str) -> Response {
    into_response(openai_not_found(method, path), &Behavior::default())
}

/// Waits `delay_ms`, then turns the reply into a response.
async fn respond(reply: Reply, behavior: &Behavior) -> Response {
    if behavior.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(behavior.delay_ms)).await;
    }
    into_response(reply, behavior)
}

fn into_response(reply: Reply, behavior: &Behavior) -> Response {
    let (status, content_type, body) = match reply {
        Reply::Json { status, body } => (status, "application/json", Body::from(body)),
        Reply::Stream(events) => {
            let delay = Duration::from_millis(behavior.chunk_delay_ms);
            (
                200,
                "text/event-stream",
                Body::new(SseBody::new(events, delay)),
            )
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if content_type == "text/event-stream" {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

enum ReadError {
    TooLarge,
    Aborted,
}

/// Collects a request body of at most `limit` bytes (without copying when it arrives in one
/// frame).
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, ReadError> {
    let hint = body.size_hint().lower();
    if hint > limit as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut len = 0usize;
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        let data = match frame {
            None => break,
            Some(Err(_)) => return Err(ReadError::Aborted),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => continue,
            },
        };
        len += data.len();
        if len > limit {
            return Err(ReadError::TooLarge);
        }
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(head), None) => {
                let mut buf = BytesMut::with_capacity((hint as usize).max(len));
                buf.extend_from_slice(head);
                buf.extend_from_slice(&data);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(head), None) => head,
        (None, None) => Bytes::new(),
    })
}
