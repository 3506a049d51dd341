//! Usage ingest (DESIGN.md §3.2) and inference history (API §3.4): idempotent under
//! concurrent replays, validated, filtered, paginated and tenant-scoped.

mod common;

use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Client, Stack};
use serde_json::{json, Value};

both_backends!(
    concurrent_replays_are_stored_exactly_once,
    replays_and_in_batch_repeats_count_as_duplicates,
    bad_batches_are_refused_whole,
    large_batches_are_accepted,
    history_filters_paginates_and_orders_newest_first,
    history_is_tenant_scoped,
);

fn event(request_id: &str, tenant: &str, minute: u32) -> Value {
    json!({
        "request_id": request_id,
        "tenant_id": tenant,
        "api_key_id": "key_0123456789ab",
        "key_prefix": "mg_0123456789ab",
        "requested_model": "fast",
        "model_id": "mdl_1",
        "model_name": "gpt-4o",
        "endpoint": "chat",
        "input_tokens": 100,
        "output_tokens": 20,
        "status": 200,
        "latency_ms": 850,
        "ttft_ms": 120,
        "streamed": true,
        "usage_reported": true,
        "occurred_at": format!("2026-03-01T10:{minute:02}:00Z")
    })
}

fn node(stack: &Stack) -> Client {
    stack.as_role(Role::Node, None)
}

async fn history_total(stack: &Stack, query: &str) -> u64 {
    stack
        .admin()
        .get(&format!("/api/inference/history{query}"))
        .await
        .expect(200)
        .json["total"]
        .as_u64()
        .expect("total")
}

async fn concurrent_replays_are_stored_exactly_once(stack: Stack) {
    let events: Vec<Value> = (0..50)
        .map(|i| event(&format!("req-{i:03}"), "tnt_a", i % 60))
        .collect();
    let batch = json!({ "events": events });
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = node(&stack);
            let b = batch.clone();
            tokio::spawn(async move { c.post("/api/internal/usage", b).await })
        })
        .collect();
    let (mut inserted, mut duplicates) = (0, 0);
    for t in tasks {
        let r = t.await.expect("task").expect(200);
        inserted += r.json["inserted"].as_u64().expect("inserted");
        duplicates += r.json["duplicates"].as_u64().expect("duplicates");
    }
    assert_eq!(inserted, 50, "each event stored once over all replays");
    assert_eq!(duplicates, 19 * 50);
    assert_eq!(history_total(&stack, "").await, 50);
    let r = node(&stack)
        .post("/api/internal/usage", batch)
        .await
        .expect(200);
    assert_eq!(r.json, json!({ "inserted": 0, "duplicates": 50 }));
}

async fn replays_and_in_batch_repeats_count_as_duplicates(stack: Stack) {
    let r = node(&stack)
        .post(
            "/api/internal/usage",
            json!({ "events": [event("r-1", "t", 1), event("r-1", "t", 1), event("r-2", "t", 2)] }),
        )
        .await
        .expect(200);
    assert_eq!(r.json, json!({ "inserted": 2, "duplicates": 1 }));
    // Same id, different content: refused (U2), and the first content stands.
    let mut changed = event("r-1", "t", 1);
    changed["output_tokens"] = json!(999);
    let r = node(&stack)
        .post("/api/internal/usage", json!({ "events": [changed] }))
        .await
        .expect(422);
    assert_eq!(r.error_code(), "usage_conflict");
    let h = stack
        .admin()
        .get("/api/inference/history?model=gpt-4o")
        .await
        .expect(200);
    let first = h.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["request_id"] == "r-1")
        .expect("r-1");
    assert_eq!(first["output_tokens"], 20);
    let r = node(&stack)
        .post("/api/internal/usage", json!({ "events": [] }))
        .await
        .expect(200);
    assert_eq!(r.json, json!({ "inserted": 0, "duplicates": 0 }));
    let audit = stack
        .admin()
        .get("/api/audit-logs?action=internal.usage")
        .await
        .expect(200);
    assert_eq!(audit.json["total"], 3, "each batch audited once");
    assert_eq!(
        common::audit_details(&audit.json["items"][2])["inserted"],
        2
    );
}

async fn bad_batches_are_refused_whole(stack: Stack) {
    let n = node(&stack);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("request_id", json!(""), "events[1].request_id"),
        ("request_id", json!("has space"), "events[1].request_id"),
        ("tenant_id", json!("t/../x"), "events[1].tenant_id"),
        ("status", json!(42), "events[1].status"),
        ("status", json!(600), "events[1].status"),
        ("occurred_at", json!("yesterday"), "events[1].occurred_at"),
        (
            "input_tokens",
            json!(9_223_372_036_854_775_808u64),
            "events[1].input_tokens",
        ),
        ("endpoint", json!(""), "events[1].endpoint"),
        ("model_name", json!("m".repeat(129)), "events[1].model_name"),
        (
            "requested_model",
            json!("m".repeat(1025)),
            "events[1].requested_model",
        ),
    ];
    for (field, value, path) in cases {
        let mut bad = event("bad-2", "t", 2);
        bad[field] = value;
        let r = n
            .post(
                "/api/internal/usage",
                json!({ "events": [event("ok-1", "t", 1), bad] }),
            )
            .await
            .expect(422);
        assert_eq!(r.json["error"]["details"]["field"], path, "{field}");
    }
    let with = |field: &str, value: Value| {
        let mut e = event("x", "t", 1);
        e[field] = value;
        json!({ "events": [e] })
    };
    for body in [
        json!({ "events": [{ "request_id": "x" }] }),
        json!({ "events": [event("x", "t", 1)], "extra": 1 }),
        with("colour", json!("blue")),
        with("status", json!(-1)),
        with("streamed", json!("yes")),
    ] {
        let r = n
            .post("/api/internal/usage", body.clone())
            .await
            .expect(422);
        assert_eq!(r.error_code(), "invalid_body", "{body}");
    }
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| event(&format!("m-{i}"), "t", 0))
        .collect();
    let r = n
        .post("/api/internal/usage", json!({ "events": too_many }))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "events");
    assert_eq!(history_total(&stack, "").await, 0, "nothing stored");

    let tid = stack.create_active_tenant("not-a-node").await;
    let tid = tid["id"].as_str().expect("id");
    let batch = json!({ "events": [event("x", tid, 1)] });
    for role in [Role::TenantAdmin, Role::Auditor] {
        let tenant = role.requires_tenant().then_some(tid);
        stack
            .as_role(role, tenant)
            .post("/api/internal/usage", batch.clone())
            .await
            .expect(403);
    }
    stack
        .anonymous()
        .post("/api/internal/usage", batch)
        .await
        .expect(401);
}

async fn large_batches_are_accepted(stack: Stack) {
    let events: Vec<Value> = (0..10_000)
        .map(|i| event(&format!("big-{i:05}"), "tnt_big", (i % 60) as u32))
        .collect();
    let body = json!({ "events": events });
    assert!(
        serde_json::to_vec(&body).expect("json").len() > 1024 * 1024,
        "larger than the API-wide body limit"
    );
    let r = node(&stack)
        .post("/api/internal/usage", body)
        .await
        .expect(200);
    assert_eq!(r.json, json!({ "inserted": 10_000, "duplicates": 0 }));
    assert_eq!(history_total(&stack, "?tenant_id=tnt_big").await, 10_000);
}

/// Six events of two tenants over time, models, statuses and keys.
async fn seed_history(stack: &Stack, a: &str, b: &str) {
    let mut events = Vec::new();
    for (i, (tenant, model, status, key, minute)) in [
        (a, "gpt-4o", 200, "key_aaaaaaaaaaaa", 1),
        (a, "gpt-4o", 429, "key_aaaaaaaaaaaa", 2),
        (a, "qwen-max", 200, "key_bbbbbbbbbbbb", 3),
        (a, "qwen-max", 502, "key_bbbbbbbbbbbb", 4),
        (b, "gpt-4o", 200, "key_cccccccccccc", 5),
        (b, "qwen-max", 200, "key_cccccccccccc", 6),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(&format!("h-{i}"), tenant, minute);
        e["model_name"] = json!(model);
        e["requested_model"] = json!(model);
        e["status"] = json!(status);
        e["api_key_id"] = json!(key);
        e["input_tokens"] = json!(10 * (i + 1));
        e["output_tokens"] = json!(i + 1);
        e["ttft_ms"] = if i == 0 { Value::Null } else { json!(50) };
        e["streamed"] = json!(i % 2 == 0);
        events.push(e);
    }
    node(stack)
        .post("/api/internal/usage", json!({ "events": events }))
        .await
        .expect(200);
}

async fn history_filters_paginates_and_orders_newest_first(stack: Stack) {
    let a = common::tenant(&stack, "hist-a", None).await;
    let b = common::tenant(&stack, "hist-b", None).await;
    seed_history(&stack, &a, &b).await;
    let admin = stack.admin();

    let r = admin.get("/api/inference/history").await.expect(200);
    assert_eq!(r.json["total"], 6);
    let ids: Vec<&str> = r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["request_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec!["h-5", "h-4", "h-3", "h-2", "h-1", "h-0"]);
    let last = &r.json["items"][5];
    assert_eq!(last["tenant_id"], json!(a));
    assert_eq!(last["occurred_at"], "2026-03-01T10:01:00.000000Z");
    assert_eq!(last["key_prefix"], "mg_0123456789ab");
    assert_eq!(last["requested_model"], "gpt-4o");
    assert_eq!(last["endpoint"], "chat");
    assert_eq!(last["input_tokens"], 10);
    assert_eq!(last["output_tokens"], 1);
    assert_eq!(last["total_tokens"], 11);
    assert_eq!(last["latency_ms"], 850);
    assert_eq!(last["ttft_ms"], Value::Null);
    assert_eq!(last["streamed"], true);
    assert_eq!(r.json["items"][4]["ttft_ms"], 50);
    assert_eq!(r.json["items"][4]["streamed"], false);

    let r = admin
        .get("/api/inference/history?page=2&page_size=4")
        .await
        .expect(200);
    assert_eq!(r.json["total"], 6);
    assert_eq!(r.json["items"].as_array().expect("items").len(), 2);
    assert_eq!(r.json["items"][0]["request_id"], "h-1");

    for (query, total) in [
        ("?model=qwen-max", 3),
        ("?model=mdl_1", 6),
        ("?status=200", 4),
        ("?status=502", 1),
        ("?api_key_id=key_bbbbbbbbbbbb", 2),
        ("?from=2026-03-01T10:03:00Z", 4),
        ("?to=2026-03-01T10:03:00Z", 2),
        (
            "?from=2026-03-01T18:02:00%2B08:00&to=2026-03-01T10:05:00Z",
            3,
        ),
        (&format!("?tenant_id={a}&model=gpt-4o&status=429"), 1),
        ("?tenant_id=tnt_nobody", 0),
    ] {
        assert_eq!(history_total(&stack, query).await, total, "{query}");
    }
    assert_eq!(
        history_total(&stack, &format!("/{b}?model=qwen-max")).await,
        1
    );
    admin
        .get("/api/inference/history?from=yesterday")
        .await
        .expect(422);
    admin
        .get("/api/inference/history?status=abc")
        .await
        .expect(400);
    admin
        .get("/api/inference/history?page_size=501")
        .await
        .expect(422);
    admin
        .get("/api/inference/history?colour=red")
        .await
        .expect(400);
    admin
        .get(&format!("/api/inference/history/{a}?tenant_id={b}"))
        .await
        .expect(422);
}

async fn history_is_tenant_scoped(stack: Stack) {
    let a = common::tenant(&stack, "scope-a", None).await;
    let b = common::tenant(&stack, "scope-b", None).await;
    seed_history(&stack, &a, &b).await;
    let a_viewer = stack.as_role(Role::TenantViewer, Some(&a));
    let r = a_viewer.get("/api/inference/history").await.expect(200);
    assert_eq!(r.json["total"], 4);
    assert!(r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|i| i["tenant_id"] == json!(a)));
    let r = a_viewer
        .get(&format!("/api/inference/history/{a}"))
        .await
        .expect(200);
    assert_eq!(r.json["total"], 4);
    a_viewer
        .get(&format!("/api/inference/history?tenant_id={b}"))
        .await
        .expect(404);
    a_viewer
        .get(&format!("/api/inference/history/{b}"))
        .await
        .expect(404);
    let r = stack
        .as_role(Role::Auditor, None)
        .get("/api/inference/history")
        .await
        .expect(200);
    assert_eq!(r.json["total"], 6);
    stack
        .as_role(Role::Node, None)
        .get("/api/inference/history")
        .await
        .expect(403);
    stack
        .anonymous()
        .get("/api/inference/history")
        .await
        .expect(401);
}
