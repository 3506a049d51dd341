//! Traffic-protection rules (API §6.1, §6.2, §7.2): 422 for unknown references, tenant
//! isolation (404 for other tenants' rules, 403 for platform rules), compilation into the
//! snapshot, and the rate limits applying to one tenant, on SQLite and PostgreSQL.

mod common;
mod protection_common;

use common::{create_model, id, snapshot, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use protection_common::{breaker, rate_limit};
use serde_json::{json, Value};

both_backends!(
    unknown_references_are_refused,
    tenants_see_and_change_only_their_own_rules,
    snapshot_carries_the_rules_and_each_change_bumps_the_version,
    tenant_rate_limits_include_platform_rules_and_plan_quotas,
    a_deleted_tenant_takes_its_rules_along,
    a_nul_byte_in_an_id_is_a_client_error_everywhere,
);

async fn a_nul_byte_in_an_id_is_a_client_error_everywhere(stack: Stack) {
    let admin = stack.admin();
    for path in [
        "/api/routes/a%00b",
        "/api/models/a%00b",
        "/api/tenants/a%00b",
        "/api/rate-limits/a%00b",
    ] {
        let r = admin.get(path).await;
        assert!((400..500).contains(&r.status), "{path}: {}", r.text);
    }
}

async fn a_deleted_tenant_takes_its_rules_along(stack: Stack) {
    let admin = stack.admin();
    create_model(&stack, "gone-model").await;
    let t = tenant(&stack, "leaving", None).await;
    let mut body = rate_limit("gone-model");
    body["tenant_id"] = json!(t);
    let rule = id(&admin.post("/api/rate-limits", body).await.expect(201).json);
    let mut body = breaker("gone-model");
    body["tenant_id"] = json!(t);
    let cb = id(&admin
        .post("/api/circuit-breakers", body)
        .await
        .expect(201)
        .json);
    admin
        .post(&format!("/api/tenants/{t}/terminate"), Value::Null)
        .await
        .expect(200);
    admin.delete(&format!("/api/tenants/{t}")).await.expect(204);
    admin
        .get(&format!("/api/rate-limits/{rule}"))
        .await
        .expect(404);
    admin
        .get(&format!("/api/circuit-breakers/{cb}"))
        .await
        .expect(404);
}

async fn unknown_references_are_refused(stack: Stack) {
    let admin = stack.admin();
    create_model(&stack, "known").await;
    let a = tenant(&stack, "refs-a", None).await;
    let b = tenant(&stack, "refs-b", None).await;
    let key_b = id(&common::create_key(&stack, &b, "k").await);
    let key_a = id(&common::create_key(&stack, &a, "k").await);

    let cases = [
        (
            "/api/rate-limits",
            json!({ "scope": "model", "target": "unknown", "metric": "tokens", "window": "hour", "limit": 5 }),
            "target",
        ),
        (
            "/api/rate-limits",
            json!({ "scope": "route", "target": "rte_nothing", "metric": "requests", "window": "second", "limit": 5 }),
            "target",
        ),
        (
            "/api/rate-limits",
            json!({ "tenant_id": a, "scope": "api_key", "target": key_b, "metric": "requests", "window": "day", "limit": 5 }),
            "target",
        ),
        (
            "/api/circuit-breakers",
            json!({ "target": { "kind": "model", "name": "unknown" } }),
            "target.name",
        ),
        (
            "/api/circuit-breakers",
            json!({ "target": { "kind": "upstream", "name": "https://nowhere.example/v1" } }),
            "target.name",
        ),
        (
            "/api/degradation-rules",
            json!({ "model": "unknown" }),
            "model",
        ),
        (
            "/api/degradation-rules",
            json!({ "model": "known", "fallback_models": ["unknown"] }),
            "fallback_models[0]",
        ),
    ];
    for (path, body, field) in cases {
        let r = admin.post(path, body.clone()).await;
        assert_eq!(r.status, 422, "{path} {body}: {}", r.text);
        assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
    }

    // What exists is accepted: the tenant's own key, a model's upstream URL.
    admin
        .post(
            "/api/rate-limits",
            json!({ "tenant_id": a, "scope": "api_key", "target": key_a, "metric": "requests", "window": "day", "limit": 5 }),
        )
        .await
        .expect(201);
    admin
        .post(
            "/api/circuit-breakers",
            json!({ "target": { "kind": "upstream", "name": "https://llm.example.com/v1" } }),
        )
        .await
        .expect(201);
    // An unknown owner is a 404, like everywhere else.
    let r = admin
        .post(
            "/api/degradation-rules",
            json!({ "tenant_id": "tnt_nobody", "model": "known" }),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
}

async fn tenants_see_and_change_only_their_own_rules(stack: Stack) {
    let admin = stack.admin();
    create_model(&stack, "shared").await;
    let a = tenant(&stack, "iso-a", None).await;
    let b = tenant(&stack, "iso-b", None).await;
    let admin_a = stack.as_role(Role::TenantAdmin, Some(&a));
    let admin_b = stack.as_role(Role::TenantAdmin, Some(&b));

    let platform = id(&admin
        .post("/api/rate-limits", rate_limit("shared"))
        .await
        .expect(201)
        .json);
    for (path, body) in [
        ("/api/rate-limits", rate_limit("shared")),
        ("/api/circuit-breakers", breaker("shared")),
        ("/api/degradation-rules", json!({ "model": "shared" })),
    ] {
        let r = admin_b.post(path, body.clone()).await.expect(201);
        assert_eq!(
            r.json["tenant_id"],
            json!(b),
            "omitted: the caller's tenant"
        );
        let rid = id(&r.json);
        let item = format!("{path}/{rid}");
        admin_a.get(&item).await.expect(404);
        admin_a.put(&item, body.clone()).await.expect(404);
        admin_a.delete(&item).await.expect(404);
        let list = admin_a.get(path).await.expect(200);
        assert_eq!(list.json["total"], 0, "{path}: {}", list.text);
        admin_a
            .get(&format!("{path}?tenant_id={b}"))
            .await
            .expect(404);
        let list = admin_b.get(path).await.expect(200);
        assert_eq!(list.json["total"], 1, "{path}");

        // Platform rules are the platform admins'.
        let mut null_owner = body.clone();
        null_owner["tenant_id"] = Value::Null;
        admin_a.post(path, null_owner).await.expect(403);
        let mut other = body.clone();
        other["tenant_id"] = json!(b);
        admin_a.post(path, other).await.expect(404);
        stack
            .as_role(Role::TenantViewer, Some(&a))
            .post(path, body.clone())
            .await
            .expect(403);
        // An update cannot move a rule to another owner.
        let mut moved = body.clone();
        moved["tenant_id"] = json!(a);
        let r = admin.put(&item, moved).await;
        assert_eq!(r.status, 422, "{}", r.text);
        admin_b.delete(&item).await.expect(204);
    }
    admin_a
        .get(&format!("/api/rate-limits/{platform}"))
        .await
        .expect(404);
    admin_a
        .delete(&format!("/api/rate-limits/{platform}"))
        .await
        .expect(404);
    stack.anonymous().get("/api/rate-limits").await.expect(401);
}

async fn snapshot_carries_the_rules_and_each_change_bumps_the_version(stack: Stack) {
    let admin = stack.admin();
    create_model(&stack, "snap-a").await;
    create_model(&stack, "snap-b").await;
    let t = tenant(&stack, "snap-t", None).await;
    let mut version = snapshot(&stack).await.version;
    let mut ids = Vec::new();
    for (path, body) in [
        ("/api/rate-limits", rate_limit("snap-a")),
        ("/api/rate-limits", {
            let mut b = rate_limit("snap-b");
            b["tenant_id"] = json!(t);
            b
        }),
        ("/api/circuit-breakers", breaker("snap-a")),
        (
            "/api/degradation-rules",
            json!({ "model": "snap-a", "fallback_models": ["snap-b"] }),
        ),
    ] {
        ids.push(id(&admin.post(path, body).await.expect(201).json));
        let s = snapshot(&stack).await;
        assert!(s.version > version, "{path} bumps the version");
        version = s.version;
    }
    let s = snapshot(&stack).await;
    let p = &s.protection;
    assert_eq!(p.rate_limits.len(), 2);
    assert!(
        p.rate_limits.windows(2).all(|w| w[0].id < w[1].id),
        "sorted"
    );
    assert!(p
        .rate_limits
        .iter()
        .any(|r| r.tenant_id.as_deref() == Some(&t)));
    assert_eq!(p.breakers[0].id, ids[2]);
    assert_eq!(p.breakers[0].threshold, 5.0);
    assert_eq!(p.degradations[0].fallback_models, vec!["snap-b".to_owned()]);

    // Equal content hashes equally: a change and its undo give the first hash back.
    let before = s.hash.clone();
    let item = format!("/api/circuit-breakers/{}", ids[2]);
    let mut body = breaker("snap-a");
    body["open_ms"] = json!(20000);
    admin.put(&item, body).await.expect(200);
    let changed = snapshot(&stack).await;
    assert_ne!(changed.hash, before);
    admin.put(&item, breaker("snap-a")).await.expect(200);
    let undone = snapshot(&stack).await;
    assert_eq!(undone.hash, before);
    assert!(undone.version > changed.version);

    admin.delete(&item).await.expect(204);
    assert!(snapshot(&stack).await.protection.breakers.is_empty());
}

async fn tenant_rate_limits_include_platform_rules_and_plan_quotas(stack: Stack) {
    let admin = stack.admin();
    create_model(&stack, "quota-m").await;
    let plan = common::plan(
        &stack,
        json!({ "name": "Gold", "quotas": { "requests_per_minute": 600, "tokens_per_minute": 100000 } }),
    )
    .await;
    let a = tenant(&stack, "quota-a", Some(&plan)).await;
    let b = tenant(&stack, "quota-b", None).await;
    let platform = id(&admin
        .post("/api/rate-limits", rate_limit("quota-m"))
        .await
        .expect(201)
        .json);
    let own = id(&stack
        .as_role(Role::TenantAdmin, Some(&a))
        .post("/api/rate-limits", rate_limit("quota-m"))
        .await
        .expect(201)
        .json);
    let other = id(&stack
        .as_role(Role::TenantAdmin, Some(&b))
        .post("/api/rate-limits", rate_limit("quota-m"))
        .await
        .expect(201)
        .json);

    let path = format!("/api/tenants/{a}/rate-limits");
    let r = stack
        .as_role(Role::TenantViewer, Some(&a))
        .get(&path)
        .await
        .expect(200);
    assert_eq!(r.json["total"], 4, "{}", r.text);
    let items = r.json["items"].as_array().expect("items");
    let find = |rid: &str| items.iter().find(|i| i["id"] == rid).cloned();
    let rpm = find(&format!("plan:{a}:rpm")).expect("rpm quota");
    assert_eq!(rpm["source"], "plan");
    assert_eq!(rpm["scope"], "tenant");
    assert_eq!(rpm["window"], "minute");
    assert_eq!(rpm["metric"], "requests");
    assert_eq!(rpm["limit"], 600);
    let tpm = find(&format!("plan:{a}:tpm")).expect("tpm quota");
    assert_eq!(tpm["metric"], "tokens");
    assert_eq!(tpm["limit"], 100000);
    assert_eq!(find(&platform).expect("platform rule")["source"], "rule");
    assert!(find(&own).is_some(), "the tenant's own rule");
    assert!(find(&other).is_none(), "not another tenant's");

    let r = admin
        .get(&format!("/api/tenants/{b}/rate-limits"))
        .await
        .expect(200);
    assert_eq!(r.json["total"], 2, "no plan: platform rule and its own");
    stack
        .as_role(Role::TenantAdmin, Some(&b))
        .get(&path)
        .await
        .expect(404);
    admin
        .get("/api/tenants/tnt_nobody/rate-limits")
        .await
        .expect(404);
}
