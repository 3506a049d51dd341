//! The data plane end to end, in static mode against the testkit mock upstream: auth, model
//! resolution, body rewriting, streaming with and without usage, metering into the usage
//! spool, errors in OpenAI's shape, and hot reload of the gateway file.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use medgate_proxy::{ConfigSource, ProxyHandle, ProxyOptions};
use medgate_testkit::{Behavior, MockUpstream};
use serde_json::{json, Value};
use support::{free_port, sha, usage_events, KEY, OTHER_KEY};

struct Fixture {
    proxy: Option<ProxyHandle>,
    upstream: MockUpstream,
    dir: tempfile::TempDir,
    url: String,
    gateway_file: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(p) = self.proxy.take() {
            p.stop();
        }
    }
}

fn gateway_yaml(upstream: &str, tenant_status: &str, extra_model: Value) -> String {
    let config = json!({
        "tenants": [
            { "id": "t1", "code": "clinic", "status": tenant_status, "quotas": null, "allowed_models": [],
              "log_request_payloads": false, "cors_allowed_origins": [], "isolation": null },
            { "id": "t2", "code": "other", "status": "active", "quotas": null, "allowed_models": ["gpt-small"],
              "log_request_payloads": false, "cors_allowed_origins": [], "isolation": null }
        ],
        "models": [
            { "id": "m1", "name": "gpt-small", "enabled": true, "provider": "openai_compatible",
              "upstreams": [{ "url": upstream, "weight": 1, "api_key": "sk-upstream-secret" }],
              "upstream_model": "gpt-small", "connect_timeout_ms": 2000, "read_timeout_ms": 10000,
              "available_to_all_tenants": true, "parameters": {} },
            { "id": "m2", "name": "gpt-tuned", "enabled": true, "provider": "openai_compatible",
              "upstreams": [{ "url": upstream, "weight": 1, "api_key": null }],
              "upstream_model": "vendor-tuned-v2", "connect_timeout_ms": 2000, "read_timeout_ms": 10000,
              "available_to_all_tenants": true,
              "parameters": {
                  "max_tokens": { "default": 64, "min": 1, "max": 100, "forced": null, "on_violation": "clamp" },
                  "temperature": { "default": null, "min": 0.0, "max": 1.0, "forced": null, "on_violation": "reject" }
              } },
            { "id": "m3", "name": "gpt-off", "enabled": false, "provider": "openai_compatible",
              "upstreams": [{ "url": upstream, "weight": 1, "api_key": null }],
              "upstream_model": "off", "connect_timeout_ms": 2000, "read_timeout_ms": 10000,
              "available_to_all_tenants": true, "parameters": {} },
            extra_model
        ],
        "api_keys": [
            { "id": "key_1", "tenant_id": "t1", "prefix": "mg_0123456789ab",
              "secrets": [{ "sha256": sha(KEY), "valid_until": null }], "expires_at": null, "allowed_models": [] },
            { "id": "key_2", "tenant_id": "t2", "prefix": "mg_ba9876543210",
              "secrets": [{ "sha256": sha(OTHER_KEY), "valid_until": null }], "expires_at": null, "allowed_models": [] }
        ],
        "tenant_models": [
            { "tenant_id": "t1", "model_id": "m1", "enabled": true, "alias": "house-model", "parameters": {} }
        ],
        "gateway": { "max_body_bytes": 2097152, "access_log_sample_rate": 1.0 }
    });
    serde_yaml::to_string(&config).expect("yaml")
}

fn dead_model() -> Value {
    json!({ "id": "m4", "name": "gpt-dead", "enabled": true, "provider": "openai_compatible",
        "upstreams": [{ "url": format!("http://127.0.0.1:{}/v1", free_port()), "weight": 1, "api_key": null }],
        "upstream_model": "dead", "connect_timeout_ms": 500, "read_timeout_ms": 2000,
        "available_to_all_tenants": true, "parameters": {} })
}

async fn start() -> Fixture {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway_file = dir.path().join("gateway.yaml");
    std::fs::write(
        &gateway_file,
        gateway_yaml(&upstream.base_url(), "active", dead_model()),
    )
    .expect("write");
    let port = free_port();
    let proxy = medgate_proxy::start(ProxyOptions {
        listen: format!("127.0.0.1:{port}").parse().expect("addr"),
        data_dir: dir.path().to_owned(),
        source: ConfigSource::StaticFile(gateway_file.clone()),
        threads: 2,
        grace_period_secs: 1,
        redis_url: None,
        redis_timeout: Duration::from_secs(2),
        spool: Default::default(),
        tls: None,
    })
    .expect("proxy starts");
    let url = format!("http://127.0.0.1:{port}");
    support::wait_ready(&url).await;
    Fixture {
        proxy: Some(proxy),
        upstream,
        dir,
        url,
        gateway_file,
    }
}

async fn post(f: &Fixture, path: &str, key: Option<&str>, body: Value) -> (u16, Value, String) {
    let mut r = reqwest::Client::new()
        .post(format!("{}{path}", f.url))
        .json(&body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let resp = r.send().await.expect("sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

/// Streams a body just over the gateway's 2 MiB limit without a Content-Length, slowly enough
/// that the answer arrives before the client is done.
async fn raw_post_chunked_over_limit(f: &Fixture) -> (u16, Value, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = f.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..40 {
        let frame = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk.clone(),
            b"\r\n".to_vec(),
        ]
        .concat();
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::Null),
        text,
    )
}

/// SSE chunks that carry a (non-null) usage object.
fn usage_chunks(sse: &str) -> usize {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v.get("usage").is_some_and(|u| !u.is_null()))
        .count()
}

fn chat(model: &str, text: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": text }] })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_is_forwarded_and_metered_once() {
    let f = start().await;
    let (status, body, text) = post(
        &f,
        "/v1/chat/completions",
        Some(KEY),
        chat("gpt-small", "hello there"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(body["choices"][0]["message"]["content"], "hello there");
    let seen = f.upstream.last_request().expect("upstream hit");
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.authorization.as_deref(),
        Some("Bearer sk-upstream-secret"),
        "upstream key sent upstream"
    );
    let events = usage_events(f.dir.path(), 1).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.tenant_id, "t1");
    assert_eq!(e.model_name, "gpt-small");
    assert_eq!(e.status, 200);
    assert!(e.usage_reported);
    assert_eq!(
        e.input_tokens,
        body["usage"]["prompt_tokens"].as_u64().expect("usage")
    );
    assert_eq!(
        e.output_tokens,
        body["usage"]["completion_tokens"].as_u64().expect("usage")
    );
    assert_eq!(e.key_prefix.as_deref(), Some("mg_0123456789ab"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_hide_the_injected_usage_chunk_but_meter_it() {
    let f = start().await;
    let mut body = chat("gpt-small", "one two three four five six");
    body["stream"] = json!(true);
    let (status, _, text) = post(&f, "/v1/chat/completions", Some(KEY), body.clone()).await;
    assert_eq!(status, 200);
    assert!(text.contains("data: [DONE]"), "{text}");
    assert_eq!(
        usage_chunks(&text),
        0,
        "the client did not ask for usage: {text}"
    );
    let sent = f.upstream.last_request().expect("hit");
    assert_eq!(
        sent.json["stream_options"]["include_usage"], true,
        "the gateway asked for usage"
    );

    body["stream_options"] = json!({ "include_usage": true });
    let (status, _, text) = post(&f, "/v1/chat/completions", Some(KEY), body).await;
    assert_eq!(status, 200);
    assert_eq!(usage_chunks(&text), 1, "the client asked for usage: {text}");

    let events = usage_events(f.dir.path(), 2).await;
    assert_eq!(events.len(), 2, "one event per request");
    for e in &events {
        assert!(e.streamed);
        assert!(e.usage_reported);
        assert!(e.output_tokens > 0 && e.input_tokens > 0, "{e:?}");
        assert!(e.ttft_ms.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_parameters_and_rewrites() {
    let f = start().await;
    let (status, _, text) = post(
        &f,
        "/v1/chat/completions",
        Some(KEY),
        chat("house-model", "hi"),
    )
    .await;
    assert_eq!(status, 200, "tenant alias resolves: {text}");
    assert_eq!(
        f.upstream.last_request().expect("hit").json["model"],
        "gpt-small"
    );

    let mut body = chat("gpt-tuned", "hi");
    body["max_tokens"] = json!(5000);
    let (status, _, text) = post(&f, "/v1/chat/completions", Some(KEY), body).await;
    assert_eq!(status, 200, "{text}");
    let sent = f.upstream.last_request().expect("hit").json;
    assert_eq!(
        sent["model"], "vendor-tuned-v2",
        "upstream model name rewritten"
    );
    assert_eq!(sent["max_tokens"], 100, "clamped to the bound");

    let (status, _, _) = post(
        &f,
        "/v1/chat/completions",
        Some(KEY),
        chat("gpt-tuned", "hi"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        f.upstream.last_request().expect("hit").json["max_tokens"],
        64,
        "default applied"
    );

    let mut body = chat("gpt-tuned", "hi");
    body["temperature"] = json!(1.5);
    let hits = f.upstream.hits();
    let (status, err, _) = post(&f, "/v1/chat/completions", Some(KEY), body).await;
    assert_eq!(status, 422);
    assert_eq!(err["error"]["code"], "parameter_out_of_bounds");
    assert_eq!(
        f.upstream.hits(),
        hits,
        "refused requests never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_openai_shape_and_status() {
    let f = start().await;
    let cases: Vec<(Option<&str>, Value, u16, &str)> = vec![
        (None, chat("gpt-small", "x"), 401, "invalid_api_key"),
        (
            Some("mg_0123456789ab_wrong"),
            chat("gpt-small", "x"),
            401,
            "invalid_api_key",
        ),
        (
            Some("sk-not-ours"),
            chat("gpt-small", "x"),
            401,
            "invalid_api_key",
        ),
        (
            Some(KEY),
            chat("no-such-model", "x"),
            404,
            "model_not_found",
        ),
        (Some(KEY), chat("gpt-off", "x"), 403, "model_disabled"),
        (
            Some(OTHER_KEY),
            chat("gpt-tuned", "x"),
            403,
            "model_not_allowed",
        ),
        (Some(KEY), json!({ "messages": [] }), 400, "missing_model"),
        (
            Some(KEY),
            chat("gpt-dead", "x"),
            502,
            "upstream_unreachable",
        ),
    ];
    let hits = f.upstream.hits();
    for (key, body, status, code) in cases {
        let (got, err, text) = post(&f, "/v1/chat/completions", key, body.clone()).await;
        assert_eq!(got, status, "{body}: {text}");
        assert_eq!(err["error"]["code"], code, "{text}");
        assert!(err["error"]["message"].is_string() && err["error"]["type"].is_string());
    }
    assert_eq!(f.upstream.hits(), hits, "none of these reached the mock");

    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", f.url))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 400);
    let big = format!(
        "{{\"model\":\"gpt-small\",\"pad\":\"{}\"}}",
        "a".repeat(3 * 1024 * 1024)
    );
    // Announced as too large: refused before the body is read, and the connection is closed,
    // which the client may see as a broken pipe while it is still sending.
    let sent = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", f.url))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await;
    match sent {
        Ok(resp) => assert_eq!(resp.status().as_u16(), 413),
        Err(e) => assert!(
            e.is_request() || e.is_body(),
            "unexpected client error: {e}"
        ),
    }
    let (status, err, _) = raw_post_chunked_over_limit(&f).await;
    assert_eq!(
        status, 413,
        "a body without a length is cut at the limit too"
    );
    assert_eq!(err["error"]["code"], "request_too_large");

    f.upstream.set_behavior(Behavior {
        status: Some(500),
        ..Behavior::default()
    });
    let (status, err, _) = post(
        &f,
        "/v1/chat/completions",
        Some(KEY),
        chat("gpt-small", "x"),
    )
    .await;
    assert_eq!(status, 500, "upstream errors pass through");
    assert_eq!(err["error"]["type"], "server_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mebibyte_body_with_model_last_arrives_intact() {
    let f = start().await;
    let pad = "x".repeat(1024 * 1024);
    let body = format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}],\"pad\":\"{pad}\",\"model\":\"gpt-small\"}}");
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", f.url))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let seen = f.upstream.last_request().expect("hit");
    assert_eq!(seen.body_len, body.len(), "forwarded byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_endpoints_work() {
    let f = start().await;
    let (status, body, text) = post(
        &f,
        "/v1/embeddings",
        Some(KEY),
        json!({ "model": "gpt-small", "input": ["a", "b"] }),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
    let (status, body, _) = post(
        &f,
        "/v1/completions",
        Some(KEY),
        json!({ "model": "gpt-small", "prompt": "say this" }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["text"], "say this");
    let (status, _, _) = post(
        &f,
        "/api/inference/gpt-small",
        Some(KEY),
        json!({ "messages": [{"role":"user","content":"x"}] }),
    )
    .await;
    assert_eq!(status, 200, "model from the path");
    let (status, _, _) = post(&f, "/api/inference", Some(KEY), chat("gpt-small", "x")).await;
    assert_eq!(status, 200);

    let models: Value = reqwest::Client::new()
        .get(format!("{}/v1/models", f.url))
        .bearer_auth(OTHER_KEY)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["gpt-small"], "the tenant's plan allows one model");
    let metrics = reqwest::get(format!("{}/metrics", f.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("medgate_proxy_requests_total"));
    assert!(!metrics.contains(KEY), "no keys in metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_gateway_file_takes_effect_without_a_restart() {
    let f = start().await;
    let (status, _, _) = post(
        &f,
        "/v1/chat/completions",
        Some(KEY),
        chat("gpt-small", "x"),
    )
    .await;
    assert_eq!(status, 200);
    std::fs::write(
        &f.gateway_file,
        gateway_yaml(&f.upstream.base_url(), "suspended", dead_model()),
    )
    .expect("write");
    let changed = Instant::now();
    loop {
        let (status, err, _) = post(
            &f,
            "/v1/chat/completions",
            Some(KEY),
            chat("gpt-small", "x"),
        )
        .await;
        if status == 403 {
            assert_eq!(err["error"]["code"], "tenant_suspended");
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(3),
            "suspension not applied in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&f.gateway_file, "tenants: [ broken").expect("write");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, _, _) = post(
        &f,
        "/v1/chat/completions",
        Some(KEY),
        chat("gpt-small", "x"),
    )
    .await;
    assert_eq!(status, 403, "a broken file keeps the last good config");
}

/// Reads the access-log spool (the access log itself in static mode), waiting for `n` entries.
async fn access_log(dir: &Path, n: usize) -> Vec<medgate_config::AccessLogEntry> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let entries: Vec<medgate_config::AccessLogEntry> =
            std::fs::read_to_string(dir.join("access-log-spool.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
        if entries.len() >= n || Instant::now() > deadline {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_access_logged_without_its_query_string() {
    let f = start().await;
    let (status, ..) = post(
        &f,
        "/v1/chat/completions?secret=abc",
        Some(KEY),
        chat("gpt-small", "hi"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, ..) = post(
        &f,
        "/v1/chat/completions?secret=abc",
        Some(OTHER_KEY.replace('a', "b").as_str()),
        chat("gpt-small", "hi"),
    )
    .await;
    assert_eq!(status, 401);
    let health = reqwest::get(format!("{}/healthz?probe=1", f.url))
        .await
        .expect("sent");
    assert_eq!(health.status().as_u16(), 200);

    let entries = access_log(f.dir.path(), 3).await;
    let text =
        std::fs::read_to_string(f.dir.path().join("access-log-spool.jsonl")).expect("access log");
    assert!(
        !text.contains("secret") && !text.contains("probe"),
        "{text}"
    );
    assert!(!text.contains("sk-upstream-secret") && !text.contains(KEY));
    let find = |route: &str, status: u16| {
        entries
            .iter()
            .find(|e| e.route == route && e.status == status)
            .unwrap_or_else(|| panic!("{route} {status} in {entries:?}"))
    };
    let ok = find("inference", 200);
    assert_eq!(ok.path, "/v1/chat/completions");
    assert_eq!(ok.method, "POST");
    assert_eq!(ok.tenant_id.as_deref(), Some("t1"));
    assert_eq!(
        ok.upstream.as_deref(),
        Some(f.upstream.base_url().trim_end_matches("/v1"))
    );
    assert!(ok.bytes_sent > 0);
    assert!(ok.host.starts_with("127.0.0.1:"));
    let refused = find("inference", 401);
    assert_eq!(refused.tenant_id, None);
    assert!(
        entries
            .iter()
            .any(|e| e.route == "health" && e.path == "/healthz"),
        "local endpoints are logged too"
    );
    assert!(
        entries.iter().all(|e| e.instance_id == ok.instance_id),
        "one instance id per process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_is_metered_for_what_was_produced() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = start().await;
    f.upstream.set_behavior(Behavior {
        chunk_delay_ms: 300,
        stream_chunks: 10,
        ..Behavior::default()
    });
    let body = json!({
        "model": "gpt-small", "stream": true,
        "messages": [{ "role": "user", "content": "one two three four five six seven eight nine ten eleven twelve" }]
    })
    .to_string();
    let addr = f.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body.as_bytes()).await.expect("body");
    // Read until some generated text has arrived, then hang up.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"content\":\"one") {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "stream ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    drop(stream);
    let events = usage_events(f.dir.path(), 1).await;
    assert_eq!(
        events.len(),
        1,
        "exactly one event for the abandoned stream"
    );
    let e = &events[0];
    assert_eq!(e.status, 499, "recorded as a client that went away");
    assert!(
        !e.usage_reported,
        "no usage chunk came, so the counts are estimates"
    );
    assert!(e.output_tokens >= 1, "what was produced is metered: {e:?}");
    assert!(e.input_tokens >= 1);
}
