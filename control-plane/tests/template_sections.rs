//! Sections of a template's draft (API §4.3): add at a position, replace, delete, reorder
//! with the full list (partial, unknown and duplicate lists refused naming the ids), the
//! structure rules on every change (T1), audit, tenant scoping (404) and roles, on SQLite
//! and PostgreSQL. Frozen versions (V1) are in template_lifecycle.rs.

mod common;
mod template_common;

use common::{audit_details, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};
use template_common::{audit, create, section, top_level, two_sections};

both_backends!(
    sections_are_added_replaced_and_deleted,
    order_takes_the_full_list_only,
    section_edits_keep_the_structure_rules,
    sections_are_tenant_scoped_and_role_checked,
);

async fn sections_are_added_replaced_and_deleted(stack: Stack) {
    let t = tenant(&stack, "sec-crud", None).await;
    let tid = create(&stack, Some(&t), "Sections", two_sections()).await;
    let admin = stack.as_role(Role::TenantAdmin, Some(&t));
    let sections = format!("/api/templates/{tid}/sections");

    let r = admin
        .post(
            &sections,
            json!({ "section": section("exam"), "position": 1 }),
        )
        .await
        .expect(201);
    assert_eq!(top_level(&r.json), ["vitals", "exam", "history", "note"]);
    let r = admin
        .post(&sections, json!({ "section": section("plan") }))
        .await
        .expect(201);
    assert_eq!(
        top_level(&r.json),
        ["vitals", "exam", "history", "note", "plan"],
        "appended without a position"
    );
    let r = admin
        .post(
            &sections,
            json!({ "section": section("first"), "position": 0 }),
        )
        .await
        .expect(201);
    assert_eq!(top_level(&r.json)[0], "first");

    // Replace in place: content changes, position stays; the linkId may change too.
    let mut exam = section("exam");
    exam["text"] = json!("Physical examination");
    exam["items"] =
        json!([{ "link_id": "abdomen", "type": "text" }, { "link_id": "chest", "type": "text" }]);
    let r = admin
        .put(&format!("{sections}/exam"), json!({ "section": exam }))
        .await
        .expect(200);
    assert_eq!(r.json["draft"]["items"][2], exam);
    let r = admin
        .put(
            &format!("{sections}/plan"),
            json!({ "section": section("plan2") }),
        )
        .await
        .expect(200);
    assert_eq!(
        top_level(&r.json),
        ["first", "vitals", "exam", "history", "note", "plan2"]
    );

    admin.delete(&format!("{sections}/first")).await.expect(204);
    let got = admin
        .get(&format!("/api/templates/{tid}"))
        .await
        .expect(200);
    assert_eq!(
        top_level(&got.json),
        ["vitals", "exam", "history", "note", "plan2"]
    );

    // Unknown sections, non-group items and nested groups are not sections.
    for missing in ["nope", "note", "sbp", "first"] {
        let r = admin
            .delete(&format!("{sections}/{missing}"))
            .await
            .expect(404);
        assert_eq!(r.error_code(), "not_found", "{missing}");
        admin
            .put(
                &format!("{sections}/{missing}"),
                json!({ "section": section("x") }),
            )
            .await
            .expect(404);
    }
    // The draft publishes with its sections.
    let v = template_common::publish(&admin, &tid).await;
    assert_eq!(v["content"]["items"][1]["link_id"], "exam");

    for action in [
        "templates.sections.create",
        "templates.sections.update",
        "templates.sections.delete",
    ] {
        let entries = audit(&stack, action).await;
        assert!(!entries.is_empty(), "{action} audited");
        assert_eq!(entries[0]["tenant_id"], t.as_str(), "{action}");
        assert_eq!(entries[0]["resource_id"], tid.as_str(), "{action}");
    }
    let created = audit(&stack, "templates.sections.create").await;
    let successes: Vec<&Value> = created
        .iter()
        .filter(|e| e["outcome"] == "success")
        .collect();
    assert_eq!(successes.len(), 3);
    assert_eq!(audit_details(successes[0])["section"], "first");
}

async fn order_takes_the_full_list_only(stack: Stack) {
    let t = tenant(&stack, "sec-order", None).await;
    let tid = create(&stack, Some(&t), "Order", two_sections()).await;
    let admin = stack.admin();
    let order = format!("/api/templates/{tid}/order");

    let r = admin
        .put(&order, json!({ "order": ["note", "history", "vitals"] }))
        .await
        .expect(200);
    assert_eq!(top_level(&r.json), ["note", "history", "vitals"]);
    let before = r.json["draft"].clone();

    let cases = [
        (json!(["note", "history"]), "missing", json!(["vitals"])),
        (
            json!(["note", "history", "vitals", "zzz"]),
            "unknown",
            json!(["zzz"]),
        ),
        (
            json!(["note", "history", "vitals", "note"]),
            "duplicate",
            json!(["note"]),
        ),
        (json!(["note", "history", "sbp"]), "unknown", json!(["sbp"])),
        (json!([]), "missing", json!(["note", "history", "vitals"])),
    ];
    for (list, key, ids) in cases {
        let r = admin
            .put(&order, json!({ "order": list }))
            .await
            .expect(422);
        assert_eq!(r.error_code(), "invalid_order", "{}", r.text);
        assert_eq!(r.json["error"]["details"][key], ids, "{}", r.text);
        for id in ids.as_array().expect("ids") {
            let id = id.as_str().expect("id");
            assert!(r.json["error"]["message"]
                .as_str()
                .expect("message")
                .contains(id));
        }
    }
    for bad in [
        json!({}),
        json!({ "order": "note" }),
        json!({ "order": [1] }),
        json!({ "order": [], "x": 1 }),
    ] {
        let r = admin.put(&order, bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
    let got = admin
        .get(&format!("/api/templates/{tid}"))
        .await
        .expect(200);
    assert_eq!(got.json["draft"], before, "refused orders change nothing");
    let entries = audit(&stack, "templates.order").await;
    assert_eq!(
        entries.iter().filter(|e| e["outcome"] == "success").count(),
        1
    );
    assert!(entries.iter().filter(|e| e["outcome"] == "failure").count() >= 5);
}

async fn section_edits_keep_the_structure_rules(stack: Stack) {
    let t = tenant(&stack, "sec-rules", None).await;
    let mut content = two_sections();
    // `note` is enabled by an answer in the history section.
    content["items"][2]["enable_when"] =
        json!([{ "question": "smoker", "operator": "=", "answer": { "boolean": true } }]);
    let tid = create(&stack, Some(&t), "Rules", content).await;
    let admin = stack.admin();
    let sections = format!("/api/templates/{tid}/sections");
    let cases = [
        (
            json!({ "section": { "link_id": "empty", "type": "group" } }),
            "que-1",
            "empty",
        ),
        (json!({ "section": section("vitals") }), "que-2", "vitals"),
        (
            json!({ "section": { "link_id": "s", "type": "group", "items": [
                { "link_id": "sbp", "type": "integer" }] } }),
            "que-2",
            "sbp",
        ),
        (
            json!({ "section": { "link_id": "s", "type": "group", "items": [
                { "link_id": "d", "type": "display", "required": true }] } }),
            "que-6",
            "d",
        ),
    ];
    for (body, rule, link_id) in cases {
        let r = admin.post(&sections, body).await.expect(422);
        assert_eq!(r.json["error"]["details"]["rule"], rule, "{}", r.text);
        assert_eq!(r.json["error"]["details"]["link_id"], link_id, "{}", r.text);
    }
    // Deleting the section another item depends on breaks an enableWhen: refused.
    let r = admin
        .delete(&format!("{sections}/history"))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["rule"], "enable-when");
    assert_eq!(r.json["error"]["details"]["link_id"], "note");
    let r = admin
        .put(
            &format!("{sections}/history"),
            json!({ "section": section("history") }),
        )
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["rule"], "enable-when");
    // A section must be a group; a position must be in range; unknown fields are refused.
    let r = admin
        .post(
            &sections,
            json!({ "section": { "link_id": "q", "type": "string" } }),
        )
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "section.type");
    let r = admin
        .post(
            &sections,
            json!({ "section": section("late"), "position": 4 }),
        )
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "position");
    for bad in [
        json!({ "section": section("x"), "position": -1 }),
        json!({ "section": section("x"), "extra": true }),
        json!({ "section": { "link_id": "x", "type": "folder", "items": [] } }),
        json!({}),
    ] {
        let r = admin.post(&sections, bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
    let r = admin
        .raw(
            reqwest::Method::POST,
            &sections,
            "application/json",
            b"{".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let got = admin
        .get(&format!("/api/templates/{tid}"))
        .await
        .expect(200);
    assert_eq!(
        top_level(&got.json),
        ["vitals", "history", "note"],
        "unchanged"
    );
}

async fn sections_are_tenant_scoped_and_role_checked(stack: Stack) {
    let a = tenant(&stack, "sec-a", None).await;
    let b = tenant(&stack, "sec-b", None).await;
    let tid = create(&stack, Some(&a), "A's", two_sections()).await;
    let sections = format!("/api/templates/{tid}/sections");
    let order = format!("/api/templates/{tid}/order");
    let b_admin = stack.as_role(Role::TenantAdmin, Some(&b));
    b_admin
        .post(&sections, json!({ "section": section("x") }))
        .await
        .expect(404);
    b_admin
        .put(
            &format!("{sections}/vitals"),
            json!({ "section": section("vitals") }),
        )
        .await
        .expect(404);
    b_admin
        .delete(&format!("{sections}/vitals"))
        .await
        .expect(404);
    b_admin
        .put(&order, json!({ "order": ["note", "history", "vitals"] }))
        .await
        .expect(404);
    for role in [Role::TenantViewer, Role::Auditor] {
        let c = stack.as_role(role, Some(&a));
        c.post(&sections, json!({ "section": section("x") }))
            .await
            .expect(403);
        c.delete(&format!("{sections}/vitals")).await.expect(403);
        c.put(&order, json!({ "order": ["note", "history", "vitals"] }))
            .await
            .expect(403);
    }
    stack
        .admin()
        .post(
            "/api/templates/tpl_missing/sections",
            json!({ "section": section("x") }),
        )
        .await
        .expect(404);
    let got = stack
        .admin()
        .get(&format!("/api/templates/{tid}"))
        .await
        .expect(200);
    assert_eq!(
        top_level(&got.json),
        ["vitals", "history", "note"],
        "unchanged"
    );
    // The owner's admin may.
    stack
        .as_role(Role::TenantAdmin, Some(&a))
        .post(&sections, json!({ "section": section("x") }))
        .await
        .expect(201);
}
