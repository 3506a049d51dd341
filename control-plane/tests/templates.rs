//! Medical record templates (API §4.1–§4.2): save-time invariants through the API (T1),
//! frozen published content (V1), create-version and concurrent publishes (V2), version
//! content fixed by hash (V3's premise), input errors, tenant scoping and roles, on SQLite
//! and PostgreSQL.

mod common;

use common::{id, sha256_hex, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    a_template_is_drafted_published_and_versioned,
    a_broken_draft_is_refused_naming_rule_and_link_id,
    published_content_is_frozen,
    concurrent_publishes_take_unique_consecutive_numbers,
    template_input_errors_are_4xx,
    templates_of_other_tenants_are_not_found,
    roles_are_enforced_for_templates,
);

fn vitals() -> Value {
    json!({ "items": [{
        "link_id": "vitals", "type": "group", "text": "Vital signs",
        "items": [
            { "link_id": "sbp", "type": "integer", "required": true,
              "limits": { "min_value": { "integer": 10 }, "max_value": { "integer": 250 }, "unit": "mm[Hg]" } },
            { "link_id": "dbp", "type": "integer",
              "limits": { "min_value": { "integer": 30 }, "max_value": { "integer": 200 }, "unit": "mm[Hg]" } }
        ]
    }]})
}

async fn create(stack: &Stack, tenant: &str, name: &str) -> String {
    let r = stack
        .admin()
        .post(
            "/api/templates",
            json!({ "tenant_id": tenant, "name": name, "content": vitals() }),
        )
        .await
        .expect(201);
    id(&r.json)
}

async fn a_template_is_drafted_published_and_versioned(stack: Stack) {
    let t = tenant(&stack, "tpl-flow", None).await;
    let admin = stack.as_role(Role::TenantAdmin, Some(&t));
    let r = admin
        .post(
            "/api/templates",
            json!({ "name": "Outpatient", "content": vitals() }),
        )
        .await
        .expect(201);
    let tid = id(&r.json);
    assert!(tid.starts_with("tpl_"), "{tid}");
    assert_eq!(r.json["tenant_id"], t.as_str());
    assert_eq!(r.json["status"], "draft");
    assert!(r.json["current_version"].is_null());
    assert_eq!(r.json["draft"], vitals(), "content round-trips unchanged");

    let v1 = admin
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(201);
    assert_eq!(v1.json["version"], 1);
    let canonical = serde_json::to_string(&v1.json["content"]).expect("json");
    assert_eq!(v1.json["content_sha256"], sha256_hex(&canonical));
    let got = admin
        .get(&format!("/api/templates/{tid}"))
        .await
        .expect(200);
    assert_eq!(got.json["status"], "active");
    assert_eq!(got.json["current_version"], 1);
    assert!(got.json["draft"].is_null(), "the draft became version 1");

    // A new version starts from the published content; a second one while it exists is 409.
    let r = admin
        .post(&format!("/api/templates/{tid}/versions"), Value::Null)
        .await
        .expect(201);
    assert_eq!(r.json["draft"], v1.json["content"]);
    let r = admin
        .post(&format!("/api/templates/{tid}/versions"), Value::Null)
        .await
        .expect(409);
    assert_eq!(r.error_code(), "draft_exists");
    let mut changed = vitals();
    changed["items"][0]["items"][0]["limits"]["max_value"] = json!({ "integer": 260 });
    admin
        .put(
            &format!("/api/templates/{tid}"),
            json!({ "content": changed }),
        )
        .await
        .expect(200);
    let v2 = admin
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(201);
    assert_eq!(v2.json["version"], 2);
    assert_ne!(v2.json["content_sha256"], v1.json["content_sha256"]);

    let list = admin
        .get(&format!("/api/templates/{tid}/versions"))
        .await
        .expect(200);
    let numbers: Vec<i64> = list
        .json
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v["version"].as_i64().expect("n"))
        .collect();
    assert_eq!(numbers, [1, 2]);
    // Version 1 keeps its exact content after version 2 is published.
    let old = admin
        .get(&format!("/api/templates/{tid}/versions/1"))
        .await
        .expect(200);
    assert_eq!(old.json["content"], v1.json["content"]);
    assert_eq!(old.json["content_sha256"], v1.json["content_sha256"]);
    admin
        .get(&format!("/api/templates/{tid}/versions/3"))
        .await
        .expect(404);

    let tenant_list = admin
        .get(&format!("/api/tenants/{t}/templates"))
        .await
        .expect(200);
    assert_eq!(tenant_list.json["total"], 1);
    let audit = stack
        .admin()
        .get("/api/audit-logs?page_size=500")
        .await
        .expect(200);
    for action in [
        "templates.create",
        "templates.publish",
        "templates.create_version",
        "templates.update",
    ] {
        assert!(audit.text.contains(action), "{action} audited");
    }
    // Published versions may be pinned by records: no delete.
    let r = admin
        .delete(&format!("/api/templates/{tid}"))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "template_published");
}

async fn a_broken_draft_is_refused_naming_rule_and_link_id(stack: Stack) {
    let t = tenant(&stack, "tpl-t1", None).await;
    let admin = stack.admin();
    let cases = [
        (
            json!([{ "link_id": "a", "type": "string" }, { "link_id": "a", "type": "integer" }]),
            "que-2",
            "a",
        ),
        (json!([{ "link_id": "g", "type": "group" }]), "que-1", "g"),
        (
            json!([{ "link_id": "d", "type": "display", "required": true }]),
            "que-6",
            "d",
        ),
        (
            json!([{ "link_id": "c", "type": "choice", "answer_value_set": "http://loinc.org/vs/LL1",
                  "answer_options": [{ "value": { "string": "x" } }] }]),
            "que-4",
            "c",
        ),
        (
            json!([{ "link_id": "q", "type": "quantity", "max_length": 3 }]),
            "que-10",
            "q",
        ),
        (
            json!([{ "link_id": "a", "type": "boolean" }, { "link_id": "b", "type": "string", "enable_when": [
            { "question": "a", "operator": "exists", "answer": { "boolean": true } },
            { "question": "a", "operator": "=", "answer": { "boolean": true } }] }]),
            "que-12",
            "b",
        ),
        (
            json!([{ "link_id": "b", "type": "string", "enable_when": [
            { "question": "zz", "operator": "exists", "answer": { "boolean": true } }] }]),
            "enable-when",
            "b",
        ),
    ];
    for (items, rule, link_id) in cases {
        let r = admin
            .post(
                "/api/templates",
                json!({ "tenant_id": t, "name": "Broken", "content": { "items": items } }),
            )
            .await
            .expect(422);
        assert_eq!(r.json["error"]["details"]["rule"], rule, "{}", r.text);
        assert_eq!(r.json["error"]["details"]["link_id"], link_id, "{}", r.text);
    }
    // The same rules guard edits of a draft.
    let tid = create(&stack, &t, "Fine").await;
    let r = admin
        .put(
            &format!("/api/templates/{tid}"),
            json!({ "content": { "items": [{ "link_id": "g", "type": "group" }] } }),
        )
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["rule"], "que-1");
}

async fn published_content_is_frozen(stack: Stack) {
    let t = tenant(&stack, "tpl-v1", None).await;
    let admin = stack.admin();
    let tid = create(&stack, &t, "Frozen").await;
    let v1 = admin
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(201);
    let r = admin
        .put(
            &format!("/api/templates/{tid}"),
            json!({ "content": { "items": [] } }),
        )
        .await
        .expect(409);
    assert_eq!(r.error_code(), "version_frozen");
    let r = admin
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(409);
    assert_eq!(r.error_code(), "no_draft");
    // Metadata stays editable; the content and its hash do not move.
    admin
        .put(
            &format!("/api/templates/{tid}"),
            json!({ "name": "Renamed" }),
        )
        .await
        .expect(200);
    let got = admin
        .get(&format!("/api/templates/{tid}/versions/1"))
        .await
        .expect(200);
    assert_eq!(got.json["content_sha256"], v1.json["content_sha256"]);
    assert_eq!(got.json["content"], v1.json["content"]);
}

async fn concurrent_publishes_take_unique_consecutive_numbers(stack: Stack) {
    let t = tenant(&stack, "tpl-v2", None).await;
    let tid = create(&stack, &t, "Busy").await;
    // Ten publishes of one draft: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let client = stack.admin();
        let path = format!("/api/templates/{tid}/publish");
        tasks.push(tokio::spawn(async move {
            client.post(&path, Value::Null).await.status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );

    // Ten writers each get one version published, racing for drafts and numbers.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let client = stack.admin();
        let tid = tid.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let _ = client
                    .post(&format!("/api/templates/{tid}/versions"), Value::Null)
                    .await;
                let r = client
                    .post(&format!("/api/templates/{tid}/publish"), Value::Null)
                    .await;
                match r.status {
                    201 => return r.json["version"].as_i64().expect("version"),
                    409 => continue,
                    other => panic!("publish answered {other}: {}", r.text),
                }
            }
        }));
    }
    let mut won = Vec::new();
    for task in tasks {
        won.push(task.await.expect("task"));
    }
    won.sort_unstable();
    assert_eq!(won, (2..=11).collect::<Vec<i64>>());
    let list = stack
        .admin()
        .get(&format!("/api/templates/{tid}/versions"))
        .await
        .expect(200);
    let numbers: Vec<i64> = list
        .json
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v["version"].as_i64().expect("n"))
        .collect();
    assert_eq!(numbers, (1..=11).collect::<Vec<i64>>());
}

async fn template_input_errors_are_4xx(stack: Stack) {
    let t = tenant(&stack, "tpl-errors", None).await;
    let admin = stack.admin();
    let r = admin
        .post("/api/templates", json!({ "tenant_id": t, "name": "" }))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "name");
    admin
        .post(
            "/api/templates",
            json!({ "tenant_id": t, "name": "x", "colour": "red" }),
        )
        .await
        .expect(422);
    admin
        .post(
            "/api/templates",
            json!({ "tenant_id": t, "name": "x",
            "content": { "items": [{ "link_id": "a", "type": "number" }] } }),
        )
        .await
        .expect(422);
    let r = admin
        .raw(
            reqwest::Method::POST,
            "/api/templates",
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    admin.get("/api/templates/tpl_missing").await.expect(404);
    admin
        .get("/api/templates/tpl_missing/versions")
        .await
        .expect(404);
    admin
        .post("/api/templates/tpl_missing/publish", Value::Null)
        .await
        .expect(404);
    let tid = create(&stack, &t, "Draft only").await;
    let r = admin
        .post(&format!("/api/templates/{tid}/versions"), Value::Null)
        .await
        .expect(409);
    assert_eq!(r.error_code(), "draft_exists");
    let r = admin
        .get(&format!("/api/templates/{tid}/versions/abc"))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // A template never published is deleted outright.
    admin
        .delete(&format!("/api/templates/{tid}"))
        .await
        .expect(204);
    // Platform templates belong to no tenant.
    let r = admin
        .post(
            "/api/templates",
            json!({ "name": "Platform form", "content": vitals() }),
        )
        .await
        .expect(201);
    assert!(r.json["tenant_id"].is_null());
}

async fn templates_of_other_tenants_are_not_found(stack: Stack) {
    let a = tenant(&stack, "tpl-a", None).await;
    let b = tenant(&stack, "tpl-b", None).await;
    let tid = create(&stack, &a, "A's form").await;
    let b_admin = stack.as_role(Role::TenantAdmin, Some(&b));
    b_admin
        .get(&format!("/api/templates/{tid}"))
        .await
        .expect(404);
    b_admin
        .put(&format!("/api/templates/{tid}"), json!({ "name": "mine" }))
        .await
        .expect(404);
    b_admin
        .delete(&format!("/api/templates/{tid}"))
        .await
        .expect(404);
    b_admin
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(404);
    b_admin
        .post(&format!("/api/templates/{tid}/versions"), Value::Null)
        .await
        .expect(404);
    b_admin
        .get(&format!("/api/templates/{tid}/versions"))
        .await
        .expect(404);
    b_admin
        .get(&format!("/api/templates/{tid}/versions/1"))
        .await
        .expect(404);
    b_admin
        .get(&format!("/api/tenants/{a}/templates"))
        .await
        .expect(404);
    let r = b_admin.get("/api/templates").await.expect(200);
    assert_eq!(r.json["total"], 0);
    b_admin
        .post(
            "/api/templates",
            json!({ "tenant_id": a, "name": "sneaky" }),
        )
        .await
        .expect(404);
    let got = stack
        .admin()
        .get(&format!("/api/templates/{tid}"))
        .await
        .expect(200);
    assert_eq!(got.json["name"], "A's form", "unchanged");
    assert_eq!(got.json["status"], "draft", "not published by B");
}

async fn roles_are_enforced_for_templates(stack: Stack) {
    let t = tenant(&stack, "tpl-roles", None).await;
    let tid = create(&stack, &t, "Roles").await;
    for role in [Role::TenantViewer, Role::Auditor] {
        let c = stack.as_role(role, Some(&t));
        c.get(&format!("/api/templates/{tid}")).await.expect(200);
        c.put(&format!("/api/templates/{tid}"), json!({ "name": "x" }))
            .await
            .expect(403);
        c.post(&format!("/api/templates/{tid}/publish"), Value::Null)
            .await
            .expect(403);
        c.post(&format!("/api/templates/{tid}/versions"), Value::Null)
            .await
            .expect(403);
        c.post("/api/templates", json!({ "name": "x" }))
            .await
            .expect(403);
    }
    // A tenant admin cannot make a platform template by leaving the tenant out: it is theirs.
    let admin = stack.as_role(Role::TenantAdmin, Some(&t));
    let r = admin
        .post("/api/templates", json!({ "name": "Mine" }))
        .await
        .expect(201);
    assert_eq!(r.json["tenant_id"], t.as_str());
}
