//! Tenant management (API §1): CRUD, lifecycle, plans, configuration, isolation policies,
//! with every error case, on SQLite and PostgreSQL.

use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    tenant_crud_round_trip,
    tenant_input_errors_are_4xx_and_change_nothing,
    tenant_code_is_unique,
    lifecycle_follows_the_state_machine,
    delete_only_for_never_active_or_terminated,
    plans_crud_and_in_use_protection,
    change_plan_takes_effect_and_keeps_history,
    tenant_config_is_typed_and_validated,
    isolation_policies_validate_and_assign,
    lists_paginate_and_filter,
    roles_are_enforced,
);

async fn tenant_crud_round_trip(stack: Stack) {
    let admin = stack.admin();
    let plan = stack.create_plan("basic").await;
    let created = admin
        .post(
            "/api/tenants",
            json!({
                "name": "City Hospital",
                "code": "city-hospital",
                "contact": { "name": "Dr. Li", "email": "li@city.example", "phone": "+86 10 1234 5678" },
                "plan_id": plan,
                "timezone": "Asia/Shanghai",
                "currency": "CNY"
            }),
        )
        .await
        .expect(201);
    let id = created.json["id"].as_str().expect("id").to_owned();
    assert_eq!(created.json["status"], "pending");
    assert_eq!(created.json["plan_id"], json!(plan));
    assert!(created.json["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let got = admin.get(&format!("/api/tenants/{id}")).await.expect(200);
    assert_eq!(got.json["code"], "city-hospital");

    let updated = admin
        .put(
            &format!("/api/tenants/{id}"),
            json!({ "name": "City Hospital East", "timezone": "UTC" }),
        )
        .await
        .expect(200);
    assert_eq!(updated.json["name"], "City Hospital East");
    assert_eq!(updated.json["timezone"], "UTC");
    assert_eq!(
        updated.json["code"], "city-hospital",
        "omitted fields keep their value"
    );

    admin
        .delete(&format!("/api/tenants/{id}"))
        .await
        .expect(204);
    admin.get(&format!("/api/tenants/{id}")).await.expect(404);
}

async fn tenant_input_errors_are_4xx_and_change_nothing(stack: Stack) {
    let admin = stack.admin();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({ "name": "X", "code": "x-1", "surprise": true }),
            422,
            "invalid_body",
        ),
        (json!({ "name": "X" }), 422, "invalid_body"),
        (
            json!({ "name": "X", "code": "Not A Slug" }),
            422,
            "validation_failed",
        ),
        (
            json!({ "name": "", "code": "x-1" }),
            422,
            "validation_failed",
        ),
        (
            json!({ "name": "X", "code": "x-1", "timezone": "Mars/Olympus" }),
            422,
            "validation_failed",
        ),
        (
            json!({ "name": "X", "code": "x-1", "currency": "DOGE" }),
            422,
            "validation_failed",
        ),
        (
            json!({ "name": "X", "code": "x-1", "contact": { "email": "nope" } }),
            422,
            "validation_failed",
        ),
        (
            json!({ "name": "X", "code": "x-1", "plan_id": "plan_missing" }),
            422,
            "validation_failed",
        ),
        (json!({ "name": 5, "code": "x-1" }), 422, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let r = admin.post("/api/tenants", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(r.error_code(), code, "{body}");
        assert!(
            r.json["error"]["request_id"].is_string(),
            "envelope carries the request id"
        );
    }
    let r = admin
        .raw(
            reqwest::Method::POST,
            "/api/tenants",
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "malformed_json");
    let r = admin
        .raw(
            reqwest::Method::POST,
            "/api/tenants",
            "text/plain",
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(r.status, 415);
    // The server answers 413 as soon as the limit is passed and may close the connection
    // while the client is still sending; either way nothing is read past the limit.
    let big = vec![b' '; 2 * 1024 * 1024];
    let sent = reqwest::Client::new()
        .post(format!("{}/api/tenants", stack.base_url))
        .bearer_auth(admin.token.clone().expect("token"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await;
    match sent {
        Ok(r) => assert_eq!(r.status().as_u16(), 413),
        Err(e) => assert!(
            e.is_request() || e.is_body(),
            "unexpected client error: {e}"
        ),
    }

    let list = admin.get("/api/tenants").await.expect(200);
    assert_eq!(list.json["total"], 0, "nothing was created by bad input");

    admin.get("/api/tenants/tnt_nope").await.expect(404);
    admin
        .put("/api/tenants/tnt_nope", json!({ "name": "y" }))
        .await
        .expect(404);
    admin
        .post("/api/tenants/tnt_nope/activate", Value::Null)
        .await
        .expect(404);
    let r = admin.get("/api/no-such-route").await.expect(404);
    assert_eq!(r.error_code(), "not_found");
    admin.get("/api/tenants?page=0").await.expect(422);
    admin.get("/api/tenants?page=abc").await.expect(400);
    admin.get("/api/tenants?unknown_filter=1").await.expect(400);
}

async fn tenant_code_is_unique(stack: Stack) {
    let admin = stack.admin();
    admin
        .post("/api/tenants", json!({ "name": "A", "code": "same" }))
        .await
        .expect(201);
    let r = admin
        .post("/api/tenants", json!({ "name": "B", "code": "same" }))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "already_exists");
    let b = admin
        .post("/api/tenants", json!({ "name": "B", "code": "other" }))
        .await
        .expect(201);
    let id = b.json["id"].as_str().expect("id");
    admin
        .put(&format!("/api/tenants/{id}"), json!({ "code": "same" }))
        .await
        .expect(409);
}

async fn lifecycle_follows_the_state_machine(stack: Stack) {
    let admin = stack.admin();
    let t = admin
        .post("/api/tenants", json!({ "name": "A", "code": "life" }))
        .await
        .expect(201);
    let id = t.json["id"].as_str().expect("id").to_owned();
    let act = |verb: &str| format!("/api/tenants/{id}/{verb}");

    let r = admin.post(&act("suspend"), Value::Null).await.expect(409);
    assert_eq!(r.error_code(), "invalid_transition");
    admin.post(&act("terminate"), Value::Null).await.expect(409);
    let r = admin.post(&act("activate"), Value::Null).await.expect(200);
    assert_eq!(r.json["status"], "active");
    assert!(r.json["activated_at"].is_string());
    admin.post(&act("activate"), Value::Null).await.expect(409);
    assert_eq!(
        admin
            .post(&act("suspend"), Value::Null)
            .await
            .expect(200)
            .json["status"],
        "suspended"
    );
    admin.post(&act("suspend"), Value::Null).await.expect(409);
    assert_eq!(
        admin
            .post(&act("activate"), Value::Null)
            .await
            .expect(200)
            .json["status"],
        "active"
    );
    assert_eq!(
        admin
            .post(&act("terminate"), Value::Null)
            .await
            .expect(200)
            .json["status"],
        "terminated"
    );
    for verb in ["activate", "suspend", "terminate"] {
        let r = admin.post(&act(verb), Value::Null).await.expect(409);
        assert_eq!(
            r.error_code(),
            "invalid_transition",
            "terminated is final ({verb})"
        );
    }
    let r = admin.get(&format!("/api/tenants/{id}")).await.expect(200);
    assert_eq!(
        r.json["status"], "terminated",
        "refused transitions changed nothing"
    );
    admin
        .put(&format!("/api/tenants/{id}"), json!({ "name": "again" }))
        .await
        .expect(409);

    // Concurrent transitions: exactly one suspend wins.
    let t = stack.create_active_tenant("racer").await;
    let rid = t["id"].as_str().expect("id").to_owned();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = admin.clone();
        let path = format!("/api/tenants/{rid}/suspend");
        tasks.push(tokio::spawn(async move {
            c.post(&path, Value::Null).await.status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            200 => ok += 1,
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 1, "exactly one concurrent suspend applies");
}

async fn delete_only_for_never_active_or_terminated(stack: Stack) {
    let admin = stack.admin();
    let t = stack.create_active_tenant("busy").await;
    let id = t["id"].as_str().expect("id");
    let r = admin
        .delete(&format!("/api/tenants/{id}"))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "tenant_in_service");
    admin
        .post(&format!("/api/tenants/{id}/suspend"), Value::Null)
        .await
        .expect(200);
    admin
        .delete(&format!("/api/tenants/{id}"))
        .await
        .expect(409);
    admin
        .post(&format!("/api/tenants/{id}/terminate"), Value::Null)
        .await
        .expect(200);
    admin
        .delete(&format!("/api/tenants/{id}"))
        .await
        .expect(204);
}

async fn plans_crud_and_in_use_protection(stack: Stack) {
    let admin = stack.admin();
    let r = admin
        .post(
            "/api/tenant-plans",
            json!({
                "name": "pro",
                "description": "For hospitals",
                "quotas": { "requests_per_minute": 600, "tokens_per_minute": 100000, "monthly_tokens": 5000000, "max_api_keys": 10 },
                "allowed_models": ["gpt-4o", "qwen-max"],
                "included_credit_minor": 5000,
                "monthly_price_minor": 99900,
                "currency": "CNY"
            }),
        )
        .await
        .expect(201);
    let plan = r.json["id"].as_str().expect("id").to_owned();
    assert_eq!(r.json["quotas"]["tokens_per_minute"], 100000);

    for bad in [
        json!({ "name": "x", "quotas": { "requests_per_minute": 0 } }),
        json!({ "name": "x", "monthly_price_minor": -1 }),
        json!({ "name": "x", "allowed_models": ["bad model"] }),
        json!({ "name": "x", "quotas": { "rpm": 1 } }),
        json!({ "name": "x", "currency": "ABC" }),
    ] {
        let r = admin.post("/api/tenant-plans", bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
    admin
        .post("/api/tenant-plans", json!({ "name": "pro" }))
        .await
        .expect(409);

    let r = admin
        .put(
            &format!("/api/tenant-plans/{plan}"),
            json!({ "name": "pro", "monthly_price_minor": 89900 }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["monthly_price_minor"], 89900);
    assert_eq!(
        r.json["quotas"]["requests_per_minute"],
        Value::Null,
        "update replaces the plan"
    );

    let t = admin
        .post(
            "/api/tenants",
            json!({ "name": "T", "code": "on-pro", "plan_id": plan }),
        )
        .await
        .expect(201);
    let r = admin
        .delete(&format!("/api/tenant-plans/{plan}"))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "plan_in_use");
    admin
        .delete(&format!(
            "/api/tenants/{}",
            t.json["id"].as_str().expect("id")
        ))
        .await
        .expect(204);
    admin
        .delete(&format!("/api/tenant-plans/{plan}"))
        .await
        .expect(204);
    admin
        .delete(&format!("/api/tenant-plans/{plan}"))
        .await
        .expect(404);
    let list = admin.get("/api/tenant-plans").await.expect(200);
    assert_eq!(list.json["total"], 0);
}

async fn change_plan_takes_effect_and_keeps_history(stack: Stack) {
    let admin = stack.admin();
    let basic = stack.create_plan("basic").await;
    let pro = stack.create_plan("pro").await;
    let t = admin
        .post(
            "/api/tenants",
            json!({ "name": "T", "code": "mover", "plan_id": basic }),
        )
        .await
        .expect(201);
    let id = t.json["id"].as_str().expect("id").to_owned();
    let before = stack.state.store().config_version().await.expect("version");

    let r = admin
        .post(
            &format!("/api/tenants/{id}/change-plan"),
            json!({ "plan_id": pro, "reason": "upgrade" }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["plan_id"], json!(pro));
    let history = r.json["plan_history"].as_array().expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["from_plan_id"], json!(basic));
    assert_eq!(history[1]["to_plan_id"], json!(pro));
    assert_eq!(history[1]["reason"], "upgrade");
    assert!(
        stack.state.store().config_version().await.expect("version") > before,
        "snapshot version bumped"
    );

    admin
        .post(
            &format!("/api/tenants/{id}/change-plan"),
            json!({ "plan_id": pro }),
        )
        .await
        .expect(409);
    admin
        .post(
            &format!("/api/tenants/{id}/change-plan"),
            json!({ "plan_id": "plan_missing" }),
        )
        .await
        .expect(422);
    admin
        .post(&format!("/api/tenants/{id}/change-plan"), json!({}))
        .await
        .expect(422);
    admin
        .post(
            "/api/tenants/tnt_missing/change-plan",
            json!({ "plan_id": pro }),
        )
        .await
        .expect(404);
}

async fn tenant_config_is_typed_and_validated(stack: Stack) {
    let t = stack.create_active_tenant("cfg").await;
    let id = t["id"].as_str().expect("id").to_owned();
    let tenant_admin = stack.as_role(Role::TenantAdmin, Some(&id));
    let path = format!("/api/tenants/{id}/config");

    let r = tenant_admin.get(&path).await.expect(200);
    assert_eq!(
        r.json["log_request_payloads"], false,
        "payload logging is off by default"
    );
    assert_eq!(r.json["locale"], "zh-CN");

    let r = tenant_admin
        .put(
            &path,
            json!({
                "locale": "en-US",
                "timezone": "Europe/Berlin",
                "default_model": "gpt-4o",
                "log_request_payloads": true,
                "cors_allowed_origins": ["https://his.city.example"],
                "access_log_retention_days": 30
            }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["timezone"], "Europe/Berlin");
    assert_eq!(
        r.json["cors_allowed_origins"][0],
        "https://his.city.example"
    );
    let tenant = stack
        .admin()
        .get(&format!("/api/tenants/{id}"))
        .await
        .expect(200);
    assert_eq!(
        tenant.json["timezone"], "Europe/Berlin",
        "the tenant record holds the time zone"
    );

    for bad in [
        json!({ "locale": "english" }),
        json!({ "cors_allowed_origins": ["*"] }),
        json!({ "access_log_retention_days": 0 }),
        json!({ "timezone": "Nowhere" }),
        json!({ "colour": "blue" }),
        json!({ "log_request_payloads": "yes" }),
    ] {
        let r = tenant_admin.put(&path, bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
    let r = tenant_admin.get(&path).await.expect(200);
    assert_eq!(r.json["locale"], "en-US", "refused updates changed nothing");

    let r = tenant_admin
        .put(&path, json!({ "default_model": null }))
        .await
        .expect(200);
    assert_eq!(r.json["default_model"], Value::Null, "explicit null clears");
    assert_eq!(r.json["locale"], "en-US", "absent keeps");

    stack
        .as_role(Role::TenantViewer, Some(&id))
        .put(&path, json!({ "locale": "zh-CN" }))
        .await
        .expect(403);
}

async fn isolation_policies_validate_and_assign(stack: Stack) {
    let admin = stack.admin();
    let r = admin
        .post(
            "/api/isolation-policies",
            json!({
                "name": "enterprise",
                "tier": "enterprise",
                "deployment_model": "pool",
                "data": { "strategy": "shared", "region": "cn-east-1" },
                "compute": {
                    "max_concurrent_requests": 64,
                    "max_concurrent_per_model": { "gpt-4o": 16 },
                    "max_queue_depth": 128,
                    "queue_timeout_ms": 2000,
                    "priority_weight": 4,
                    "max_share_of_upstream_pct": 30
                },
                "upstreams": { "pool": "shared", "spillover_to_shared": false },
                "circuit_breaker_scope": "per_tenant",
                "on_limit": "reject",
                "reject_status": 429,
                "network": { "allowed_cidrs": ["10.0.0.0/8", "2001:db8::/32"] }
            }),
        )
        .await
        .expect(201);
    let policy = r.json["id"].as_str().expect("id").to_owned();
    assert_eq!(r.json["version"], 1);

    let r = admin
        .post(
            "/api/isolation-policies",
            json!({ "name": "silo", "data": { "strategy": "db_per_tenant" } }),
        )
        .await
        .expect(422);
    assert_eq!(r.error_code(), "not_implemented");
    for bad in [
        json!({ "name": "x", "compute": { "max_share_of_upstream_pct": 0 } }),
        json!({ "name": "x", "compute": { "max_queue_depth": 5 } }),
        json!({ "name": "x", "network": { "allowed_cidrs": ["10.0.0.0/33"] } }),
        json!({ "name": "x", "reject_status": 418 }),
        json!({ "name": "x", "upstreams": { "pool": "mine", "spillover_to_shared": true } }),
        json!({ "name": "x", "deployment_model": "cloud" }),
    ] {
        let r = admin.post("/api/isolation-policies", bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }

    let r = admin
        .put(
            &format!("/api/isolation-policies/{policy}"),
            json!({ "name": "enterprise", "compute": { "max_concurrent_requests": 32 } }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["version"], 2);

    let t = stack.create_active_tenant("iso").await;
    let id = t["id"].as_str().expect("id").to_owned();
    let r = admin
        .get(&format!("/api/tenants/{id}/isolation"))
        .await
        .expect(200);
    assert_eq!(r.json["policy"], Value::Null);
    let r = admin
        .put(
            &format!("/api/tenants/{id}/isolation"),
            json!({ "policy_id": policy }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["policy"]["id"], json!(policy));
    let r = stack
        .as_role(Role::TenantViewer, Some(&id))
        .get(&format!("/api/tenants/{id}/isolation"))
        .await
        .expect(200);
    assert_eq!(r.json["policy"]["compute"]["max_concurrent_requests"], 32);
    admin
        .put(
            &format!("/api/tenants/{id}/isolation"),
            json!({ "policy_id": "iso_missing" }),
        )
        .await
        .expect(422);
    stack
        .as_role(Role::TenantAdmin, Some(&id))
        .put(
            &format!("/api/tenants/{id}/isolation"),
            json!({ "policy_id": null }),
        )
        .await
        .expect(403);

    let snapshot = stack.state.snapshots().current().await.expect("snapshot");
    let entry = snapshot.tenant(&id).expect("tenant in snapshot");
    assert_eq!(
        entry
            .isolation
            .as_ref()
            .and_then(|i| i.max_concurrent_requests),
        Some(32)
    );

    let r = admin
        .delete(&format!("/api/isolation-policies/{policy}"))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "policy_in_use");
    admin
        .put(
            &format!("/api/tenants/{id}/isolation"),
            json!({ "policy_id": null }),
        )
        .await
        .expect(200);
    admin
        .delete(&format!("/api/isolation-policies/{policy}"))
        .await
        .expect(204);
}

async fn lists_paginate_and_filter(stack: Stack) {
    let admin = stack.admin();
    for i in 0..7 {
        admin
            .post(
                "/api/tenants",
                json!({ "name": format!("Clinic {i}"), "code": format!("clinic-{i}") }),
            )
            .await
            .expect(201);
    }
    admin
        .post(
            "/api/tenants",
            json!({ "name": "Big Hospital", "code": "big" }),
        )
        .await
        .expect(201);
    let r = admin
        .get("/api/tenants?page=2&page_size=3")
        .await
        .expect(200);
    assert_eq!(r.json["total"], 8);
    assert_eq!(r.json["items"].as_array().expect("items").len(), 3);
    assert_eq!(r.json["page"], 2);
    let r = admin
        .get("/api/tenants?page=3&page_size=3")
        .await
        .expect(200);
    assert_eq!(r.json["items"].as_array().expect("items").len(), 2);
    let r = admin.get("/api/tenants?q=HOSP").await.expect(200);
    assert_eq!(r.json["total"], 1, "name search is case-insensitive");
    let r = admin.get("/api/tenants?q=%25").await.expect(200);
    assert_eq!(r.json["total"], 0, "LIKE wildcards are escaped");
    let r = admin.get("/api/tenants?status=active").await.expect(200);
    assert_eq!(r.json["total"], 0);
    admin.get("/api/tenants?page_size=501").await.expect(422);
    admin
        .get("/api/tenants?created_after=yesterday")
        .await
        .expect(422);
    let r = admin
        .get("/api/tenants?created_after=2000-01-01T00:00:00Z")
        .await
        .expect(200);
    assert_eq!(r.json["total"], 8);
}

async fn roles_are_enforced(stack: Stack) {
    let t = stack.create_active_tenant("roles").await;
    let id = t["id"].as_str().expect("id").to_owned();
    let viewer = stack.as_role(Role::TenantViewer, Some(&id));
    let tenant_admin = stack.as_role(Role::TenantAdmin, Some(&id));
    let auditor = stack.as_role(Role::Auditor, None);
    let node = stack.as_role(Role::Node, None);

    viewer.get(&format!("/api/tenants/{id}")).await.expect(200);
    let list = viewer.get("/api/tenants").await.expect(200);
    assert_eq!(list.json["total"], 1, "a tenant sees only itself");
    viewer
        .post("/api/tenants", json!({ "name": "x", "code": "x-x" }))
        .await
        .expect(403);
    tenant_admin
        .post("/api/tenants", json!({ "name": "x", "code": "x-x" }))
        .await
        .expect(403);
    tenant_admin
        .post(&format!("/api/tenants/{id}/suspend"), Value::Null)
        .await
        .expect(403);
    tenant_admin
        .post("/api/tenant-plans", json!({ "name": "mine" }))
        .await
        .expect(403);
    auditor.get("/api/tenants").await.expect(200);
    auditor
        .post(&format!("/api/tenants/{id}/suspend"), Value::Null)
        .await
        .expect(403);
    auditor
        .put(&format!("/api/tenants/{id}/config"), json!({}))
        .await
        .expect(403);
    node.get("/api/tenants").await.expect(403);
    let r = stack.anonymous().get("/api/tenants").await.expect(401);
    assert_eq!(r.error_code(), "unauthenticated");
}
