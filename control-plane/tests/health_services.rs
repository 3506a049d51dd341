//! Health (API §6.3): `GET /api/health` with Redis and proxy counts, and the per-service view
//! merged from the live proxies' heartbeats.

mod common;

use std::time::{Duration, Instant};

use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Backend, Client, Stack};
use serde_json::{json, Value};

both_backends!(
    services_merge_two_instances,
    services_are_platform_only,
    health_counts_live_and_stale_proxies,
);

fn node(stack: &Stack) -> Client {
    stack.as_role(Role::Node, None)
}

fn service(
    name: &str,
    calls: u64,
    failures: u64,
    mean: f64,
    healthy: Value,
    breaker: &str,
) -> Value {
    json!({
        "service": name, "calls": calls, "failures": failures, "mean_latency_ms": mean,
        "max_latency_ms": (mean as u64) * 3, "healthy": healthy, "breaker_state": breaker
    })
}

async fn beat(stack: &Stack, instance: &str, services: Value) {
    node(stack)
        .post(
            "/api/internal/heartbeat",
            json!({
                "instance_id": instance, "address": "127.0.0.1:8080", "snapshot_version": null,
                "started_at": "2026-03-01T10:00:00Z", "requests_total": 1,
                "requests_per_sec": 1.0, "services": services
            }),
        )
        .await
        .expect(200);
}

async fn services_merge_two_instances(stack: Stack) {
    let upstream = "upstream:https://llm.example.com/v1";
    beat(
        &stack,
        "inst-a",
        json!([
            service("model:gpt-4o", 10, 1, 100.0, json!(true), "closed"),
            service(upstream, 4, 0, 50.0, Value::Null, "closed")
        ]),
    )
    .await;
    beat(
        &stack,
        "inst-b",
        json!([service(
            "model:gpt-4o",
            30,
            3,
            200.0,
            json!(false),
            "half_open"
        )]),
    )
    .await;
    let all = stack.admin().get("/api/health/services").await.expect(200);
    assert_eq!(all.json["live_instances"], 2);
    let services = all.json["services"].as_array().expect("services");
    assert_eq!(services.len(), 2);
    let m = &services[0];
    assert_eq!(m["service"], "model:gpt-4o");
    assert_eq!(m["calls"], 40);
    assert_eq!(m["failures"], 4);
    assert_eq!(m["error_rate"], 0.1);
    assert_eq!(m["mean_latency_ms"], 175.0, "weighted by calls");
    assert_eq!(m["max_latency_ms"], 600);
    assert_eq!(m["healthy"], false, "any instance unhealthy");
    assert_eq!(m["breaker_state"], "half_open", "the worst");
    assert_eq!(m["instances"].as_array().expect("instances").len(), 2);
    assert_eq!(services[1]["healthy"], Value::Null, "no check reported");

    // One service by its percent-encoded id.
    let one = stack
        .admin()
        .get("/api/health/services/model%3Agpt-4o")
        .await
        .expect(200);
    assert_eq!(one.json, *m);
    let encoded = upstream.replace(':', "%3A").replace('/', "%2F");
    let one = stack
        .admin()
        .get(&format!("/api/health/services/{encoded}"))
        .await
        .expect(200);
    assert_eq!(one.json["service"], upstream);
    assert_eq!(one.json["calls"], 4);
    stack
        .admin()
        .get("/api/health/services/model%3Anope")
        .await
        .expect(404);

    // An open breaker anywhere is the service's state.
    beat(
        &stack,
        "inst-b",
        json!([service("model:gpt-4o", 0, 0, 0.0, Value::Null, "open")]),
    )
    .await;
    let one = stack
        .admin()
        .get("/api/health/services/model%3Agpt-4o")
        .await
        .expect(200);
    assert_eq!(one.json["breaker_state"], "open");
    assert_eq!(one.json["healthy"], true, "inst-b no longer checks");
}

async fn services_are_platform_only(stack: Stack) {
    let t = common::tenant(&stack, "alpha", None).await;
    for role in [Role::TenantAdmin, Role::TenantViewer] {
        let c = stack.as_role(role, Some(&t));
        c.get("/api/health/services").await.expect(403);
        c.get("/api/health/services/model%3Am").await.expect(403);
    }
    stack
        .as_role(Role::Auditor, None)
        .get("/api/health/services")
        .await
        .expect(200);
    stack
        .anonymous()
        .get("/api/health/services")
        .await
        .expect(401);
    // The system health stays public.
    stack.anonymous().get("/api/health").await.expect(200);
}

async fn health_counts_live_and_stale_proxies(stack: Stack) {
    let h = stack.anonymous().get("/api/health").await.expect(200);
    assert_eq!(h.json["redis"]["status"], "not_configured");
    assert_eq!(h.json["status"], "ok");
    assert_eq!(h.json["proxies"], json!({ "live": 0, "stale": 0 }));
    beat(&stack, "inst-a", json!([])).await;
    beat(&stack, "inst-b", json!([])).await;
    let mut tx = stack.state.store().begin().await.expect("tx");
    sqlx::query("UPDATE proxy_instances SET last_heartbeat_at = $1 WHERE instance_id = $2")
        .bind("2020-01-01T00:00:00.000000Z")
        .bind("inst-b")
        .execute(&mut *tx)
        .await
        .expect("update");
    tx.commit().await.expect("commit");
    let h = stack.anonymous().get("/api/health").await.expect(200);
    assert_eq!(h.json["proxies"], json!({ "live": 1, "stale": 1 }));
    assert_eq!(h.json["proxy"]["status"], "ok");
}

/// A configured Redis that is down degrades the status (still 200: the store is up) and does
/// not make the endpoint slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_degrades_quickly() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let stack =
        Stack::start_sqlite_with(|s| s.redis_url = Some("redis://127.0.0.1:1".into())).await;
    let started = Instant::now();
    let h = stack.anonymous().get("/api/health").await.expect(200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the timeout"
    );
    assert_eq!(h.json["status"], "degraded");
    assert_eq!(h.json["redis"]["status"], "down");
    assert_eq!(h.json["store"]["status"], "ok");
    assert!(!h.text.contains("127.0.0.1:1"), "the URL is not shown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_health_pings_real_redis() {
    redis_ok(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_health_pings_real_redis() {
    redis_ok(Backend::Postgres).await;
}

/// Against 127.0.0.1:6379 when reachable (required with `MEDGATE_REQUIRE_REDIS=1`).
async fn redis_ok(backend: Backend) {
    let url = std::env::var("MEDGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    if tokio::net::TcpStream::connect("127.0.0.1:6379")
        .await
        .is_err()
        && url == "redis://127.0.0.1:6379"
    {
        if std::env::var("MEDGATE_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
            panic!("Redis is required (MEDGATE_REQUIRE_REDIS=1) but 127.0.0.1:6379 is unreachable");
        }
        eprintln!("SKIP health_pings_real_redis: Redis unreachable at 127.0.0.1:6379");
        return;
    }
    let Some(stack) = Stack::start_backend_with(backend, "health_pings_real_redis", |s| {
        s.redis_url = Some(url.clone())
    })
    .await
    else {
        return;
    };
    let h = stack.anonymous().get("/api/health").await.expect(200);
    assert_eq!(h.json["redis"]["status"], "ok", "{}", h.text);
    assert_eq!(h.json["status"], "ok");
}
