//! Manual recovery (`POST /api/health/recovery`), the live breaker state the proxies report
//! in their heartbeats, upstream pools of models, and the OpenAPI entries of traffic
//! protection, on SQLite and PostgreSQL.

mod common;

use common::{create_model, create_model_with, id, snapshot, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    recovery_bumps_the_counter_in_the_snapshot_and_is_audited,
    recovery_is_scoped_to_what_the_caller_owns,
    breaker_live_state_comes_from_heartbeats,
    model_upstreams_take_a_pool_and_a_concurrency,
    protection_endpoints_are_in_the_openapi_document,
    ids_no_store_can_hold_are_404_not_500,
);

async fn breaker_on(stack: &Stack, model: &str) -> String {
    id(&stack
        .admin()
        .post(
            "/api/circuit-breakers",
            json!({ "target": { "kind": "model", "name": model } }),
        )
        .await
        .expect(201)
        .json)
}

async fn recover(stack: &Stack, target: &str) -> medgate_testkit::Reply {
    stack
        .admin()
        .post("/api/health/recovery", json!({ "target": target }))
        .await
}

async fn recovery_bumps_the_counter_in_the_snapshot_and_is_audited(stack: Stack) {
    create_model(&stack, "flaky").await;
    let cb = breaker_on(&stack, "flaky").await;
    let before = snapshot(&stack).await.version;

    let r = recover(&stack, &cb).await.expect(202);
    assert_eq!(r.json["target"], json!(cb));
    assert_eq!(r.json["breakers"], json!([cb]));
    assert_eq!(r.json["counter"], 1);
    let v1 = r.json["snapshot_version"].as_u64().expect("version");
    assert!(v1 > before);
    let s = snapshot(&stack).await;
    assert_eq!(s.version, v1);
    assert_eq!(s.protection.recoveries.get(&cb), Some(&1));

    let r = recover(&stack, &cb).await.expect(202);
    assert_eq!(r.json["counter"], 2);
    assert_eq!(
        snapshot(&stack).await.protection.recoveries.get(&cb),
        Some(&2)
    );

    let r = recover(&stack, "model:flaky").await.expect(202);
    assert_eq!(r.json["breakers"], json!([cb]));
    let r = recover(&stack, "upstream:https://llm.example.com/v1")
        .await
        .expect(202);
    assert_eq!(r.json["breakers"], json!([]));
    let s = snapshot(&stack).await;
    assert_eq!(s.protection.recoveries.get("model:flaky"), Some(&1));
    assert_eq!(
        s.protection
            .recoveries
            .get("upstream:https://llm.example.com/v1"),
        Some(&1)
    );

    for unknown in [
        "cb_nothing",
        "model:nothing",
        "upstream:https://nowhere.example",
        "route:rte_nothing",
    ] {
        let r = recover(&stack, unknown).await;
        assert_eq!(r.status, 404, "{unknown}: {}", r.text);
    }
    let r = recover(&stack, "").await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = stack
        .admin()
        .post(
            "/api/health/recovery",
            json!({ "target": cb, "force": true }),
        )
        .await;
    assert_eq!(r.status, 422, "unknown field: {}", r.text);

    let audit = stack
        .admin()
        .get("/api/audit-logs?action=health.recovery&page_size=100")
        .await
        .expect(200);
    let entries = audit.json["items"].as_array().expect("items");
    let ok = entries.iter().filter(|e| e["outcome"] == "success").count();
    assert_eq!(ok, 4, "{}", audit.text);
    assert!(entries
        .iter()
        .any(|e| e["resource_id"] == json!(cb) && e["outcome"] == "success"));
}

async fn recovery_is_scoped_to_what_the_caller_owns(stack: Stack) {
    create_model(&stack, "owned").await;
    let a = tenant(&stack, "rec-a", None).await;
    let b = tenant(&stack, "rec-b", None).await;
    let admin_a = stack.as_role(Role::TenantAdmin, Some(&a));
    let mine = id(&admin_a
        .post(
            "/api/circuit-breakers",
            json!({ "target": { "kind": "model", "name": "owned" }, "per_tenant": true }),
        )
        .await
        .expect(201)
        .json);
    let theirs = id(&stack
        .as_role(Role::TenantAdmin, Some(&b))
        .post(
            "/api/circuit-breakers",
            json!({ "target": { "kind": "model", "name": "owned" } }),
        )
        .await
        .expect(201)
        .json);
    let platform = breaker_on(&stack, "owned").await;

    let call = |target: &str| {
        let body = json!({ "target": target });
        let client = admin_a.clone();
        async move { client.post("/api/health/recovery", body).await }
    };
    call(&mine).await.expect(202);
    call(&theirs).await.expect(404);
    call(&platform).await.expect(404);
    call("model:owned").await.expect(403);
    stack
        .as_role(Role::TenantViewer, Some(&a))
        .post("/api/health/recovery", json!({ "target": mine }))
        .await
        .expect(403);

    // A platform admin's model target covers every breaker of the model.
    let r = recover(&stack, "model:owned").await.expect(202);
    let mut covered: Vec<String> = serde_json::from_value(r.json["breakers"].clone()).expect("ids");
    covered.sort();
    let mut all = vec![mine, theirs, platform];
    all.sort();
    assert_eq!(covered, all);
}

fn beat(instance: &str, breakers: Value) -> Value {
    json!({
        "instance_id": instance,
        "address": "127.0.0.1:8080",
        "snapshot_version": 1,
        "started_at": "2026-03-01T10:00:00Z",
        "requests_total": 10,
        "requests_per_sec": 1.0,
        "breakers": breakers
    })
}

async fn breaker_live_state_comes_from_heartbeats(stack: Stack) {
    create_model(&stack, "wobbly").await;
    let cb = breaker_on(&stack, "wobbly").await;
    let other = breaker_on(&stack, "wobbly").await;
    let node = stack.as_role(Role::Node, None);
    let report = |state: &str, since: &str, retry: Option<&str>, opened: u64| {
        json!({
            "breaker_id": cb, "tenant_id": null, "state": state, "since": since,
            "next_retry_at": retry, "times_opened": opened, "window_calls": 12, "window_failures": 7
        })
    };
    node.post(
        "/api/internal/heartbeat",
        beat(
            "inst-a",
            json!([report(
                "open",
                "2026-03-01T10:00:05Z",
                Some("2026-03-01T10:00:15Z"),
                2
            )]),
        ),
    )
    .await
    .expect(200);
    node.post(
        "/api/internal/heartbeat",
        beat(
            "inst-b",
            json!([report("half_open", "2026-03-01T10:00:01Z", None, 1)]),
        ),
    )
    .await
    .expect(200);

    let r = stack
        .admin()
        .get(&format!("/api/circuit-breakers/{cb}"))
        .await
        .expect(200);
    let live = &r.json["live"];
    assert_eq!(live["state"], "open", "{}", r.text);
    assert_eq!(live["since"], "2026-03-01T10:00:05Z");
    assert_eq!(live["next_retry_at"], "2026-03-01T10:00:15Z");
    assert_eq!(live["times_opened"], 3);
    let instances = live["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), 2);
    let a = instances
        .iter()
        .find(|i| i["instance_id"] == "inst-a")
        .expect("inst-a");
    assert_eq!(a["state"], "open");
    assert_eq!(a["window_calls"], 12);
    assert_eq!(a["window_failures"], 7);
    assert!(a["tenant_id"].is_null());

    let list = stack.admin().get("/api/circuit-breakers").await.expect(200);
    let items = list.json["items"].as_array().expect("items");
    let other_live = &items
        .iter()
        .find(|i| i["id"] == json!(other))
        .expect("other")["live"];
    assert_eq!(other_live["state"], "closed");
    assert_eq!(other_live["instances"], json!([]));
    let mine = items.iter().find(|i| i["id"] == json!(cb)).expect("cb");
    assert_eq!(mine["live"]["state"], "open");
}

async fn model_upstreams_take_a_pool_and_a_concurrency(stack: Stack) {
    let body = json!({
        "name": "pooled",
        "upstreams": [
            { "url": "https://gold.example.com/v1", "pool": "gold-1", "max_concurrency": 50, "api_key": "sk-secret" },
            { "url": "https://shared.example.com/v1" }
        ]
    });
    let m = create_model_with(&stack, body).await;
    assert_eq!(m["upstreams"][0]["pool"], "gold-1");
    assert_eq!(m["upstreams"][0]["max_concurrency"], 50);
    assert_eq!(m["upstreams"][0]["has_api_key"], true);
    assert!(m["upstreams"][1]["pool"].is_null());
    assert!(!m.to_string().contains("sk-secret"), "keys are write-only");

    let s = snapshot(&stack).await;
    let entry = s.models.iter().find(|e| e.name == "pooled").expect("model");
    assert_eq!(entry.upstreams[0].pool.as_deref(), Some("gold-1"));
    assert_eq!(entry.upstreams[0].max_concurrency, Some(50));
    assert_eq!(entry.upstreams[1].pool, None);

    for (upstream, field) in [
        (
            json!({ "url": "https://x.example", "pool": "Gold!" }),
            "upstreams[0].pool",
        ),
        (
            json!({ "url": "https://x.example", "pool": "" }),
            "upstreams[0].pool",
        ),
        (
            json!({ "url": "https://x.example", "max_concurrency": 0 }),
            "upstreams[0].max_concurrency",
        ),
        (
            json!({ "url": "https://x.example", "max_concurrency": 100001 }),
            "upstreams[0].max_concurrency",
        ),
    ] {
        let r = stack
            .admin()
            .post(
                "/api/models",
                json!({ "name": "bad-pool", "upstreams": [upstream] }),
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
    }
}

async fn protection_endpoints_are_in_the_openapi_document(stack: Stack) {
    let doc = stack.anonymous().get("/api/openapi.json").await.expect(200);
    let paths = &doc.json["paths"];
    for (method, path) in [
        ("get", "/api/rate-limits"),
        ("post", "/api/rate-limits"),
        ("get", "/api/rate-limits/{id}"),
        ("put", "/api/rate-limits/{id}"),
        ("delete", "/api/rate-limits/{id}"),
        ("get", "/api/tenants/{tenantId}/rate-limits"),
        ("get", "/api/circuit-breakers"),
        ("post", "/api/circuit-breakers"),
        ("get", "/api/circuit-breakers/{id}"),
        ("put", "/api/circuit-breakers/{id}"),
        ("delete", "/api/circuit-breakers/{id}"),
        ("get", "/api/degradation-rules"),
        ("post", "/api/degradation-rules"),
        ("get", "/api/degradation-rules/{id}"),
        ("put", "/api/degradation-rules/{id}"),
        ("delete", "/api/degradation-rules/{id}"),
        ("post", "/api/health/recovery"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    let params = paths["/api/rate-limits"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    for name in ["scope", "metric", "tenant_id", "page"] {
        assert!(params.iter().any(|p| p["name"] == name), "filter {name}");
    }
}

/// PostgreSQL refuses NUL in text: such ids must never reach the store.
async fn ids_no_store_can_hold_are_404_not_500(stack: Stack) {
    let admin = stack.admin();
    for path in [
        "/api/rate-limits/a%00b",
        "/api/circuit-breakers/a%00b",
        "/api/degradation-rules/a%00b",
        "/api/rate-limits?tenant_id=a%00b",
        "/api/tenants/a%00b/rate-limits",
    ] {
        admin.get(path).await.expect(404);
    }
    admin
        .delete("/api/circuit-breakers/a%00b")
        .await
        .expect(404);
    let body = json!({ "tenant_id": "a\u{0}b", "model": "m" });
    admin.post("/api/degradation-rules", body).await.expect(404);
    let r = recover(&stack, "a\u{0}b").await;
    assert_eq!(r.status, 422, "{}", r.text);
}
