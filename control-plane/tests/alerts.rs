//! Alert rules (API §6.4): CRUD, validation (4xx, never 500), the write-only webhook secret,
//! list filters, audit, and tenant isolation (resilience.md §5.7 items 2 and 8).

mod common;

use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    crud_round_trip_never_returns_the_secret,
    bad_bodies_are_4xx,
    tenant_rules_are_invisible_to_other_tenants,
    list_filters_and_paginates,
);

const SECRET: &str = "whsec-0123456789abcdef";

fn rule(name: &str) -> Value {
    json!({
        "name": name,
        "metric": "error_rate",
        "threshold": 0.5,
        "window_secs": 60,
        "min_requests": 4,
        "webhook_url": "https://hooks.example.com/medgate?team=ops",
        "webhook_secret": SECRET,
        "emails": ["ops@example.com"]
    })
}

fn assert_no_secret(v: &Value) {
    assert!(
        !v.to_string().contains(SECRET),
        "the webhook secret leaked: {v}"
    );
    assert!(v.get("webhook_secret").is_none());
}

async fn crud_round_trip_never_returns_the_secret(stack: Stack) {
    let admin = stack.admin();
    let created = admin.post("/api/alerts", rule("errors")).await.expect(201);
    assert_no_secret(&created.json);
    assert_eq!(created.json["has_webhook_secret"], true);
    assert_eq!(created.json["tenant_id"], Value::Null, "a platform rule");
    assert_eq!(created.json["enabled"], true);
    assert_eq!(created.json["emails"], json!(["ops@example.com"]));
    let id = common::id(&created.json);

    let got = admin.get(&format!("/api/alerts/{id}")).await.expect(200);
    assert_no_secret(&got.json);
    assert_eq!(got.json["state"], "ok");
    assert_eq!(got.json["since"], Value::Null, "never evaluated");
    assert_eq!(got.json["history"], json!([]));

    // Omitting the secret on update keeps it; null removes it (then a webhook needs one).
    let mut body = rule("errors");
    body.as_object_mut()
        .expect("object")
        .remove("webhook_secret");
    body["threshold"] = json!(0.25);
    let updated = admin
        .put(&format!("/api/alerts/{id}"), body.clone())
        .await
        .expect(200);
    assert_no_secret(&updated.json);
    assert_eq!(updated.json["has_webhook_secret"], true, "kept");
    assert_eq!(updated.json["threshold"], 0.25);
    body["webhook_secret"] = Value::Null;
    let r = admin.put(&format!("/api/alerts/{id}"), body.clone()).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["error"]["details"]["field"], "webhook_secret");
    body.as_object_mut().expect("object").remove("webhook_url");
    let r = admin
        .put(&format!("/api/alerts/{id}"), body)
        .await
        .expect(200);
    assert_eq!(r.json["has_webhook_secret"], false);

    let list = admin.get("/api/alerts").await.expect(200);
    assert_eq!(list.json["total"], 1);
    assert_no_secret(&list.json);
    assert_eq!(list.json["items"][0]["state"], "ok");

    // Duplicate names per owner conflict.
    admin.post("/api/alerts", rule("errors")).await.expect(409);

    admin.delete(&format!("/api/alerts/{id}")).await.expect(204);
    admin.get(&format!("/api/alerts/{id}")).await.expect(404);

    let audit = admin
        .get("/api/audit-logs?resource_type=alert_rule")
        .await
        .expect(200);
    let actions: Vec<&str> = audit.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in ["alerts.create", "alerts.update", "alerts.delete"] {
        assert!(actions.contains(&a), "{a} audited: {actions:?}");
    }
    assert!(
        !audit.text.contains(SECRET),
        "the secret is not in the audit log"
    );
}

async fn bad_bodies_are_4xx(stack: Stack) {
    let admin = stack.admin();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("metric", json!("cpu"), "metric"),
        ("threshold", json!(1.5), "threshold"),
        ("threshold", json!(-1), "threshold"),
        ("window_secs", json!(5), "window_secs"),
        ("window_secs", json!(86_401), "window_secs"),
        (
            "webhook_url",
            json!("ftp://hooks.example.com/"),
            "webhook_url",
        ),
        ("webhook_url", json!("not a url"), "webhook_url"),
        (
            "webhook_url",
            json!("https://u:p@hooks.example.com/"),
            "webhook_url",
        ),
        ("webhook_secret", json!("short"), "webhook_secret"),
        ("emails", json!(["not-an-email"]), "emails[0]"),
        ("breaker_id", json!("brk_1"), "breaker_id"),
        ("min_requests", json!(0), "min_requests"),
    ];
    for (field, value, reported) in cases {
        let mut body = rule("bad");
        body[field] = value.clone();
        let r = admin.post("/api/alerts", body).await;
        assert_eq!(r.status, 422, "{field}={value}: {}", r.text);
        assert_eq!(r.json["error"]["details"]["field"], reported, "{}", r.text);
    }
    // Per-metric thresholds: a count must be whole.
    let r = admin
        .post(
            "/api/alerts",
            json!({ "name": "b", "metric": "breaker_open", "threshold": 0.5 }),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // Wrong types and unknown fields are 4xx too.
    let mut body = rule("bad");
    body["threshold"] = json!("high");
    let r = admin.post("/api/alerts", body).await;
    assert!((400..500).contains(&r.status), "{}", r.text);
    let mut body = rule("bad");
    body["surprise"] = json!(1);
    let r = admin.post("/api/alerts", body).await;
    assert!((400..500).contains(&r.status), "{}", r.text);
    admin.get("/api/alerts/alr_missing").await.expect(404);
    let r = admin.get("/api/alerts?metric=cpu").await;
    assert_eq!(r.status, 422, "{}", r.text);
    admin.get("/api/alerts?page_size=0").await.expect(422);
}

async fn tenant_rules_are_invisible_to_other_tenants(stack: Stack) {
    let a = common::tenant(&stack, "alpha", None).await;
    let b = common::tenant(&stack, "beta", None).await;
    let admin_a = stack.as_role(Role::TenantAdmin, Some(&a));
    let admin_b = stack.as_role(Role::TenantAdmin, Some(&b));

    let created = admin_a
        .post("/api/alerts", rule("a-errors"))
        .await
        .expect(201);
    assert_eq!(
        created.json["tenant_id"], a,
        "a tenant admin's rule is its tenant's"
    );
    let id = common::id(&created.json);
    let platform = stack
        .admin()
        .post("/api/alerts", rule("p"))
        .await
        .expect(201);
    let platform_id = common::id(&platform.json);

    // B sees neither A's rule nor the platform's, and cannot touch them.
    for rid in [&id, &platform_id] {
        admin_b.get(&format!("/api/alerts/{rid}")).await.expect(404);
        admin_b
            .put(&format!("/api/alerts/{rid}"), rule("x"))
            .await
            .expect(404);
        admin_b
            .delete(&format!("/api/alerts/{rid}"))
            .await
            .expect(404);
    }
    let list = admin_b.get("/api/alerts").await.expect(200);
    assert_eq!(list.json["total"], 0, "{}", list.text);
    admin_b
        .get(&format!("/api/alerts?tenant_id={a}"))
        .await
        .expect(404);
    // B cannot create a rule for A, nor a platform rule.
    let mut body = rule("sneaky");
    body["tenant_id"] = json!(a);
    admin_b.post("/api/alerts", body).await.expect(404);

    // A sees its own rule only; its viewer reads but does not write.
    let list = admin_a.get("/api/alerts").await.expect(200);
    assert_eq!(list.json["total"], 1);
    assert_eq!(list.json["items"][0]["id"], id.as_str());
    let viewer = stack.as_role(Role::TenantViewer, Some(&a));
    viewer.get(&format!("/api/alerts/{id}")).await.expect(200);
    viewer.post("/api/alerts", rule("v")).await.expect(403);
    // Shared-infrastructure metrics are platform-only.
    let r = admin_a
        .post(
            "/api/alerts",
            json!({ "name": "u", "metric": "upstream_down", "threshold": 1 }),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // A rule cannot move to another tenant.
    let mut body = rule("a-errors");
    body["tenant_id"] = json!(b);
    stack
        .admin()
        .put(&format!("/api/alerts/{id}"), body)
        .await
        .expect(422);
    // The platform sees both; an auditor reads.
    let all = stack.admin().get("/api/alerts").await.expect(200);
    assert_eq!(all.json["total"], 2);
    stack
        .as_role(Role::Auditor, None)
        .get(&format!("/api/alerts/{id}"))
        .await
        .expect(200);
}

async fn list_filters_and_paginates(stack: Stack) {
    let admin = stack.admin();
    for i in 0..3 {
        admin
            .post("/api/alerts", rule(&format!("errors-{i}")))
            .await
            .expect(201);
    }
    let mut body = json!({ "name": "breakers", "metric": "breaker_open", "threshold": 1 });
    body["enabled"] = json!(false);
    admin.post("/api/alerts", body).await.expect(201);

    let r = admin
        .get("/api/alerts?metric=breaker_open")
        .await
        .expect(200);
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["items"][0]["name"], "breakers");
    let r = admin.get("/api/alerts?status=disabled").await.expect(200);
    assert_eq!(r.json["total"], 1);
    let r = admin
        .get("/api/alerts?q=ERRORS-&page_size=2")
        .await
        .expect(200);
    assert_eq!(r.json["total"], 3);
    assert_eq!(r.json["items"].as_array().expect("items").len(), 2);
    let r = admin
        .get("/api/alerts?q=errors-&page_size=2&page=2")
        .await
        .expect(200);
    assert_eq!(r.json["items"].as_array().expect("items").len(), 1);
}
