//! Routes (API §7.1): CRUD for platform and tenant routes, validation with field names,
//! tenant scoping (404 for other tenants, 403 for roles that may not write) and compilation
//! into the snapshot, on SQLite and PostgreSQL.

mod common;

use common::{id, snapshot, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    platform_routes_have_full_crud_and_reach_the_snapshot,
    route_input_errors_name_the_field,
    tenant_routes_need_the_tenants_own_domains,
    routes_of_other_tenants_are_not_found,
    roles_are_enforced_for_routes,
);

fn route_body(name: &str) -> Value {
    json!({
        "name": name,
        "match": { "hosts": [], "path_prefix": "/svc", "methods": ["get", "POST"], "headers": { "X-Env": "prod" } },
        "targets": [
            { "url": "http://10.0.0.1:8080/base", "weight": 3 },
            { "url": "http://10.0.0.2:8080" }
        ],
        "load_balancing": "weighted_random",
        "health_check": { "path": "/healthz", "interval_ms": 5000 },
        "strip_prefix": true,
        "timeouts": { "connect_ms": 1000, "read_ms": 30000 },
        "retries": 2,
        "plugins": ["api_key_auth"],
        "priority": 10
    })
}

async fn platform_routes_have_full_crud_and_reach_the_snapshot(stack: Stack) {
    let admin = stack.admin();
    let r = admin
        .post("/api/routes", route_body("billing"))
        .await
        .expect(201);
    let rid = id(&r.json);
    assert!(rid.starts_with("rte_"), "{rid}");
    assert!(r.json["tenant_id"].is_null(), "a platform route");
    assert_eq!(r.json["match"]["methods"], json!(["GET", "POST"]));
    assert_eq!(r.json["match"]["headers"], json!({ "x-env": "prod" }));
    assert_eq!(r.json["match"]["hosts"], json!([]));
    assert_eq!(r.json["targets"][1]["weight"], 1, "weight defaults to 1");
    assert_eq!(r.json["health_check"]["timeout_ms"], 2000);
    assert_eq!(r.json["health_check"]["healthy_threshold"], 1);
    assert_eq!(r.json["enabled"], true);

    let got = admin.get(&format!("/api/routes/{rid}")).await.expect(200);
    assert_eq!(got.json["name"], "billing");
    let list = admin.get("/api/routes?q=bill").await.expect(200);
    assert_eq!(list.json["total"], 1);

    let s = snapshot(&stack).await;
    let entry = s.routes.iter().find(|e| e.id == rid).expect("in snapshot");
    assert_eq!(entry.matcher.path_prefix, "/svc");
    assert_eq!(entry.retries, 2);
    assert!(entry.strip_prefix);

    // A name is unique per owner.
    let r = admin.post("/api/routes", route_body("billing")).await;
    assert_eq!(r.status, 409, "{}", r.text);

    // PUT replaces the route; disabling takes it out of the snapshot.
    let mut body = route_body("billing-v2");
    body["enabled"] = json!(false);
    body["targets"] = json!([{ "url": "https://billing.internal.example/api" }]);
    let r = admin
        .put(&format!("/api/routes/{rid}"), body)
        .await
        .expect(200);
    assert_eq!(r.json["name"], "billing-v2");
    assert_eq!(r.json["enabled"], false);
    assert_eq!(r.json["created_at"], got.json["created_at"]);
    assert!(snapshot(&stack).await.routes.is_empty(), "disabled");
    let r = admin.get("/api/routes?status=disabled").await.expect(200);
    assert_eq!(r.json["total"], 1);

    admin
        .delete(&format!("/api/routes/{rid}"))
        .await
        .expect(204);
    admin.get(&format!("/api/routes/{rid}")).await.expect(404);
    admin
        .delete(&format!("/api/routes/{rid}"))
        .await
        .expect(404);
    let audit = admin.get("/api/audit-logs?page_size=500").await.expect(200);
    for action in ["routes.create", "routes.update", "routes.delete"] {
        assert!(audit.text.contains(action), "{action} audited");
    }
}

async fn route_input_errors_name_the_field(stack: Stack) {
    let admin = stack.admin();
    let with = |pointer: &str, value: Value| {
        let mut body = route_body("r");
        *body.pointer_mut(pointer).expect("pointer") = value;
        body
    };
    let cases = [
        (with("/name", json!("")), "name"),
        (
            with("/match/path_prefix", json!("svc")),
            "match.path_prefix",
        ),
        (
            with("/match/path_prefix", json!("/a?b")),
            "match.path_prefix",
        ),
        (with("/match/methods", json!(["FETCH"])), "match.methods[0]"),
        (
            with("/match/headers", json!({ "host": "x" })),
            "match.headers.host",
        ),
        (with("/targets", json!([])), "targets"),
        (
            with("/targets", json!([{ "url": "ftp://x" }])),
            "targets[0].url",
        ),
        (
            with(
                "/targets",
                json!([{ "url": "http://a" }, { "url": "http://a" }]),
            ),
            "targets[1].url",
        ),
        (
            with("/targets", json!([{ "url": "http://a", "weight": 0 }])),
            "targets",
        ),
        (
            with("/targets", json!([{ "url": "http://a", "weight": 5000 }])),
            "targets[0].weight",
        ),
        (
            with("/health_check", json!({ "path": "/h", "interval_ms": 5 })),
            "health_check.interval_ms",
        ),
        (
            with("/health_check", json!({ "path": "h" })),
            "health_check.path",
        ),
        (
            with("/timeouts", json!({ "connect_ms": 0 })),
            "timeouts.connect_ms",
        ),
        (with("/retries", json!(4)), "retries"),
        (with("/plugins", json!(["teleport"])), "plugins[0]"),
        (
            with("/plugins", json!(["api_key_auth", "api_key_auth"])),
            "plugins[1]",
        ),
        (with("/priority", json!(5000)), "priority"),
        (
            with("/match/hosts", json!(["Upper.Example"])),
            "match.hosts[0]",
        ),
        (with("/match/hosts", json!(["*"])), "match.hosts[0]"),
    ];
    for (body, field) in cases {
        let r = admin.post("/api/routes", body.clone()).await.expect(422);
        assert_eq!(r.json["error"]["details"]["field"], field, "{body}");
    }
    for body in [
        with("/load_balancing", json!("least_connections")),
        json!({ "name": "r", "targets": [{ "url": "http://a" }], "upstream": "x" }),
        json!({ "name": "r" }),
        with("/retries", json!(-1)),
    ] {
        let r = admin.post("/api/routes", body.clone()).await.expect(422);
        assert_eq!(r.error_code(), "invalid_body", "{body}");
    }
    // Platform admins may name a tenant; a tenant that does not exist is a 404.
    let mut body = route_body("r");
    body["tenant_id"] = json!("tnt_missing");
    body["match"]["hosts"] = json!(["a.example"]);
    admin.post("/api/routes", body).await.expect(404);
}

/// Creates a domain for `tenant` as its admin; returns its id.
async fn domain(stack: &Stack, tenant: &str, hostname: &str) -> String {
    id(&stack
        .as_role(Role::TenantAdmin, Some(tenant))
        .post("/api/domains", json!({ "hostname": hostname }))
        .await
        .expect(201)
        .json)
}

async fn tenant_routes_need_the_tenants_own_domains(stack: Stack) {
    let a = tenant(&stack, "rt-a", None).await;
    let b = tenant(&stack, "rt-b", None).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&a));
    let body = |hosts: Value| {
        let mut b = route_body("his");
        b["match"]["hosts"] = hosts;
        b
    };
    let r = ta.post("/api/routes", body(json!([]))).await.expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "match.hosts");
    let r = ta
        .post("/api/routes", body(json!(["his.clinic-a.example"])))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "match.hosts[0]");
    domain(&stack, &b, "clinic-b.example").await;
    let r = ta
        .post("/api/routes", body(json!(["clinic-b.example"])))
        .await
        .expect(422);
    assert_eq!(
        r.json["error"]["details"]["field"], "match.hosts[0]",
        "another tenant's domain"
    );

    domain(&stack, &a, "clinic-a.example").await;
    let r = ta
        .post(
            "/api/routes",
            body(json!(["clinic-a.example", "*.clinic-a.example"])),
        )
        .await
        .expect(201);
    assert_eq!(
        r.json["tenant_id"],
        json!(a),
        "owned by the caller's tenant"
    );
    let rid = id(&r.json);
    // The domain is not verified yet: nothing of the route reaches the data plane.
    assert!(snapshot(&stack).await.routes.is_empty());

    // The owner cannot be changed by an update.
    let mut moved = body(json!(["clinic-a.example"]));
    moved["tenant_id"] = json!(b);
    let r = stack
        .admin()
        .put(&format!("/api/routes/{rid}"), moved)
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "tenant_id");

    // A tenant admin naming another tenant gets a 404, as for any of its resources.
    let mut other = body(json!(["clinic-a.example"]));
    other["tenant_id"] = json!(b);
    ta.post("/api/routes", other).await.expect(404);
    let list = ta.get("/api/routes").await.expect(200);
    assert_eq!(list.json["total"], 1);
}

async fn routes_of_other_tenants_are_not_found(stack: Stack) {
    let a = tenant(&stack, "rs-a", None).await;
    let b = tenant(&stack, "rs-b", None).await;
    domain(&stack, &a, "rs-a.example").await;
    let mut body = route_body("mine");
    body["match"]["hosts"] = json!(["rs-a.example"]);
    let owned = stack
        .as_role(Role::TenantAdmin, Some(&a))
        .post("/api/routes", body.clone())
        .await
        .expect(201);
    let owned = id(&owned.json);
    let platform = id(&stack
        .admin()
        .post("/api/routes", route_body("platform"))
        .await
        .expect(201)
        .json);

    let tb = stack.as_role(Role::TenantAdmin, Some(&b));
    for rid in [&owned, &platform] {
        for role in [Role::TenantAdmin, Role::TenantViewer] {
            let r = stack
                .as_role(role, Some(&b))
                .get(&format!("/api/routes/{rid}"))
                .await;
            assert_eq!(r.status, 404, "{rid} as {role:?}: {}", r.text);
        }
        tb.put(&format!("/api/routes/{rid}"), body.clone())
            .await
            .expect(404);
        tb.delete(&format!("/api/routes/{rid}")).await.expect(404);
    }
    let r = tb.get("/api/routes").await.expect(200);
    assert_eq!(r.json["total"], 0, "neither A's nor the platform's routes");
    tb.get(&format!("/api/routes?tenant_id={a}"))
        .await
        .expect(404);
    // A's admin sees its route, not the platform's.
    let r = stack
        .as_role(Role::TenantAdmin, Some(&a))
        .get("/api/routes")
        .await
        .expect(200);
    assert_eq!(r.json["total"], 1);
    stack
        .as_role(Role::TenantAdmin, Some(&a))
        .get(&format!("/api/routes/{platform}"))
        .await
        .expect(404);
    let r = stack.admin().get("/api/routes").await.expect(200);
    assert_eq!(r.json["total"], 2, "platform admins see all");
}

async fn roles_are_enforced_for_routes(stack: Stack) {
    let a = tenant(&stack, "rr-a", None).await;
    let platform = id(&stack
        .admin()
        .post("/api/routes", route_body("p"))
        .await
        .expect(201)
        .json);
    // Tenant admins cannot create platform routes: theirs always belong to their tenant.
    let r = stack
        .as_role(Role::TenantAdmin, Some(&a))
        .post("/api/routes", route_body("sneaky"))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "match.hosts");
    for role in [Role::TenantViewer, Role::Auditor] {
        let c = stack.as_role(role, Some(&a));
        c.post("/api/routes", route_body("x")).await.expect(403);
        c.put(&format!("/api/routes/{platform}"), route_body("x"))
            .await
            .expect(403);
        c.delete(&format!("/api/routes/{platform}"))
            .await
            .expect(403);
    }
    stack
        .as_role(Role::Auditor, None)
        .get(&format!("/api/routes/{platform}"))
        .await
        .expect(200);
    stack
        .as_role(Role::Node, None)
        .get("/api/routes")
        .await
        .expect(403);
    stack.anonymous().get("/api/routes").await.expect(401);
}
