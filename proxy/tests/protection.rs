//! Traffic protection end to end (resilience.md §5), in static mode against testkit mock
//! upstreams: rate limits (local and Redis-backed), circuit breakers with exact half-open
//! probing, degradation, bulkheads, network allowlists and dedicated upstream pools.

mod support;

use std::time::{Duration, Instant};

use medgate_proxy::{ConfigSource, ProxyHandle, ProxyOptions};
use medgate_testkit::{Behavior, MockUpstream};
use serde_json::{json, Value};
use support::{free_port, sha, usage_events, KEY, OTHER_KEY};

struct Proxy {
    handle: Option<ProxyHandle>,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(p) = self.handle.take() {
            p.stop();
        }
    }
}

fn tenant(id: &str, code: &str, isolation: Value) -> Value {
    json!({ "id": id, "code": code, "status": "active", "quotas": null, "allowed_models": [],
            "log_request_payloads": false, "cors_allowed_origins": [], "isolation": isolation })
}

fn isolation(extra: Value) -> Value {
    let mut iso = json!({ "policy_id": "iso", "max_concurrent_requests": null,
        "max_concurrent_per_model": {}, "max_queue_depth": null, "queue_timeout_ms": null,
        "max_share_of_upstream_pct": null, "allowed_cidrs": [] });
    if let (Some(iso), Some(extra)) = (iso.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            iso.insert(k.clone(), v.clone());
        }
    }
    iso
}

fn model(id: &str, name: &str, upstreams: Value) -> Value {
    json!({ "id": id, "name": name, "enabled": true, "provider": "openai_compatible",
            "upstreams": upstreams, "upstream_model": format!("vendor-{name}"),
            "connect_timeout_ms": 500, "read_timeout_ms": 5000,
            "available_to_all_tenants": true, "parameters": {} })
}

fn upstream(url: &str) -> Value {
    json!([{ "url": url, "weight": 1, "api_key": null }])
}

fn dead_url() -> String {
    format!("http://127.0.0.1:{}/v1", free_port())
}

/// A gateway file: tenants t1 (KEY) and t2 (OTHER_KEY), the given models and protection.
fn gateway(tenants: Vec<Value>, models: Vec<Value>, protection: Value) -> Value {
    json!({
        "tenants": tenants,
        "models": models,
        "api_keys": [
            { "id": "key_1", "tenant_id": "t1", "prefix": "mg_0123456789ab",
              "secrets": [{ "sha256": sha(KEY), "valid_until": null }], "expires_at": null, "allowed_models": [] },
            { "id": "key_2", "tenant_id": "t2", "prefix": "mg_ba9876543210",
              "secrets": [{ "sha256": sha(OTHER_KEY), "valid_until": null }], "expires_at": null, "allowed_models": [] }
        ],
        "gateway": { "max_body_bytes": 2097152, "access_log_sample_rate": 0.0 },
        "protection": protection,
    })
}

fn plain_tenants() -> Vec<Value> {
    vec![
        tenant("t1", "clinic", Value::Null),
        tenant("t2", "other", Value::Null),
    ]
}

async fn start(config: &Value, redis_url: Option<String>) -> Proxy {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, serde_yaml::to_string(config).expect("yaml")).expect("write");
    let port = free_port();
    let handle = medgate_proxy::start(ProxyOptions {
        listen: format!("127.0.0.1:{port}").parse().expect("addr"),
        data_dir: dir.path().to_owned(),
        source: ConfigSource::StaticFile(file),
        threads: 2,
        grace_period_secs: 1,
        redis_url,
        redis_timeout: Duration::from_secs(2),
        spool: Default::default(),
        tls: None,
    })
    .expect("proxy starts");
    let url = format!("http://127.0.0.1:{port}");
    support::wait_ready(&url).await;
    Proxy {
        handle: Some(handle),
        url,
        dir,
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn chat_with(client: &reqwest::Client, url: &str, key: &str, body: Value) -> Answer {
    let r = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

async fn chat(p: &Proxy, key: &str, model: &str) -> Answer {
    chat_with(&reqwest::Client::new(), &p.url, key, message(model)).await
}

fn message(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 16 })
}

fn rate_limit(id: &str, scope: &str, metric: &str, limit: u64, extra: Value) -> Value {
    let mut rule = json!({ "id": id, "tenant_id": null, "scope": scope, "target": null,
        "metric": metric, "window": "hour", "limit": limit, "burst": null, "mode": "local",
        "on_store_error": "local_fallback", "fallback_limit": null });
    if let (Some(rule), Some(extra)) = (rule.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            rule.insert(k.clone(), v.clone());
        }
    }
    rule
}

fn breaker(id: &str, model: &str, extra: Value) -> Value {
    let mut rule = json!({ "id": id, "tenant_id": null,
        "target": { "kind": "model", "name": model }, "per_tenant": false,
        "strategy": "consecutive_failures", "threshold": 3.0, "slow_call_ms": null,
        "min_requests": 1, "window_ms": 10000, "open_ms": 60000, "max_open_ms": null,
        "half_open_probes": 1, "half_open_max_wait_ms": 30000, "count_429": false });
    if let (Some(rule), Some(extra)) = (rule.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            rule.insert(k.clone(), v.clone());
        }
    }
    rule
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_limit_refuses_with_retry_after_and_spares_other_tenants() {
    let mock = MockUpstream::start().await;
    let config = gateway(
        plain_tenants(),
        vec![model("m1", "gpt-small", upstream(&mock.base_url()))],
        json!({ "rate_limits": [rate_limit("rpm", "tenant", "requests", 3, json!({}))] }),
    );
    let p = start(&config, None).await;
    for expected_remaining in ["2", "1", "0"] {
        let a = chat(&p, KEY, "gpt-small").await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(a.header("x-ratelimit-remaining"), Some(expected_remaining));
    }
    let refused = chat(&p, KEY, "gpt-small").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["error"]["type"], "rate_limit_error");
    assert_eq!(refused.body["error"]["code"], "rate_limit_exceeded");
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    // 3 per hour: one request's worth comes back after 20 minutes.
    assert!((1_100..=1_200).contains(&retry), "{retry}");
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(
        mock.hits(),
        3,
        "the refused request never reached the upstream"
    );
    assert_eq!(chat(&p, OTHER_KEY, "gpt-small").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_limits_refuse_a_request_that_could_never_fit_as_not_retryable() {
    let mock = MockUpstream::start().await;
    let config = gateway(
        plain_tenants(),
        vec![model("m1", "gpt-small", upstream(&mock.base_url()))],
        json!({ "rate_limits": [rate_limit("tpm", "tenant", "tokens", 1000, json!({}))] }),
    );
    let p = start(&config, None).await;
    let mut body = message("gpt-small");
    body["max_tokens"] = json!(5000);
    let a = chat_with(&reqwest::Client::new(), &p.url, KEY, body).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "request_exceeds_rate_limit");
    assert!(a.header("retry-after").is_none());
    // A small request fits, and is charged its actual usage afterwards.
    assert_eq!(chat(&p, KEY, "gpt-small").await.status, 200);
    assert_eq!(mock.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_stops_calls_to_the_failing_model() {
    let mock = MockUpstream::start().await;
    mock.set_behavior(Behavior {
        status: Some(503),
        ..Behavior::default()
    });
    let config = gateway(
        plain_tenants(),
        vec![model("m1", "gpt-small", upstream(&mock.base_url()))],
        json!({ "breakers": [breaker("cb", "gpt-small", json!({}))] }),
    );
    let p = start(&config, None).await;
    for _ in 0..3 {
        assert_eq!(chat(&p, KEY, "gpt-small").await.status, 503);
    }
    let refused = chat(&p, KEY, "gpt-small").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("x-medgate-circuit"), Some("open"));
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.body["error"]["code"], "model_unavailable");
    assert_eq!(mock.hits(), 3, "the open breaker kept the 4th call away");
    // 4xx answers do not count as failures for another model's breaker either way.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_probe_reaches_a_recovering_upstream_under_100_concurrent_requests() {
    let mock = MockUpstream::start().await;
    mock.set_behavior(Behavior {
        status: Some(500),
        ..Behavior::default()
    });
    let config = gateway(
        plain_tenants(),
        vec![model("m1", "gpt-small", upstream(&mock.base_url()))],
        json!({ "breakers": [breaker("cb", "gpt-small", json!({ "threshold": 1.0, "open_ms": 1000 }))] }),
    );
    let p = start(&config, None).await;
    assert_eq!(chat(&p, KEY, "gpt-small").await.status, 500);
    assert_eq!(chat(&p, KEY, "gpt-small").await.status, 503, "open");
    // The upstream recovers, slowly enough that the probe is still in flight while the
    // other 99 arrive.
    mock.set_behavior(Behavior {
        delay_ms: 2_000,
        ..Behavior::default()
    });
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let before = mock.hits();
    let client = reqwest::Client::new();
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let (client, url) = (client.clone(), p.url.clone());
            tokio::spawn(async move { chat_with(&client, &url, KEY, message("gpt-small")).await })
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        if call.await.expect("join").status == 200 {
            ok += 1;
        }
    }
    assert_eq!(
        mock.hits() - before,
        1,
        "exactly one probe reached the upstream"
    );
    assert_eq!(ok, 1);
    // The probe succeeded: the breaker is closed again.
    assert_eq!(chat(&p, KEY, "gpt-small").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_degrades_to_the_fallback_model_which_is_metered() {
    let backup = MockUpstream::start().await;
    let config = gateway(
        plain_tenants(),
        vec![
            model("m1", "primary", upstream(&dead_url())),
            model("m2", "backup", upstream(&backup.base_url())),
        ],
        json!({
            "breakers": [breaker("cb", "primary", json!({ "threshold": 2.0 }))],
            "degradations": [{ "id": "dg", "tenant_id": null, "model": "primary",
                "trigger": { "type": "breaker_open" }, "fallback_models": ["backup"],
                "final_action": null, "priority": 0 }],
        }),
    );
    let p = start(&config, None).await;
    for _ in 0..2 {
        assert_eq!(
            chat(&p, KEY, "primary").await.status,
            502,
            "connect refused"
        );
    }
    let served = chat(&p, KEY, "primary").await;
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(
        served.header("x-medgate-degraded"),
        Some("fallback; model=backup; rule=dg")
    );
    let sent = backup.last_request().expect("fallback hit");
    assert_eq!(sent.json["model"], "vendor-backup", "body rewritten");
    let events = usage_events(p.dir.path(), 3).await;
    let last = events.last().expect("usage");
    assert_eq!(last.model_name, "backup", "the model actually used");
    assert_eq!(last.requested_model, "primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_rule_answers_statically_without_calling_any_upstream() {
    let mock = MockUpstream::start().await;
    let canned = json!({ "object": "chat.completion", "choices": [] }).to_string();
    let config = gateway(
        plain_tenants(),
        vec![model("m1", "gpt-small", upstream(&mock.base_url()))],
        json!({ "degradations": [{ "id": "maint", "tenant_id": "t1", "model": "gpt-small",
            "trigger": { "type": "manual" }, "fallback_models": [],
            "final_action": { "type": "static_response", "status": 200, "body": canned },
            "priority": 0 }] }),
    );
    let p = start(&config, None).await;
    let a = chat(&p, KEY, "gpt-small").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["object"], "chat.completion");
    assert_eq!(a.header("x-medgate-degraded"), Some("static; rule=maint"));
    assert_eq!(mock.hits(), 0);
    // The rule is t1's: t2 is served normally.
    assert_eq!(chat(&p, OTHER_KEY, "gpt-small").await.status, 200);
    assert_eq!(mock.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_concurrency_cap_is_refused_while_another_passes() {
    let mock = MockUpstream::start().await;
    mock.set_behavior(Behavior {
        delay_ms: 1_000,
        ..Behavior::default()
    });
    let tenants = vec![
        tenant(
            "t1",
            "clinic",
            isolation(json!({ "max_concurrent_requests": 2 })),
        ),
        tenant("t2", "other", Value::Null),
    ];
    let config = gateway(
        tenants,
        vec![model("m1", "gpt-small", upstream(&mock.base_url()))],
        json!({}),
    );
    let p = start(&config, None).await;
    let client = reqwest::Client::new();
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let (client, url) = (client.clone(), p.url.clone());
            tokio::spawn(async move { chat_with(&client, &url, KEY, message("gpt-small")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = chat(&p, OTHER_KEY, "gpt-small").await;
    assert_eq!(other.status, 200, "t2 is not held back by t1's cap");
    let mut statuses = Vec::new();
    for call in calls {
        let a = call.await.expect("join");
        if a.status == 429 {
            assert_eq!(a.body["error"]["code"], "concurrency_limit_exceeded");
        }
        statuses.push(a.status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 429, 429, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_outside_the_tenant_allowlist_is_refused() {
    let mock = MockUpstream::start().await;
    let tenants = vec![
        tenant(
            "t1",
            "clinic",
            isolation(json!({ "allowed_cidrs": ["10.0.0.0/8"] })),
        ),
        tenant(
            "t2",
            "other",
            isolation(json!({ "allowed_cidrs": ["127.0.0.0/8"] })),
        ),
    ];
    let config = gateway(
        tenants,
        vec![model("m1", "gpt-small", upstream(&mock.base_url()))],
        json!({}),
    );
    let p = start(&config, None).await;
    let a = chat(&p, KEY, "gpt-small").await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body["error"]["code"], "ip_not_allowed");
    assert_eq!(chat(&p, OTHER_KEY, "gpt-small").await.status, 200);
    assert_eq!(mock.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_pool_serves_its_tenant_and_spills_over_only_when_allowed() {
    let shared = MockUpstream::start().await;
    let dedicated_dead = dead_url();
    let upstreams = json!([
        { "url": shared.base_url(), "weight": 1, "api_key": null },
        { "url": dedicated_dead, "weight": 1, "api_key": null, "pool": "silo" }
    ]);
    let build = |spill: bool| {
        gateway(
            vec![
                tenant(
                    "t1",
                    "clinic",
                    isolation(json!({ "dedicated_pool": "silo", "spillover_to_shared": spill })),
                ),
                tenant("t2", "other", Value::Null),
            ],
            vec![model("m1", "gpt-small", upstreams.clone())],
            json!({ "breakers": [{ "id": "silo-cb", "tenant_id": null,
                "target": { "kind": "upstream", "name": dedicated_dead }, "per_tenant": false,
                "strategy": "consecutive_failures", "threshold": 1.0, "slow_call_ms": null,
                "min_requests": 1, "window_ms": 10000, "open_ms": 60000, "max_open_ms": null,
                "half_open_probes": 1, "half_open_max_wait_ms": 30000, "count_429": false }] }),
        )
    };
    let p = start(&build(false), None).await;
    // t1's pool is down: it fails, and never touches the shared pool.
    assert_eq!(chat(&p, KEY, "gpt-small").await.status, 502);
    assert_eq!(chat(&p, KEY, "gpt-small").await.status, 503, "breaker open");
    assert_eq!(shared.hits(), 0);
    // Other tenants use the shared pool only.
    for _ in 0..4 {
        assert_eq!(chat(&p, OTHER_KEY, "gpt-small").await.status, 200);
    }
    assert_eq!(shared.hits(), 4);
    drop(p);

    let p = start(&build(true), None).await;
    assert_eq!(
        chat(&p, KEY, "gpt-small").await.status,
        502,
        "its pool first"
    );
    let spilled = chat(&p, KEY, "gpt-small").await;
    assert_eq!(spilled.status, 200, "spill-over to the shared pool");
    assert_eq!(shared.hits(), 5);
}

// ---------------------------------------------------------------------------------------
// Redis-backed limits
// ---------------------------------------------------------------------------------------

fn redis_reachable(url: &str) -> bool {
    let reachable = std::net::TcpStream::connect_timeout(
        &url.trim_start_matches("redis://")
            .trim_end_matches('/')
            .parse()
            .expect("addr"),
        Duration::from_millis(300),
    )
    .is_ok();
    if !reachable {
        assert!(
            std::env::var("MEDGATE_REQUIRE_REDIS").is_err(),
            "Redis at {url} is required (MEDGATE_REQUIRE_REDIS) but not reachable"
        );
        eprintln!("skipped: Redis at {url} is not reachable");
    }
    reachable
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_admit_exactly_the_limit() {
    let redis = "redis://127.0.0.1:6379".to_owned();
    if !redis_reachable(&redis) {
        return;
    }
    let mock = MockUpstream::start().await;
    for round in 0..3 {
        // A fresh rule id per round: counters of earlier rounds live on in Redis (with a TTL).
        let id = format!("cluster-{}-{round}", uuid::Uuid::new_v4().simple());
        let config = gateway(
            plain_tenants(),
            vec![model("m1", "gpt-small", upstream(&mock.base_url()))],
            json!({ "rate_limits": [rate_limit(&id, "tenant", "requests", 100,
                json!({ "mode": "cluster", "on_store_error": "fail_closed" }))] }),
        );
        let a = start(&config, Some(redis.clone())).await;
        let b = start(&config, Some(redis.clone())).await;
        let client = reqwest::Client::new();
        let calls: Vec<_> = (0..300)
            .map(|i| {
                let url = if i % 2 == 0 {
                    a.url.clone()
                } else {
                    b.url.clone()
                };
                let client = client.clone();
                tokio::spawn(
                    async move { chat_with(&client, &url, KEY, message("gpt-small")).await },
                )
            })
            .collect();
        let (mut ok, mut limited) = (0, 0);
        for call in calls {
            match call.await.expect("join").status {
                200 => ok += 1,
                429 => limited += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!((ok, limited), (100, 200), "round {round}");
    }
}

/// A Redis server of the test's own, so it can be killed.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    fn start() -> Option<Self> {
        let port = free_port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { child, url })
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_dies_each_rule_follows_its_failure_mode() {
    let Some(mut redis) = OwnRedis::start() else {
        assert!(
            std::env::var("MEDGATE_REQUIRE_REDIS").is_err(),
            "redis-server is required (MEDGATE_REQUIRE_REDIS) but could not be started"
        );
        eprintln!("skipped: redis-server could not be started");
        return;
    };
    let mock = MockUpstream::start().await;
    let rules = json!({ "rate_limits": [
        // t1: fail closed; t2: local fallback at 2 per hour.
        rate_limit("closed", "tenant", "requests", 100,
            json!({ "tenant_id": "t1", "mode": "cluster", "on_store_error": "fail_closed" })),
        rate_limit("fallback", "tenant", "requests", 100,
            json!({ "tenant_id": "t2", "mode": "cluster", "on_store_error": "local_fallback",
                    "fallback_limit": 2 })),
    ] });
    let config = gateway(
        plain_tenants(),
        vec![model("m1", "gpt-small", upstream(&mock.base_url()))],
        rules,
    );
    let p = start(&config, Some(redis.url.clone())).await;
    assert_eq!(chat(&p, KEY, "gpt-small").await.status, 200);
    assert_eq!(chat(&p, OTHER_KEY, "gpt-small").await.status, 200);
    redis.kill();
    let closed = chat(&p, KEY, "gpt-small").await;
    assert_eq!(closed.status, 503, "{}", closed.body);
    assert_eq!(closed.body["error"]["code"], "rate_limit_unavailable");
    let mut fallback = Vec::new();
    for _ in 0..3 {
        fallback.push(chat(&p, OTHER_KEY, "gpt-small").await.status);
    }
    assert_eq!(
        fallback,
        vec![200, 200, 429],
        "fallback limit of 2 in this proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_past_its_hard_cap_is_refused_until_the_period_ends() {
    let mock = MockUpstream::start().await;
    let config = gateway(
        plain_tenants(),
        vec![model("m1", "gpt-small", upstream(&mock.base_url()))],
        json!({ "quota_caps": {
            "t1": "2999-01-01T00:00:00.000000Z",
            "t2": "2000-01-01T00:00:00.000000Z",
        } }),
    );
    let p = start(&config, None).await;
    let capped = chat(&p, KEY, "gpt-small").await;
    assert_eq!(capped.status, 429, "{}", capped.body);
    assert_eq!(capped.body["error"]["code"], "quota_exceeded");
    let retry: u64 = capped
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!(retry > 86_400, "until the period ends: {retry}");
    assert_eq!(mock.hits(), 0);
    // A cap whose period has ended no longer applies.
    assert_eq!(chat(&p, OTHER_KEY, "gpt-small").await.status, 200);
}
