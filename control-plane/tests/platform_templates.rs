//! Platform templates (no tenant) that tenants read and copy, on SQLite and PostgreSQL: the
//! platform list, reading a published platform template, copying one into a tenant-owned
//! draft that records its source, independence of the copy, and tenant isolation (another
//! tenant's template or copy is 404, a platform template is 403 to change).

mod common;
mod template_common;

use common::{audit_details, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};
use template_common::{audit, create, new_draft, publish, section, top_level, two_sections};

both_backends!(
    tenants_read_and_copy_published_platform_templates,
    copies_are_tenant_owned_and_isolated,
    copy_refusals,
);

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn tenants_read_and_copy_published_platform_templates(stack: Stack) {
    let t = tenant(&stack, "plat-read", None).await;
    let platform = stack.admin();
    let published = create(&stack, None, "Outpatient (platform)", two_sections()).await;
    let v1 = publish(&platform, &published).await;
    let unpublished = create(&stack, None, "Work in progress", two_sections()).await;

    // Platform admins see every platform template; tenant roles the published ones.
    let all = platform.get("/api/platform-templates").await.expect(200);
    assert_eq!(ids(&all.json), [published.clone(), unpublished.clone()]);
    assert_eq!(all.json["total"], 2);
    for role in [Role::TenantAdmin, Role::TenantViewer, Role::Auditor] {
        let c = stack.as_role(role, Some(&t));
        let list = c.get("/api/platform-templates").await.expect(200);
        assert_eq!(ids(&list.json), [published.as_str()], "{role:?}");
        let got = c
            .get(&format!("/api/templates/{published}"))
            .await
            .expect(200);
        assert!(got.json["tenant_id"].is_null());
        let got = c
            .get(&format!("/api/templates/{published}/versions/1"))
            .await
            .expect(200);
        assert_eq!(got.json["content_sha256"], v1["content_sha256"]);
        c.get(&format!("/api/templates/{published}/versions"))
            .await
            .expect(200);
        c.get(&format!("/api/templates/{unpublished}"))
            .await
            .expect(404);
    }
    let filtered = platform
        .get("/api/platform-templates?status=draft&q=PROGRESS")
        .await
        .expect(200);
    assert_eq!(ids(&filtered.json), [unpublished.as_str()]);
    let r = platform.get("/api/platform-templates?status=gone").await;
    assert!(r.status == 400 || r.status == 422, "{}", r.text);
    platform
        .get("/api/platform-templates?page_size=0")
        .await
        .expect(422);

    // A tenant admin copies it: a draft of their own, recording its source.
    let admin = stack.as_role(Role::TenantAdmin, Some(&t));
    let r = admin
        .post(&format!("/api/templates/{published}/copy"), json!({}))
        .await
        .expect(201);
    let copy = r.json["id"].as_str().expect("id").to_owned();
    assert_ne!(copy, published);
    assert_eq!(r.json["tenant_id"], t.as_str());
    assert_eq!(r.json["status"], "draft");
    assert_eq!(r.json["name"], "Outpatient (platform)");
    assert!(r.json["current_version"].is_null());
    assert_eq!(r.json["draft"], v1["content"]);
    assert_eq!(
        r.json["copied_from"],
        json!({ "template_id": published, "version": 1, "content_sha256": v1["content_sha256"] })
    );
    let entries = audit(&stack, "templates.copy").await;
    assert_eq!(entries[0]["tenant_id"], t.as_str());
    assert_eq!(entries[0]["resource_id"], copy.as_str());
    assert_eq!(
        audit_details(&entries[0])["source_template"],
        published.as_str()
    );

    // The copy is the tenant's: listed for the tenant, editable and publishable by it.
    let list = admin
        .get(&format!("/api/tenants/{t}/templates"))
        .await
        .expect(200);
    assert_eq!(ids(&list.json), [copy.as_str()]);
    assert_eq!(
        list.json["items"][0]["copied_from"]["template_id"],
        published.as_str()
    );
    admin
        .post(
            &format!("/api/templates/{copy}/sections"),
            json!({ "section": section("local") }),
        )
        .await
        .expect(201);
    let mine = publish(&admin, &copy).await;
    assert_eq!(mine["version"], 1);

    // The source moves on without touching the copy; a later copy takes the new version.
    new_draft(&platform, &published).await;
    platform
        .put(
            &format!("/api/templates/{published}/order"),
            json!({ "order": ["note", "history", "vitals"] }),
        )
        .await
        .expect(200);
    let v2 = publish(&platform, &published).await;
    let got = admin
        .get(&format!("/api/templates/{copy}/versions/1"))
        .await
        .expect(200);
    assert_eq!(got.json["content_sha256"], mine["content_sha256"]);
    let r = admin
        .post(
            &format!("/api/templates/{published}/copy"),
            json!({ "name": "Second copy", "description": "reordered" }),
        )
        .await
        .expect(201);
    assert_eq!(r.json["copied_from"]["version"], 2);
    assert_eq!(r.json["draft"], v2["content"]);
    assert_eq!(top_level(&r.json), ["note", "history", "vitals"]);
    assert_eq!(r.json["description"], "reordered");
    // An older active version may be named.
    let r = admin
        .post(
            &format!("/api/templates/{published}/copy"),
            json!({ "version": 1 }),
        )
        .await
        .expect(201);
    assert_eq!(r.json["draft"], v1["content"]);
}

async fn copies_are_tenant_owned_and_isolated(stack: Stack) {
    let a = tenant(&stack, "plat-a", None).await;
    let b = tenant(&stack, "plat-b", None).await;
    let platform = stack.admin();
    let source = create(&stack, None, "Shared", two_sections()).await;
    publish(&platform, &source).await;
    let a_admin = stack.as_role(Role::TenantAdmin, Some(&a));
    let b_admin = stack.as_role(Role::TenantAdmin, Some(&b));
    let a_copy = a_admin
        .post(&format!("/api/templates/{source}/copy"), json!({}))
        .await
        .expect(201)
        .json["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // B sees neither A's copy nor anything about it.
    b_admin
        .get(&format!("/api/templates/{a_copy}"))
        .await
        .expect(404);
    b_admin
        .post(&format!("/api/templates/{a_copy}/copy"), json!({}))
        .await
        .expect(404);
    b_admin
        .post(
            &format!("/api/templates/{a_copy}/sections"),
            json!({ "section": section("x") }),
        )
        .await
        .expect(404);
    let b_list = b_admin
        .get(&format!("/api/tenants/{b}/templates"))
        .await
        .expect(200);
    assert_eq!(b_list.json["total"], 0);
    b_admin
        .get(&format!("/api/tenants/{a}/templates"))
        .await
        .expect(404);
    // B cannot place a copy in A's tenant either.
    b_admin
        .post(
            &format!("/api/templates/{source}/copy"),
            json!({ "tenant_id": a }),
        )
        .await
        .expect(404);

    // Tenant admins read the platform template but cannot change it.
    let base = format!("/api/templates/{source}");
    let r = a_admin
        .put(&base, json!({ "name": "mine now" }))
        .await
        .expect(403);
    assert_eq!(r.error_code(), "forbidden");
    a_admin.delete(&base).await.expect(403);
    a_admin
        .post(&format!("{base}/versions"), Value::Null)
        .await
        .expect(403);
    a_admin
        .put(
            &format!("{base}/versions/1/status"),
            json!({ "status": "retired" }),
        )
        .await
        .expect(403);
    a_admin
        .post(
            &format!("{base}/sections"),
            json!({ "section": section("x") }),
        )
        .await
        .expect(403);
    let got = platform.get(&base).await.expect(200);
    assert_eq!(got.json["name"], "Shared", "unchanged");
    assert!(got.json["draft"].is_null());

    // A platform admin copies into a tenant by naming it.
    let r = platform
        .post(
            &format!("/api/templates/{source}/copy"),
            json!({ "tenant_id": b, "name": "For B" }),
        )
        .await
        .expect(201);
    assert_eq!(r.json["tenant_id"], b.as_str());
    let b_list = b_admin
        .get(&format!("/api/tenants/{b}/templates"))
        .await
        .expect(200);
    assert_eq!(b_list.json["total"], 1);
    // A tenant may copy its own templates too (a variant to edit separately).
    stack
        .as_role(Role::TenantAdmin, Some(&a))
        .post(&format!("/api/templates/{a_copy}/copy"), json!({}))
        .await
        .expect(409); // the copy is a draft: nothing published to copy yet
}

async fn copy_refusals(stack: Stack) {
    let t = tenant(&stack, "plat-refuse", None).await;
    let platform = stack.admin();
    let admin = stack.as_role(Role::TenantAdmin, Some(&t));
    let draft_only = create(&stack, None, "Unpublished", two_sections()).await;
    // Tenants cannot see an unpublished platform template at all; platform admins get 409.
    admin
        .post(&format!("/api/templates/{draft_only}/copy"), json!({}))
        .await
        .expect(404);
    let r = platform
        .post(
            &format!("/api/templates/{draft_only}/copy"),
            json!({ "tenant_id": t }),
        )
        .await
        .expect(409);
    assert_eq!(r.error_code(), "not_published");

    let source = create(&stack, None, "Retiring", two_sections()).await;
    publish(&platform, &source).await;
    platform
        .put(
            &format!("/api/templates/{source}/versions/1/status"),
            json!({ "status": "retired" }),
        )
        .await
        .expect(200);
    // Still readable (records may pin it) but no longer copyable.
    admin
        .get(&format!("/api/templates/{source}"))
        .await
        .expect(200);
    let r = admin
        .post(&format!("/api/templates/{source}/copy"), json!({}))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "no_active_version");
    let r = admin
        .post(
            &format!("/api/templates/{source}/copy"),
            json!({ "version": 1 }),
        )
        .await
        .expect(409);
    assert_eq!(r.error_code(), "version_retired");
    platform
        .put(
            &format!("/api/templates/{source}/versions/1/status"),
            json!({ "status": "active", "force": true, "reason": "needed again" }),
        )
        .await
        .expect(200);
    admin
        .post(
            &format!("/api/templates/{source}/copy"),
            json!({ "version": 5 }),
        )
        .await
        .expect(404);
    for bad in [
        json!({ "colour": "red" }),
        json!({ "name": "" }),
        json!({ "version": "one" }),
    ] {
        let r = admin
            .post(&format!("/api/templates/{source}/copy"), bad.clone())
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
    admin
        .post("/api/templates/tpl_missing/copy", json!({}))
        .await
        .expect(404);
    for role in [Role::TenantViewer, Role::Auditor] {
        stack
            .as_role(role, Some(&t))
            .post(&format!("/api/templates/{source}/copy"), json!({}))
            .await
            .expect(403);
    }
    // A platform admin leaving the tenant out makes a platform copy.
    let r = platform
        .post(&format!("/api/templates/{source}/copy"), json!({}))
        .await
        .expect(201);
    assert!(r.json["tenant_id"].is_null());
    // Nothing was created by the refusals.
    let list = admin
        .get(&format!("/api/tenants/{t}/templates"))
        .await
        .expect(200);
    assert_eq!(list.json["total"], 0);
}
