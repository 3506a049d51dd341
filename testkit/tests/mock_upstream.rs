//! The mock OpenAI-compatible upstream, exercised over HTTP.

use std::time::{Duration, Instant};

use medgate_testkit::{Behavior, MockUpstream, MOCK_MODEL};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(up: &MockUpstream, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", up.base_url()))
        .bearer_auth("sk-upstream")
        .json(&body)
        .send()
        .await
        .expect("send")
}

/// The JSON payloads of an SSE body, with `[DONE]` as `Value::String("[DONE]")`.
fn sse_events(text: &str) -> Vec<Value> {
    assert!(
        text.ends_with("\n\n"),
        "stream must end with a blank line: {text:?}"
    );
    text.split_terminator("\n\n")
        .map(|event| {
            let data = event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"));
            if data == "[DONE]" {
                Value::String(data.into())
            } else {
                serde_json::from_str(data).expect("chunk is JSON")
            }
        })
        .collect()
}

async fn stream(up: &MockUpstream, body: Value) -> Vec<Value> {
    let resp = post(up, "/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert!(resp.headers().get("content-length").is_none());
    sse_events(&resp.text().await.expect("body"))
}

#[tokio::test]
async fn chat_completion_echoes_with_usage() {
    let up = MockUpstream::start().await;
    assert!(up.base_url().starts_with("http://127.0.0.1:"));
    assert!(up.base_url().ends_with("/v1"));
    let resp = post(
        &up,
        "/chat/completions",
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "system", "content": "You are helpful." },   // 16 chars
                { "role": "user", "content": "first question" },       // 14 chars
                { "role": "assistant", "content": "an answer" },       // 9 chars
                { "role": "user", "content": "hello there  world" },   // 18 chars
            ],
        }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let length: usize = resp.headers()["content-length"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    let text = resp.text().await.expect("body");
    assert_eq!(text.len(), length);
    let body: Value = serde_json::from_str(&text).expect("json");
    assert!(body["id"]
        .as_str()
        .expect("id")
        .starts_with("chatcmpl-mock-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert!(body["created"].as_u64().expect("created") > 1_600_000_000);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "hello there  world");
    assert_eq!(choice["finish_reason"], "stop");
    // ceil(57 / 4) = 15; three words.
    assert_eq!(
        body["usage"],
        json!({ "prompt_tokens": 15, "completion_tokens": 3, "total_tokens": 18 })
    );

    let recorded = up.last_request().expect("recorded");
    assert_eq!(recorded.path, "/v1/chat/completions");
    assert_eq!(recorded.method, "POST");
    assert_eq!(
        recorded.authorization.as_deref(),
        Some("Bearer sk-upstream")
    );
    assert_eq!(recorded.header("content-type"), Some("application/json"));
    assert_eq!(recorded.json["model"], "gpt-4o-mini");
    assert_eq!(up.hits(), 1);
    up.shutdown().await;
}

#[tokio::test]
async fn chat_completion_truncation_and_non_string_content() {
    let up = MockUpstream::start().await;
    let body: Value = post(
        &up,
        "/chat/completions",
        json!({
            "model": "m",
            "max_tokens": 2,
            "messages": [{ "role": "user", "content": "one two three four" }],
        }),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], "one two");
    assert_eq!(
        body["usage"],
        json!({ "prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7 })
    );

    let body: Value = post(
        &up,
        "/chat/completions",
        json!({
            "messages": [{ "role": "user", "content": [{ "type": "text", "text": "abcdefgh" }] }],
        }),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], "ok");
    assert_eq!(body["model"], MOCK_MODEL);
    assert_eq!(body["usage"]["prompt_tokens"], 2);
    assert_eq!(body["usage"]["completion_tokens"], 1);

    // Missing messages is an OpenAI-style 400.
    let resp = post(&up, "/chat/completions", json!({ "model": "m" })).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert_eq!(err["error"]["param"], "messages");
}

#[tokio::test]
async fn stream_without_usage() {
    let up = MockUpstream::start().await;
    let events = stream(
        &up,
        json!({
            "model": "gpt-x",
            "stream": true,
            "messages": [{ "role": "user", "content": "the quick brown fox jumps" }],
        }),
    )
    .await;
    // role delta, 5 content deltas, finish, [DONE]
    assert_eq!(events.len(), 8, "{events:#?}");
    for chunk in &events[..7] {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-x");
        assert_eq!(chunk["id"], events[0]["id"]);
        assert!(chunk.get("usage").is_none());
    }
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = events[1..6]
        .iter()
        .map(|c| {
            assert!(c["choices"][0]["finish_reason"].is_null());
            c["choices"][0]["delta"]["content"]
                .as_str()
                .expect("content")
                .to_owned()
        })
        .collect();
    assert_eq!(content, "the quick brown fox jumps");
    assert_eq!(events[6]["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[7], "[DONE]");
}

#[tokio::test]
async fn stream_with_include_usage() {
    let up = MockUpstream::start().await;
    let request = json!({
        "model": "gpt-x",
        "stream": true,
        "stream_options": { "include_usage": true },
        "messages": [{ "role": "user", "content": "alpha beta gamma" }],   // 16 chars
    });
    let events = stream(&up, request.clone()).await;
    assert_eq!(events.len(), 9, "{events:#?}");
    assert_eq!(events[6]["choices"][0]["finish_reason"], "stop");
    let usage_chunk = &events[7];
    assert_eq!(usage_chunk["object"], "chat.completion.chunk");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"],
        json!({ "prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7 })
    );
    assert_eq!(events[8], "[DONE]");

    // omit_usage wins over include_usage; stream_chunks is honored.
    up.set_behavior(Behavior {
        omit_usage: true,
        stream_chunks: 2,
        ..Behavior::default()
    });
    let events = stream(&up, request).await;
    assert_eq!(events.len(), 5, "{events:#?}");
    assert!(events.iter().all(|e| e["usage"].is_null()));
    assert_eq!(events[1]["choices"][0]["delta"]["content"], "alpha be");
    assert_eq!(events[2]["choices"][0]["delta"]["content"], "ta gamma");
    assert_eq!(events[4], "[DONE]");

    // Non-streaming responses omit usage too.
    let body: Value = post(
        &up,
        "/chat/completions",
        json!({ "messages": [{ "role": "user", "content": "x" }] }),
    )
    .await
    .json()
    .await
    .expect("json");
    assert!(body.get("usage").is_none());
}

#[tokio::test]
async fn text_completions() {
    let up = MockUpstream::start().await;
    let body: Value = post(
        &up,
        "/completions",
        json!({ "model": "davinci", "prompt": "say this please" }),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["model"], "davinci");
    assert_eq!(body["choices"][0]["text"], "say this please");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({ "prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7 })
    );

    let resp = post(
        &up,
        "/completions",
        json!({
            "model": "davinci",
            "prompt": "say this please",
            "stream": true,
            "stream_options": { "include_usage": true },
        }),
    )
    .await;
    let events = sse_events(&resp.text().await.expect("body"));
    // 5 text chunks, finish, usage, [DONE]
    assert_eq!(events.len(), 8, "{events:#?}");
    let text: String = events[..5]
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(text, "say this please");
    assert_eq!(events[5]["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[6]["usage"]["total_tokens"], 7);
    assert_eq!(events[7], "[DONE]");
}

#[tokio::test]
async fn embeddings_are_deterministic() {
    let up = MockUpstream::start().await;
    let one: Value = post(
        &up,
        "/embeddings",
        json!({ "model": "text-embedding-3-small", "input": "hello world" }),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(one["object"], "list");
    assert_eq!(one["model"], "text-embedding-3-small");
    assert_eq!(one["data"][0]["object"], "embedding");
    assert_eq!(one["data"][0]["index"], 0);
    let vector = one["data"][0]["embedding"].as_array().expect("floats");
    assert_eq!(vector.len(), 8);
    assert!(vector.iter().all(Value::is_f64));
    assert_eq!(
        one["usage"],
        json!({ "prompt_tokens": 3, "total_tokens": 3 })
    );

    let many: Value = post(
        &up,
        "/embeddings",
        json!({ "model": "e", "input": ["other", "hello world"] }),
    )
    .await
    .json()
    .await
    .expect("json");
    let data = many["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[1]["embedding"], one["data"][0]["embedding"]);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert_eq!(many["usage"]["prompt_tokens"], 4); // ceil(16 / 4)

    let b64: Value = post(
        &up,
        "/embeddings",
        json!({ "model": "e", "input": "x", "encoding_format": "base64", "dimensions": 3 }),
    )
    .await
    .json()
    .await
    .expect("json");
    // 3 little-endian f32 = 12 bytes = 16 base64 characters
    assert_eq!(
        b64["data"][0]["embedding"].as_str().expect("base64").len(),
        16
    );

    let resp = post(&up, "/embeddings", json!({ "model": "e", "input": [1, 2] })).await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn models_and_unknown_paths() {
    let up = MockUpstream::start().await;
    let http = client();
    let list: Value = http
        .get(format!("{}/models", up.base_url()))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"].as_array().expect("data").len(), 1);
    assert_eq!(list["data"][0]["id"], "mock-echo");
    assert_eq!(list["data"][0]["object"], "model");

    let resp = http
        .get(format!("{}/models/mock-echo", up.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let resp = http
        .get(format!("{}/models/nope", up.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);

    let resp = http
        .post(format!("{}/nope", up.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["type"], "invalid_request_error");

    let resp = http
        .get(format!("{}/chat/completions", up.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 405);

    // Outside /v1: not counted, not recorded.
    let resp = http
        .get(format!("http://{}/health", up.addr()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(up.hits(), 5);
    assert_eq!(up.requests().len(), 5);
    assert_eq!(up.requests()[0].path, "/v1/models");

    up.clear();
    assert_eq!(up.hits(), 0);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn non_json_body_is_an_openai_400() {
    let up = MockUpstream::start().await;
    for path in ["/chat/completions", "/completions", "/embeddings"] {
        let resp = client()
            .post(format!("{}{path}", up.base_url()))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 400);
        assert!(resp.headers().get("content-length").is_some());
        let err: Value = resp.json().await.expect("json");
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert!(err["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(err["error"]["param"].is_null());
        assert!(err["error"]["code"].is_null());
    }
    assert_eq!(up.hits(), 3);
    let recorded = up.requests();
    assert_eq!(recorded.len(), 3);
    assert!(recorded.iter().all(|r| r.json.is_null() && r.body_len == 9));
}

#[tokio::test]
async fn forced_status() {
    let up = MockUpstream::start().await;
    let chat = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] });

    up.set_behavior(Behavior {
        status: Some(503),
        ..Behavior::default()
    });
    assert_eq!(up.behavior().status, Some(503));
    let resp = post(&up, "/chat/completions", chat.clone()).await;
    assert_eq!(resp.status(), 503);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["type"], "server_error");
    assert!(err["error"]["message"].as_str().is_some());

    // Forced status applies to streams and every endpoint.
    let mut streaming = chat.clone();
    streaming["stream"] = json!(true);
    up.set_behavior(Behavior {
        status: Some(429),
        ..Behavior::default()
    });
    let resp = post(&up, "/chat/completions", streaming).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    let resp = client()
        .get(format!("{}/models", up.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 429);

    up.set_behavior(Behavior::default());
    assert_eq!(post(&up, "/chat/completions", chat).await.status(), 200);
    assert_eq!(up.hits(), 4);
}

#[tokio::test]
async fn records_large_bodies() {
    let up = MockUpstream::start().await;
    let filler = "a".repeat(1024 * 1024);
    let body = serde_json::to_vec(&json!({
        "model": "m",
        "messages": [{ "role": "user", "content": filler }],
    }))
    .expect("serialize");
    assert!(body.len() > 1024 * 1024);
    let resp = client()
        .post(format!("{}/chat/completions", up.base_url()))
        .header("authorization", "Bearer big")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.expect("json");
    assert_eq!(answer["usage"]["prompt_tokens"], 262_144);
    assert_eq!(answer["usage"]["completion_tokens"], 1);

    let recorded = up.last_request().expect("recorded");
    assert_eq!(recorded.body_len, body.len());
    assert_eq!(recorded.authorization.as_deref(), Some("Bearer big"));
    assert_eq!(
        recorded.json["messages"][0]["content"]
            .as_str()
            .map(str::len),
        Some(1024 * 1024)
    );
}

#[tokio::test]
async fn keeps_the_last_thousand_requests() {
    let up = MockUpstream::start().await;
    let http = client();
    for i in 0..1003 {
        let resp = http
            .post(format!("{}/embeddings", up.base_url()))
            .json(&json!({ "input": format!("n{i}") }))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(up.hits(), 1003);
    let recorded = up.requests();
    assert_eq!(recorded.len(), 1000);
    assert_eq!(recorded[0].json["input"], "n3");
    assert_eq!(recorded[999].json["input"], "n1002");
}

#[tokio::test]
async fn delays() {
    let up = MockUpstream::start().await;
    up.set_behavior(Behavior {
        delay_ms: 300,
        ..Behavior::default()
    });
    let started = Instant::now();
    let resp = post(
        &up,
        "/chat/completions",
        json!({ "messages": [{ "role": "user", "content": "slow" }] }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The request is recorded on arrival, before the delayed response.
    up.set_behavior(Behavior {
        delay_ms: 2_000,
        ..Behavior::default()
    });
    let timed_out = client()
        .post(format!("{}/chat/completions", up.base_url()))
        .timeout(Duration::from_millis(200))
        .json(&json!({ "messages": [{ "role": "user", "content": "late" }] }))
        .send()
        .await;
    assert!(timed_out.is_err());
    assert_eq!(up.hits(), 2);
    assert_eq!(
        up.last_request().expect("recorded").json["messages"][0]["content"],
        "late"
    );

    // Chunks are flushed one by one, chunk_delay_ms apart.
    up.set_behavior(Behavior {
        chunk_delay_ms: 250,
        stream_chunks: 1,
        ..Behavior::default()
    });
    let started = Instant::now();
    let mut resp = post(
        &up,
        "/chat/completions",
        json!({ "stream": true, "messages": [{ "role": "user", "content": "a b c" }] }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.expect("read").expect("a chunk");
    let first_at = started.elapsed();
    assert!(
        first_at < Duration::from_millis(500),
        "first chunk after {first_at:?}"
    );
    let first = String::from_utf8(first.to_vec()).expect("utf-8");
    assert_eq!(first.matches("data: ").count(), 1, "{first:?}");
    let mut rest = Vec::new();
    while let Some(chunk) = resp.chunk().await.expect("read") {
        rest.extend_from_slice(&chunk);
    }
    // role, content, finish, [DONE]: three gaps after the first event.
    assert!(started.elapsed() >= Duration::from_millis(750));
    let events = sse_events(&(first + std::str::from_utf8(&rest).expect("utf-8")));
    assert_eq!(events.len(), 4);
}

#[tokio::test]
async fn shutdown_closes_the_port_and_start_on_rebinds() {
    let up = MockUpstream::start().await;
    let addr = up.addr();
    assert_eq!(up.base_url(), format!("http://{addr}/v1"));
    up.set_behavior(Behavior {
        chunk_delay_ms: 10_000,
        ..Behavior::default()
    });
    // An in-flight stream does not hold shutdown up; it is cut off.
    let mut resp = post(
        &up,
        "/chat/completions",
        json!({ "stream": true, "messages": [{ "role": "user", "content": "x" }] }),
    )
    .await;
    resp.chunk().await.expect("first chunk");
    let started = Instant::now();
    up.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let rest = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(Some(_)) = resp.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "stream still open after shutdown");
    assert!(client()
        .get(format!("http://{addr}/v1/models"))
        .send()
        .await
        .is_err());

    let again = MockUpstream::start_on(addr).await.expect("rebind");
    assert_eq!(again.addr(), addr);
    let resp = client()
        .get(format!("{}/models", again.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(again.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests() {
    let up = MockUpstream::start().await;
    let http = client();
    let url = format!("{}/chat/completions", up.base_url());
    let mut tasks = Vec::new();
    for i in 0..64 {
        let http = http.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let body: Value = http
                .post(url)
                .json(&json!({ "messages": [{ "role": "user", "content": format!("msg {i}") }] }))
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            assert_eq!(body["choices"][0]["message"]["content"], format!("msg {i}"));
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(up.hits(), 64);
}

/// Reads one HTTP/1.1 response with a `Content-Length` body; returns (status line, headers
/// lowercased, body).
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> (String, String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).expect("utf-8 head");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .expect("content-length")
                .parse()
                .expect("number");
            while buf.len() < end + 4 + length {
                let mut more = [0u8; 4096];
                let n = stream.read(&mut more).await.expect("read");
                assert!(n > 0, "connection closed mid-body");
                buf.extend_from_slice(&more[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            let (status, headers) = head.split_once("\r\n").expect("status line");
            return (status.to_owned(), headers.to_ascii_lowercase(), body);
        }
        let mut more = [0u8; 4096];
        let n = stream.read(&mut more).await.expect("read");
        assert!(n > 0, "connection closed before the response");
        buf.extend_from_slice(&more[..n]);
    }
}

#[tokio::test]
async fn keep_alive_with_content_length() {
    use tokio::io::AsyncWriteExt;
    let up = MockUpstream::start().await;
    let mut tcp = tokio::net::TcpStream::connect(up.addr())
        .await
        .expect("connect");
    let mut buf = Vec::new();
    let body = r#"{"messages":[{"role":"user","content":"ping"}]}"#;
    for _ in 0..3 {
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(request.as_bytes()).await.expect("write");
        let (status, headers, body) = read_response(&mut tcp, &mut buf).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(!headers.contains("transfer-encoding"), "{headers}");
        assert!(!headers.contains("connection: close"), "{headers}");
        let json: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["choices"][0]["message"]["content"], "ping");
    }
    // An oversized body is refused from its Content-Length alone.
    tcp.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 70000000\r\n\r\n",
    )
    .await
    .expect("write");
    let (status, _, body) = read_response(&mut tcp, &mut buf).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    let json: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["error"]["type"], "invalid_request_error");
    assert_eq!(up.hits(), 4);
}
