//! Generic routes and custom domains end to end, in static mode: matching by path prefix,
//! host, method and header; prefix stripping; weighted targets; health checks; retries;
//! `api_key_auth`; tenant routes; the gateway's own paths staying its own; and a verified
//! domain mapping its Host to its tenant on the inference path.

mod support;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::Json;
use medgate_proxy::{ConfigSource, ProxyHandle, ProxyOptions};
use medgate_testkit::MockUpstream;
use serde_json::{json, Value};
use support::{free_port, sha};

const KEY_T1: &str =
    "mg_0123456789ab_4f1c2a7d9e8b6c5a4f1c2a7d9e8b6c5a4f1c2a7d9e8b6c5a4f1c2a7d9e8b6c5a";
const KEY_T2: &str =
    "mg_ba9876543210_00000000000000000000000000000000000000000000000000000000000000aa";

/// A backend that answers every request with what it saw; `/health` answers `health`.
struct Backend {
    url: String,
    health: Arc<AtomicU16>,
}

#[derive(Clone)]
struct BackendState {
    name: &'static str,
    health: Arc<AtomicU16>,
}

async fn echo(State(s): State<BackendState>, req: Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.uri().path() == "/health" {
        let status = s.health.load(Ordering::Relaxed);
        return axum::http::StatusCode::from_u16(status)
            .unwrap_or(axum::http::StatusCode::OK)
            .into_response();
    }
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Json(json!({
        "backend": s.name,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or_default(),
        "host": header("host"),
        "authorization": header("authorization"),
        "tenant": header("x-medgate-tenant-id"),
        "forwarded_for": header("x-forwarded-for"),
    }))
    .into_response()
}

async fn backend(name: &'static str) -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let health = Arc::new(AtomicU16::new(200));
    let app = axum::Router::new().fallback(echo).with_state(BackendState {
        name,
        health: health.clone(),
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Backend { url, health }
}

fn tenant(id: &str, status: &str) -> Value {
    json!({ "id": id, "code": id, "status": status, "quotas": null, "allowed_models": [],
            "log_request_payloads": false, "cors_allowed_origins": [], "isolation": null })
}

fn route(id: &str, prefix: &str, targets: Value) -> Value {
    json!({ "id": id, "name": id, "tenant_id": null,
            "match": { "path_prefix": prefix }, "targets": targets })
}

struct Fixture {
    proxy: Option<ProxyHandle>,
    url: String,
    a: Backend,
    _b: Backend,
    sick: Backend,
    _model: MockUpstream,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(p) = self.proxy.take() {
            p.stop();
        }
    }
}

async fn start() -> Fixture {
    let a = backend("a").await;
    let b = backend("b").await;
    let sick = backend("sick").await;
    let model = MockUpstream::start().await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let t = |url: &str, weight: u32| json!({ "url": url, "weight": weight });
    let mut routes = vec![
        {
            let mut r = route("prefix", "/svc", json!([t(&format!("{}/base", a.url), 1)]));
            r["strip_prefix"] = json!(true);
            r
        },
        route("keep", "/keep", json!([t(&a.url, 1)])),
        {
            let mut r = route("host", "/", json!([t(&b.url, 1)]));
            r["match"]["hosts"] = json!(["api.example.test", "*.wild.test"]);
            r
        },
        {
            let mut r = route("post-only", "/m", json!([t(&a.url, 1)]));
            r["match"]["methods"] = json!(["POST"]);
            r
        },
        route("header-default", "/h", json!([t(&a.url, 1)])),
        {
            let mut r = route("header-blue", "/h", json!([t(&b.url, 1)]));
            r["match"]["headers"] = json!({ "x-env": "blue" });
            r
        },
        route("weighted", "/w", json!([t(&a.url, 3), t(&b.url, 1)])),
        {
            let mut r = route("checked", "/hc", json!([t(&a.url, 1), t(&sick.url, 1)]));
            r["health_check"] = json!({ "path": "/health", "interval_ms": 100, "timeout_ms": 500 });
            r
        },
        {
            let mut r = route("retried", "/retry", json!([t(&dead, 1), t(&a.url, 1)]));
            r["retries"] = json!(1);
            r["timeouts"] = json!({ "connect_ms": 500, "read_ms": 2000 });
            r
        },
        {
            let mut r = route("secure", "/secure", json!([t(&a.url, 1)]));
            r["plugins"] = json!(["api_key_auth"]);
            r
        },
        {
            let mut r = route("portal", "/portal", json!([t(&a.url, 1)]));
            r["tenant_id"] = json!("t1");
            r["match"]["hosts"] = json!(["clinic.example"]);
            r["plugins"] = json!(["api_key_auth"]);
            r
        },
        {
            let mut r = route("suspended", "/", json!([t(&a.url, 1)]));
            r["tenant_id"] = json!("t3");
            r["match"]["hosts"] = json!(["suspended.example"]);
            r
        },
        // The gateway's own paths stay its own: inference is never routed, and a route
        // without hosts never takes the management API.
        route("v1-other", "/v1", json!([t(&b.url, 1)])),
        route("api", "/api", json!([t(&b.url, 1)])),
    ];
    routes[2]["priority"] = json!(5);
    let config = json!({
        "tenants": [tenant("t1", "active"), tenant("t2", "active"), tenant("t3", "suspended")],
        "models": [{ "id": "m1", "name": "gpt-small", "enabled": true, "provider": "openai_compatible",
            "upstreams": [{ "url": model.base_url(), "weight": 1, "api_key": null }],
            "upstream_model": "gpt-small", "connect_timeout_ms": 2000, "read_timeout_ms": 10000,
            "available_to_all_tenants": true, "parameters": {} }],
        "api_keys": [
            { "id": "key_1", "tenant_id": "t1", "prefix": "mg_0123456789ab",
              "secrets": [{ "sha256": sha(KEY_T1), "valid_until": null }], "expires_at": null, "allowed_models": [] },
            { "id": "key_2", "tenant_id": "t2", "prefix": "mg_ba9876543210",
              "secrets": [{ "sha256": sha(KEY_T2), "valid_until": null }], "expires_at": null, "allowed_models": [] }
        ],
        "routes": routes,
        "domains": [
            { "hostname": "clinic.example", "tenant_id": "t1" },
            { "hostname": "suspended.example", "tenant_id": "t3" }
        ]
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, serde_yaml::to_string(&config).expect("yaml")).expect("write");
    let port = free_port();
    let proxy = medgate_proxy::start(ProxyOptions {
        listen: format!("127.0.0.1:{port}").parse().expect("addr"),
        data_dir: dir.path().to_owned(),
        source: ConfigSource::StaticFile(file),
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
        url,
        a,
        _b: b,
        sick,
        _model: model,
        _dir: dir,
    }
}

/// Sends `method path` with extra headers; returns (status, JSON body).
async fn call(f: &Fixture, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut r =
        reqwest::Client::new().request(method.parse().expect("method"), format!("{}{path}", f.url));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.expect("sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn backend_of(f: &Fixture, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let (status, body) = call(f, method, path, headers).await;
    assert_eq!(status, 200, "{method} {path}: {body}");
    body["backend"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_match_by_prefix_host_method_and_header() {
    let f = start().await;
    let (status, body) = call(&f, "GET", "/svc/items/7?q=1", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["path"], "/base/items/7?q=1",
        "prefix stripped, base path put first"
    );
    assert_eq!(
        body["host"],
        json!(f.a.url.trim_start_matches("http://")),
        "Host names the target"
    );
    assert_eq!(body["forwarded_for"], "127.0.0.1", "the client's address");
    let (_, body) = call(
        &f,
        "GET",
        "/svc/items/7",
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    assert_eq!(
        body["forwarded_for"], "203.0.113.9, 127.0.0.1",
        "the peer is appended to what came in"
    );
    let (_, body) = call(&f, "GET", "/svc", &[]).await;
    assert_eq!(body["path"], "/base/");
    let (_, body) = call(&f, "GET", "/keep/x", &[]).await;
    assert_eq!(body["path"], "/keep/x", "no strip_prefix: path kept");
    let (status, body) = call(&f, "GET", "/svcx", &[]).await;
    assert_eq!(status, 404, "prefixes match whole segments: {body}");
    assert_eq!(body["error"]["code"], "unknown_route");

    assert_eq!(
        backend_of(&f, "GET", "/any", &[("host", "api.example.test")]).await,
        "b"
    );
    assert_eq!(
        backend_of(&f, "GET", "/", &[("host", "x.wild.test:8443")]).await,
        "b"
    );
    assert_eq!(call(&f, "GET", "/any", &[]).await.0, 404, "other hosts");
    assert_eq!(call(&f, "GET", "/", &[("host", "wild.test")]).await.0, 404);

    assert_eq!(backend_of(&f, "POST", "/m", &[]).await, "a");
    assert_eq!(
        call(&f, "GET", "/m", &[]).await.0,
        404,
        "method not matched"
    );

    assert_eq!(backend_of(&f, "GET", "/h", &[("x-env", "blue")]).await, "b");
    assert_eq!(
        backend_of(&f, "GET", "/h", &[("x-env", "green")]).await,
        "a"
    );
    assert_eq!(backend_of(&f, "GET", "/h", &[]).await, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_targets_share_traffic_by_weight() {
    let f = start().await;
    let mut a = 0;
    for _ in 0..40 {
        if backend_of(&f, "GET", "/w", &[]).await == "a" {
            a += 1;
        }
    }
    assert_eq!(a, 30, "weights 3:1 under round robin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_targets_get_no_traffic_until_they_recover() {
    let f = start().await;
    f.sick.health.store(503, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..10 {
        assert_eq!(backend_of(&f, "GET", "/hc", &[]).await, "a");
    }
    f.sick.health.store(200, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(backend_of(&f, "GET", "/hc", &[]).await);
    }
    assert!(
        seen.iter().any(|b| b == "sick"),
        "recovered target back: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_retry_on_another_target() {
    let f = start().await;
    for _ in 0..6 {
        assert_eq!(backend_of(&f, "GET", "/retry", &[]).await, "a");
    }
    let mut failed = 0;
    for _ in 0..6 {
        if call(&f, "POST", "/retry", &[]).await.0 == 502 {
            failed += 1;
        }
    }
    assert_eq!(
        failed, 3,
        "POST is not retried: every other one hits the dead target"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_auth_guards_a_route_and_keeps_the_key_from_the_target() {
    let f = start().await;
    let (status, body) = call(&f, "GET", "/secure/x", &[]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    let bad = "Bearer mg_0123456789ab_nope";
    assert_eq!(
        call(&f, "GET", "/secure/x", &[("authorization", bad)])
            .await
            .0,
        401
    );
    let good = format!("Bearer {KEY_T1}");
    let (status, body) = call(
        &f,
        "GET",
        "/secure/x",
        &[("authorization", &good), ("x-medgate-tenant-id", "t2")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["authorization"].is_null(), "key not forwarded: {body}");
    assert_eq!(
        body["tenant"], "t1",
        "tenant from the key, not the client's header"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_routes_serve_their_domain_and_tenant_only() {
    let f = start().await;
    let host = ("host", "clinic.example");
    let t1 = format!("Bearer {KEY_T1}");
    let t2 = format!("Bearer {KEY_T2}");
    let (status, body) = call(&f, "GET", "/portal", &[host, ("authorization", &t1)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant"], "t1");
    let (status, body) = call(&f, "GET", "/portal", &[host, ("authorization", &t2)]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "tenant_mismatch");
    assert_eq!(
        call(&f, "GET", "/portal", &[("authorization", &t1)])
            .await
            .0,
        404,
        "not on other hosts"
    );
    let (status, body) = call(&f, "GET", "/x", &[("host", "suspended.example")]).await;
    assert_eq!(status, 403, "a suspended tenant's route stops: {body}");
    assert_eq!(body["error"]["code"], "tenant_suspended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_domain_refuses_other_tenants_keys_on_inference() {
    let f = start().await;
    let chat = json!({ "model": "gpt-small", "messages": [{ "role": "user", "content": "hi" }] });
    let send = |key: &'static str, host: Option<&'static str>| {
        let mut r = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", f.url))
            .bearer_auth(key)
            .json(&chat);
        if let Some(h) = host {
            r = r.header("host", h);
        }
        r.send()
    };
    let r = send(KEY_T2, Some("clinic.example")).await.expect("sent");
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "tenant_mismatch");
    let r = send(KEY_T1, Some("CLINIC.example:443"))
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200, "the domain's own tenant");
    let r = send(KEY_T2, None).await.expect("sent");
    assert_eq!(r.status().as_u16(), 200, "no domain: any tenant's key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_paths_are_never_routed() {
    let f = start().await;
    let chat = json!({ "model": "gpt-small", "messages": [{ "role": "user", "content": "hi" }] });
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", f.url))
        .bearer_auth(KEY_T1)
        .json(&chat)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    assert!(body["choices"].is_array(), "answered by the model: {body}");
    assert_eq!(backend_of(&f, "GET", "/v1/other", &[]).await, "b");
    let (status, body) = call(&f, "GET", "/api/tenants", &[]).await;
    assert_eq!(status, 404, "the management API is not routed: {body}");
    assert_eq!(call(&f, "GET", "/healthz", &[]).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_traffic_is_access_logged_by_route_id() {
    let f = start().await;
    let (status, _) = call(&f, "GET", "/keep/x?token=abc", &[]).await;
    assert_eq!(status, 200);
    let spool = f._dir.path().join("access-log-spool.jsonl");
    let deadline = Instant::now() + Duration::from_secs(5);
    let entry = loop {
        let text = std::fs::read_to_string(&spool).unwrap_or_default();
        assert!(!text.contains("token"), "no query string: {text}");
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<medgate_config::AccessLogEntry>(l).ok())
            .find(|e| e.path == "/keep/x");
        if let Some(e) = found {
            break e;
        }
        assert!(Instant::now() < deadline, "entry never logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entry.route, "keep");
    assert_eq!(entry.status, 200);
    assert_eq!(entry.upstream.as_deref(), Some(f.a.url.as_str()));
}
