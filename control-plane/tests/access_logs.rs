//! Access logs (API §7.3, access part): idempotent ingest from the data plane, no query string
//! ever stored (and over-long paths cut), lists newest first with filters and pagination,
//! tenant scoping.

mod common;

use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Client, Stack};
use serde_json::{json, Value};

both_backends!(
    entries_are_ingested_once_and_never_keep_a_query_string,
    bad_batches_are_refused_naming_the_field,
    lists_filter_paginate_and_order_newest_first,
    tenants_see_only_their_own_entries,
);

fn node(stack: &Stack) -> Client {
    stack.as_role(Role::Node, None)
}

fn entry(
    id: &str,
    tenant: Option<&str>,
    minute: u32,
    method: &str,
    status: u16,
    route: &str,
) -> Value {
    json!({
        "request_id": id,
        "occurred_at": format!("2026-03-01T10:{minute:02}:00Z"),
        "method": method,
        "host": "gateway.example",
        "path": "/v1/chat/completions",
        "status": status,
        "latency_ms": 12,
        "tenant_id": tenant,
        "route": route,
        "upstream": "http://127.0.0.1:9000",
        "bytes_sent": 345,
        "instance_id": "0193f0a0-0000-7000-8000-000000000001"
    })
}

async fn ingest(stack: &Stack, entries: Vec<Value>) -> Value {
    node(stack)
        .post("/api/internal/access-logs", json!({ "events": entries }))
        .await
        .expect(200)
        .json
}

async fn list(client: &Client, query: &str) -> Value {
    client
        .get(&format!("/api/access-logs{query}"))
        .await
        .expect(200)
        .json
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["request_id"].as_str().expect("id").to_owned())
        .collect()
}

async fn entries_are_ingested_once_and_never_keep_a_query_string(stack: Stack) {
    let mut leaky = entry("r-1", Some("tnt_a"), 1, "POST", 200, "inference");
    leaky["path"] = json!("/v1/chat/completions?secret=abc");
    let ack = ingest(
        &stack,
        vec![
            leaky.clone(),
            leaky.clone(),
            entry("r-2", None, 2, "GET", 200, "management"),
        ],
    )
    .await;
    assert_eq!(ack, json!({ "inserted": 2, "duplicates": 1 }));
    let mut long = entry("r-3", None, 3, "GET", 404, "unknown");
    long["path"] = json!(format!("/{}?q=1", "a".repeat(3000)));
    ingest(&stack, vec![long]).await;
    let ack = ingest(&stack, vec![leaky]).await;
    assert_eq!(
        ack,
        json!({ "inserted": 0, "duplicates": 1 }),
        "replays change nothing"
    );

    let page = list(&stack.admin(), "").await;
    assert_eq!(page["total"], 3);
    assert_eq!(
        page["items"][0]["path"].as_str().map(|p| p.chars().count()),
        Some(2048),
        "over-long paths are cut, not refused"
    );
    let stored = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["request_id"] == "r-1")
        .expect("r-1")
        .clone();
    assert_eq!(stored["path"], "/v1/chat/completions");
    assert!(!page.to_string().contains("secret"));
    assert_eq!(stored["tenant_id"], "tnt_a");
    assert_eq!(stored["upstream"], "http://127.0.0.1:9000");
    assert_eq!(stored["bytes_sent"], 345);
    assert_eq!(stored["occurred_at"], "2026-03-01T10:01:00.000000Z");

    let audit = stack
        .admin()
        .get("/api/audit-logs?action=internal.access_logs")
        .await
        .expect(200);
    assert_eq!(
        audit.json["total"], 0,
        "log shipping is not an operator action"
    );
}

async fn bad_batches_are_refused_naming_the_field(stack: Stack) {
    let n = node(&stack);
    for (change, field) in [
        (json!({ "status": 42 }), "events[1].status"),
        (json!({ "request_id": "has space" }), "events[1].request_id"),
        (json!({ "method": "GE T" }), "events[1].method"),
        (json!({ "occurred_at": "soon" }), "events[1].occurred_at"),
        (json!({ "host": "a\u{7}b" }), "events[1].host"),
        (json!({ "tenant_id": "../etc" }), "events[1].tenant_id"),
    ] {
        let mut bad = entry("r-2", None, 2, "GET", 200, "health");
        for (k, v) in change.as_object().expect("object") {
            bad[k] = v.clone();
        }
        let r = n
            .post(
                "/api/internal/access-logs",
                json!({ "events": [entry("r-1", None, 1, "GET", 200, "health"), bad] }),
            )
            .await;
        assert_eq!(r.status, 422, "{field}: {}", r.text);
        assert_eq!(r.json["error"]["details"]["field"], field);
    }
    let mut unknown = entry("r-3", None, 3, "GET", 200, "health");
    unknown["body"] = json!("prompt text");
    n.post("/api/internal/access-logs", json!({ "events": [unknown] }))
        .await
        .expect(422);
    stack
        .as_role(Role::Auditor, None)
        .post("/api/internal/access-logs", json!({ "events": [] }))
        .await
        .expect(403);
    assert_eq!(list(&stack.admin(), "").await["total"], 0, "refused whole");
}

async fn lists_filter_paginate_and_order_newest_first(stack: Stack) {
    let entries = (0..30)
        .map(|i| {
            let (method, status, route) = match i % 3 {
                0 => ("POST", 200, "inference"),
                1 => ("GET", 404, "unknown"),
                _ => ("GET", 200, "management"),
            };
            entry(
                &format!("r-{i:02}"),
                Some("tnt_a"),
                i,
                method,
                status,
                route,
            )
        })
        .collect();
    ingest(&stack, entries).await;
    let admin = stack.admin();
    let page = list(&admin, "?page_size=5").await;
    assert_eq!(page["total"], 30);
    assert_eq!(ids(&page), ["r-29", "r-28", "r-27", "r-26", "r-25"]);
    let page = list(&admin, "?page_size=5&page=6").await;
    assert_eq!(ids(&page), ["r-04", "r-03", "r-02", "r-01", "r-00"]);

    assert_eq!(list(&admin, "?status=404").await["total"], 10);
    assert_eq!(
        list(&admin, "?method=post").await["total"],
        10,
        "case-insensitive"
    );
    assert_eq!(list(&admin, "?route=management").await["total"], 10);
    let page = list(&admin, "?method=GET&status=200").await;
    assert_eq!(page["total"], 10);
    assert!(page["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|i| i["route"] == "management"));
    let page = list(
        &admin,
        "?from=2026-03-01T10:10:00Z&to=2026-03-01T10:20:00Z&page_size=100",
    )
    .await;
    assert_eq!(page["total"], 10);
    assert_eq!(ids(&page).first().map(String::as_str), Some("r-19"));

    let r = admin
        .get("/api/access-logs?from=yesterday")
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "from");
    admin
        .get("/api/access-logs?page_size=501")
        .await
        .expect(422);
    admin.get("/api/access-logs?secret=1").await.expect(400);
    for (bad, field) in [
        ("method=G%00T", "method"),
        ("route=a%20b", "route"),
        ("tenant_id=%00", "tenant_id"),
    ] {
        let r = admin
            .get(&format!("/api/access-logs?{bad}"))
            .await
            .expect(422);
        assert_eq!(r.json["error"]["details"]["field"], field);
    }
}

async fn tenants_see_only_their_own_entries(stack: Stack) {
    let a = common::tenant(&stack, "clinic-a", None).await;
    let b = common::tenant(&stack, "clinic-b", None).await;
    ingest(
        &stack,
        vec![
            entry("r-a", Some(&a), 1, "POST", 200, "inference"),
            entry("r-b", Some(&b), 2, "POST", 200, "inference"),
            entry("r-none", None, 3, "GET", 200, "management"),
        ],
    )
    .await;
    let viewer = stack.as_role(Role::TenantViewer, Some(&a));
    assert_eq!(ids(&list(&viewer, "").await), ["r-a"]);
    viewer
        .get(&format!("/api/access-logs?tenant_id={b}"))
        .await
        .expect(404);
    viewer
        .get(&format!("/api/access-logs/{b}"))
        .await
        .expect(404);
    let own = viewer
        .get(&format!("/api/access-logs/{a}"))
        .await
        .expect(200);
    assert_eq!(ids(&own.json), ["r-a"]);

    let admin = stack.admin();
    assert_eq!(list(&admin, "").await["total"], 3);
    assert_eq!(
        ids(&list(&admin, &format!("?tenant_id={b}")).await),
        ["r-b"]
    );
    let r = admin
        .get(&format!("/api/access-logs/{a}?tenant_id={b}"))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "tenant_id");
    assert_eq!(
        ids(&list(&stack.as_role(Role::Auditor, None), "").await).len(),
        3
    );
    stack
        .as_role(Role::Node, None)
        .get("/api/access-logs")
        .await
        .expect(403);
}
