//! Traffic-protection rules (API §6.1, §6.2, §7.2): CRUD of rate limits, circuit breakers
//! and degradation rules with their defaults, and 400 naming the field for broken rules, on
//! SQLite and PostgreSQL.

mod common;
mod protection_common;

use common::{create_model, id};
use medgate_testkit::{both_backends, Stack};
use protection_common::{assert_rule_error, audited, breaker, rate_limit};
use serde_json::{json, Value};

both_backends!(
    rate_limits_round_trip_with_defaults,
    breakers_round_trip_with_defaults,
    degradation_rules_round_trip,
    broken_rules_are_400_naming_the_field,
);

async fn rate_limits_round_trip_with_defaults(stack: Stack) {
    let admin = stack.admin();
    create_model(&stack, "limited").await;
    let r = admin
        .post("/api/rate-limits", rate_limit("limited"))
        .await
        .expect(201);
    let rid = id(&r.json);
    assert!(rid.starts_with("rl_"), "{rid}");
    assert!(r.json["tenant_id"].is_null(), "a platform rule");
    assert_eq!(r.json["mode"], "local");
    assert_eq!(r.json["on_store_error"], "local_fallback");
    assert!(r.json["burst"].is_null());
    assert!(r.json["created_at"].is_string());

    let got = admin
        .get(&format!("/api/rate-limits/{rid}"))
        .await
        .expect(200);
    assert_eq!(got.json["limit"], 100);
    let list = admin
        .get("/api/rate-limits?scope=model&metric=requests")
        .await
        .expect(200);
    assert_eq!(list.json["total"], 1);
    assert_eq!(list.json["items"][0]["id"], json!(rid));
    let none = admin
        .get("/api/rate-limits?metric=tokens")
        .await
        .expect(200);
    assert_eq!(none.json["total"], 0);
    let r = admin.get("/api/rate-limits?scope=nonsense").await;
    assert!(r.status == 400 || r.status == 422, "{}", r.text);

    let mut body = rate_limit("limited");
    body["limit"] = json!(250);
    body["mode"] = json!("cluster");
    body["burst"] = json!(300);
    let r = admin
        .put(&format!("/api/rate-limits/{rid}"), body)
        .await
        .expect(200);
    assert_eq!(r.json["limit"], 250);
    assert_eq!(r.json["mode"], "cluster");
    assert_eq!(r.json["created_at"], got.json["created_at"]);

    admin
        .delete(&format!("/api/rate-limits/{rid}"))
        .await
        .expect(204);
    admin
        .get(&format!("/api/rate-limits/{rid}"))
        .await
        .expect(404);
    audited(
        &admin,
        &[
            "rate_limits.create",
            "rate_limits.update",
            "rate_limits.delete",
        ],
    )
    .await;
}

async fn breakers_round_trip_with_defaults(stack: Stack) {
    let admin = stack.admin();
    create_model(&stack, "fragile").await;
    let r = admin
        .post("/api/circuit-breakers", breaker("fragile"))
        .await
        .expect(201);
    let cid = id(&r.json);
    assert!(cid.starts_with("cb_"), "{cid}");
    for (field, value) in [
        ("strategy", json!("consecutive_failures")),
        ("threshold", json!(5.0)),
        ("min_requests", json!(5)),
        ("window_ms", json!(10000)),
        ("open_ms", json!(10000)),
        ("half_open_probes", json!(1)),
        ("half_open_max_wait_ms", json!(30000)),
        ("per_tenant", json!(false)),
        ("count_429", json!(false)),
    ] {
        assert_eq!(r.json[field], value, "default of {field}");
    }
    assert_eq!(r.json["live"]["state"], "closed");
    assert_eq!(r.json["live"]["instances"], json!([]));

    let mut body = breaker("fragile");
    body["strategy"] = json!("error_ratio");
    body["threshold"] = json!(0.5);
    body["max_open_ms"] = json!(60000);
    let r = admin
        .put(&format!("/api/circuit-breakers/{cid}"), body)
        .await
        .expect(200);
    assert_eq!(r.json["strategy"], "error_ratio");
    assert_eq!(r.json["max_open_ms"], 60000);
    let list = admin
        .get("/api/circuit-breakers?target_kind=model&target=fragile")
        .await
        .expect(200);
    assert_eq!(list.json["total"], 1);
    assert_eq!(list.json["items"][0]["live"]["state"], "closed");

    // The live object is read-only: sending it back is an unknown field.
    let r = admin
        .put(&format!("/api/circuit-breakers/{cid}"), r.json.clone())
        .await;
    assert_eq!(r.status, 422, "{}", r.text);

    admin
        .delete(&format!("/api/circuit-breakers/{cid}"))
        .await
        .expect(204);
    admin
        .get(&format!("/api/circuit-breakers/{cid}"))
        .await
        .expect(404);
    audited(
        &admin,
        &[
            "circuit_breakers.create",
            "circuit_breakers.update",
            "circuit_breakers.delete",
        ],
    )
    .await;
}

async fn degradation_rules_round_trip(stack: Stack) {
    let admin = stack.admin();
    create_model(&stack, "primary").await;
    create_model(&stack, "backup").await;
    let body = json!({
        "model": "primary",
        "fallback_models": ["backup"],
        "final_action": { "type": "static_response", "status": 200, "body": "{\"ok\":true}" }
    });
    let r = admin.post("/api/degradation-rules", body).await.expect(201);
    let did = id(&r.json);
    assert!(did.starts_with("dg_"), "{did}");
    assert_eq!(r.json["trigger"], json!({ "type": "breaker_open" }));
    assert_eq!(r.json["priority"], 0);

    let body = json!({
        "model": "primary",
        "trigger": { "type": "latency", "threshold_ms": 2000, "window_ms": 30000, "min_requests": 10 },
        "final_action": { "type": "reject", "status": 503, "retry_after_secs": 30 },
        "priority": 5
    });
    let r = admin
        .put(&format!("/api/degradation-rules/{did}"), body)
        .await
        .expect(200);
    assert_eq!(r.json["fallback_models"], json!([]));
    assert_eq!(r.json["trigger"]["threshold_ms"], 2000);
    let list = admin
        .get("/api/degradation-rules?model=primary")
        .await
        .expect(200);
    assert_eq!(list.json["total"], 1);

    admin
        .delete(&format!("/api/degradation-rules/{did}"))
        .await
        .expect(204);
    admin
        .get(&format!("/api/degradation-rules/{did}"))
        .await
        .expect(404);
    audited(
        &admin,
        &["degradation_rules.create", "degradation_rules.delete"],
    )
    .await;
}

async fn broken_rules_are_400_naming_the_field(stack: Stack) {
    let admin = stack.admin();
    create_model(&stack, "m1").await;
    create_model(&stack, "m2").await;
    let with = |base: Value, changes: Value| {
        let mut body = base;
        for (k, v) in changes.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    for (changes, field) in [
        (json!({ "open_ms": 0 }), "open_ms"),
        (
            json!({ "strategy": "error_ratio", "threshold": 1.5 }),
            "threshold",
        ),
        (json!({ "min_requests": 0 }), "min_requests"),
        (json!({ "threshold": 2.5 }), "threshold"),
        (
            json!({ "strategy": "slow_ratio", "threshold": 0.5 }),
            "slow_call_ms",
        ),
        (
            json!({ "open_ms": 5000, "max_open_ms": 1000 }),
            "max_open_ms",
        ),
        (json!({ "open_ms": 1_000_000_000_000u64 }), "open_ms"),
    ] {
        let r = admin
            .post("/api/circuit-breakers", with(breaker("m1"), changes))
            .await;
        assert_rule_error(&r, field);
    }
    let r = admin
        .post(
            "/api/circuit-breakers",
            with(breaker("m1"), json!({ "strategy": "sometimes" })),
        )
        .await;
    assert_eq!(r.status, 422, "unknown strategy: {}", r.text);
    let r = admin
        .post(
            "/api/circuit-breakers",
            with(breaker("m1"), json!({ "open_ms": -1 })),
        )
        .await;
    assert_eq!(r.status, 422, "negative: {}", r.text);

    for (changes, field) in [
        (json!({ "limit": 0 }), "limit"),
        (json!({ "burst": 0 }), "burst"),
        (json!({ "scope": "route", "target": null }), "target"),
        (json!({ "scope": "global" }), "target"),
    ] {
        let r = admin
            .post("/api/rate-limits", with(rate_limit("m1"), changes))
            .await;
        assert_rule_error(&r, field);
    }

    let degradation = json!({ "model": "m1", "fallback_models": ["m2"] });
    for (changes, field) in [
        (json!({ "fallback_models": ["m1"] }), "fallback_models"),
        (
            json!({ "final_action": { "type": "static_response", "status": 200, "body": "not json" } }),
            "final_action.body",
        ),
        (
            json!({ "final_action": { "type": "reject", "status": 200, "retry_after_secs": 1 } }),
            "final_action.status",
        ),
        (
            json!({ "trigger": { "type": "latency", "threshold_ms": 0, "window_ms": 1, "min_requests": 1 } }),
            "trigger",
        ),
    ] {
        let r = admin
            .post("/api/degradation-rules", with(degradation.clone(), changes))
            .await;
        assert_rule_error(&r, field);
    }
}
