//! Tenant isolation on the management API: every tenant-scoped endpoint, walked from the
//! OpenAPI document, answers 404 to another tenant's token; nothing changes.

use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    every_tenant_scoped_endpoint_hides_other_tenants,
    lists_and_filters_never_leak,
    api_keys_of_other_tenants_are_not_found
);

async fn every_tenant_scoped_endpoint_hides_other_tenants(stack: Stack) {
    let a = stack.create_active_tenant("tenant-a").await;
    let b = stack.create_active_tenant("tenant-b").await;
    let a_id = a["id"].as_str().expect("id").to_owned();
    let b_id = b["id"].as_str().expect("id").to_owned();
    let doc = stack
        .anonymous()
        .get("/api/openapi.json")
        .await
        .expect(200)
        .json;

    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let tenant_scoped = path.starts_with("/api/tenants/{id}") || path.contains("{tenantId}");
        if !tenant_scoped {
            continue;
        }
        let concrete = path.replace("{id}", &a_id).replace("{tenantId}", &a_id);
        for method in item.as_object().expect("methods").keys() {
            for role in [Role::TenantAdmin, Role::TenantViewer, Role::Auditor] {
                let client = stack.as_role(role, Some(&b_id));
                let body = if method == "get" || method == "delete" {
                    None
                } else {
                    Some(json!({}))
                };
                let r = client
                    .call(
                        method.to_uppercase().parse().expect("method"),
                        &concrete,
                        body,
                    )
                    .await;
                assert_eq!(
                    r.status, 404,
                    "{method} {path} as {role:?} of B: {}",
                    r.text
                );
                walked += 1;
            }
        }
    }
    assert!(walked >= 3 * 12, "walked {walked} tenant-scoped calls");

    let r = stack
        .admin()
        .get(&format!("/api/tenants/{a_id}"))
        .await
        .expect(200);
    assert_eq!(r.json["status"], "active", "A unchanged");
    assert_eq!(r.json["name"], a["name"]);

    // The same calls with A's own admin token are not 404 (the walk tested scoping, not routing).
    let own = stack.as_role(Role::TenantAdmin, Some(&a_id));
    own.get(&format!("/api/tenants/{a_id}")).await.expect(200);
    own.get(&format!("/api/tenants/{a_id}/config"))
        .await
        .expect(200);
    own.get(&format!("/api/audit-logs/{a_id}"))
        .await
        .expect(200);
}

async fn lists_and_filters_never_leak(stack: Stack) {
    let a = stack.create_active_tenant("leak-a").await;
    let b = stack.create_active_tenant("leak-b").await;
    let a_id = a["id"].as_str().expect("id").to_owned();
    let b_id = b["id"].as_str().expect("id").to_owned();
    let b_admin = stack.as_role(Role::TenantAdmin, Some(&b_id));
    b_admin
        .put(
            &format!("/api/tenants/{b_id}/config"),
            json!({ "locale": "en-US" }),
        )
        .await
        .expect(200);

    let r = b_admin.get("/api/tenants").await.expect(200);
    let ids: Vec<&Value> = r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(ids, vec![&json!(b_id)]);
    b_admin
        .get(&format!("/api/tenants?tenant_id={a_id}"))
        .await
        .expect(404);

    let r = b_admin.get("/api/audit-logs").await.expect(200);
    for e in r.json["items"].as_array().expect("items") {
        assert_eq!(
            e["tenant_id"],
            json!(b_id),
            "audit list confined to own tenant"
        );
    }
    b_admin
        .get(&format!("/api/audit-logs?tenant_id={a_id}"))
        .await
        .expect(404);
    let r = b_admin
        .post(
            "/api/audit-logs/export",
            json!({ "format": "jsonl", "filter": { "tenant_id": a_id } }),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = b_admin
        .post("/api/audit-logs/export", json!({ "format": "jsonl" }))
        .await
        .expect(200);
    assert!(!r.text.contains(&a_id), "export confined to own tenant");
}

async fn api_keys_of_other_tenants_are_not_found(stack: Stack) {
    let a = stack.create_active_tenant("keys-a").await;
    let b = stack.create_active_tenant("keys-b").await;
    let a_id = a["id"].as_str().expect("id").to_owned();
    let b_id = b["id"].as_str().expect("id").to_owned();
    let a_admin = stack.as_role(Role::TenantAdmin, Some(&a_id));
    let created = a_admin
        .post("/api/api-keys", json!({ "name": "a-key" }))
        .await
        .expect(201);
    let key_id = created.json["id"].as_str().expect("id").to_owned();

    for role in [Role::TenantAdmin, Role::TenantViewer] {
        let r = stack
            .as_role(role, Some(&b_id))
            .get(&format!("/api/api-keys/{key_id}"))
            .await;
        assert_eq!(r.status, 404, "read as {role:?}: {}", r.text);
    }
    let b_admin = stack.as_role(Role::TenantAdmin, Some(&b_id));
    let r = b_admin
        .put(&format!("/api/api-keys/{key_id}/rotate"), json!({}))
        .await;
    assert_eq!(r.status, 404, "rotate: {}", r.text);
    let r = b_admin.delete(&format!("/api/api-keys/{key_id}")).await;
    assert_eq!(r.status, 404, "revoke: {}", r.text);
    let r = b_admin
        .post(
            "/api/api-keys",
            json!({ "name": "sneaky", "tenant_id": a_id }),
        )
        .await;
    assert_eq!(r.status, 404, "create for A: {}", r.text);
    // A viewer may not write at all: the same 403 for A's key as for no key.
    let b_viewer = stack.as_role(Role::TenantViewer, Some(&b_id));
    for id in [key_id.as_str(), "key_000000000000"] {
        b_viewer
            .put(&format!("/api/api-keys/{id}/rotate"), json!({}))
            .await
            .expect(403);
        b_viewer
            .delete(&format!("/api/api-keys/{id}"))
            .await
            .expect(403);
    }
    let r = a_admin
        .get(&format!("/api/api-keys/{key_id}"))
        .await
        .expect(200);
    assert_eq!(r.json["status"], "active", "A's key unchanged");
    assert!(r.json["last_rotated_at"].is_null());
    let r = a_admin.get("/api/api-keys").await.expect(200);
    assert_eq!(r.json["total"], 1, "nothing created for A by B");
}
