//! The version lifecycle (billing-medical.md §6.4), on SQLite and PostgreSQL:
//! V1 every content mutation of a published version is 409 and its hash never moves;
//! V2 create-version copies the latest content, one draft at a time, and concurrent
//! publishes number versions uniquely and consecutively. V3 and V4 are in
//! template_retirement.rs.

mod common;
mod template_common;

use common::tenant;
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};
use template_common::{audit, create, new_draft, publish, section, two_sections};

both_backends!(
    v1_published_content_refuses_every_mutation,
    v2_create_version_and_concurrent_publishes,
);

async fn v1_published_content_refuses_every_mutation(stack: Stack) {
    let t = tenant(&stack, "life-v1", None).await;
    let tid = create(&stack, Some(&t), "Frozen", two_sections()).await;
    let admin = stack.as_role(Role::TenantAdmin, Some(&t));
    let v1 = publish(&admin, &tid).await;
    let base = format!("/api/templates/{tid}");
    let attempts: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (
            reqwest::Method::PUT,
            base.clone(),
            Some(json!({ "content": two_sections() })),
        ),
        (
            reqwest::Method::POST,
            format!("{base}/sections"),
            Some(json!({ "section": section("x") })),
        ),
        (
            reqwest::Method::POST,
            format!("{base}/sections"),
            Some(json!({ "section": section("x"), "position": 0 })),
        ),
        (
            reqwest::Method::PUT,
            format!("{base}/sections/vitals"),
            Some(json!({ "section": section("vitals") })),
        ),
        // Even a section that does not exist: the version is frozen before anything else.
        (
            reqwest::Method::PUT,
            format!("{base}/sections/nope"),
            Some(json!({ "section": section("nope") })),
        ),
        (
            reqwest::Method::DELETE,
            format!("{base}/sections/history"),
            None,
        ),
        (
            reqwest::Method::PUT,
            format!("{base}/order"),
            Some(json!({ "order": ["note", "history", "vitals"] })),
        ),
        (
            reqwest::Method::PUT,
            format!("{base}/order"),
            Some(json!({ "order": ["note"] })),
        ),
        (reqwest::Method::POST, format!("{base}/publish"), None),
    ];
    for (method, path, body) in &attempts {
        let r = admin.call(method.clone(), path, body.clone()).await;
        assert_eq!(r.status, 409, "{method} {path}: {}", r.text);
        assert!(
            ["version_frozen", "no_draft"].contains(&r.error_code()),
            "{method} {path}: {}",
            r.text
        );
    }
    let got = admin.get(&format!("{base}/versions/1")).await.expect(200);
    assert_eq!(got.json["content_sha256"], v1["content_sha256"]);
    assert_eq!(got.json["content"], v1["content"]);
    let template = admin.get(&base).await.expect(200);
    assert!(template.json["draft"].is_null(), "no draft appeared");
    // Retiring changes the status only: the content and hash stay.
    admin
        .put(
            &format!("{base}/versions/1/status"),
            json!({ "status": "retired" }),
        )
        .await
        .expect(200);
    let got = admin.get(&format!("{base}/versions/1")).await.expect(200);
    assert_eq!(got.json["status"], "retired");
    assert_eq!(got.json["content_sha256"], v1["content_sha256"]);
    // A new draft takes the edits; version 1 stays as it was.
    new_draft(&admin, &tid).await;
    admin
        .post(
            &format!("{base}/sections"),
            json!({ "section": section("x") }),
        )
        .await
        .expect(201);
    let got = admin.get(&format!("{base}/versions/1")).await.expect(200);
    assert_eq!(got.json["content_sha256"], v1["content_sha256"]);
    let failures = audit(&stack, "templates.sections.create").await;
    assert!(failures
        .iter()
        .any(|e| e["outcome"] == "failure" && e["status_code"] == 409));
}

async fn v2_create_version_and_concurrent_publishes(stack: Stack) {
    let t = tenant(&stack, "life-v2", None).await;
    let tid = create(&stack, Some(&t), "Versions", two_sections()).await;
    let admin = stack.admin();
    let v1 = publish(&admin, &tid).await;
    let r = admin
        .post(&format!("/api/templates/{tid}/versions"), Value::Null)
        .await
        .expect(201);
    assert_eq!(
        r.json["draft"], v1["content"],
        "a deep copy of the latest content"
    );
    let r = admin
        .post(&format!("/api/templates/{tid}/versions"), Value::Null)
        .await
        .expect(409);
    assert_eq!(r.error_code(), "draft_exists");
    admin
        .put(
            &format!("/api/templates/{tid}/order"),
            json!({ "order": ["note", "history", "vitals"] }),
        )
        .await
        .expect(200);
    let v2 = publish(&admin, &tid).await;
    assert_eq!(v2["version"], 2);
    assert_ne!(v2["content_sha256"], v1["content_sha256"]);
    // Create-version copies the latest published version, even a retired one.
    admin
        .put(
            &format!("/api/templates/{tid}/versions/2/status"),
            json!({ "status": "retired" }),
        )
        .await
        .expect(200);
    let r = admin
        .post(&format!("/api/templates/{tid}/versions"), Value::Null)
        .await
        .expect(201);
    assert_eq!(r.json["draft"], v2["content"]);
    assert_eq!(publish(&admin, &tid).await["version"], 3);

    // Ten writers racing: each creates a draft (409 while another's exists) and publishes
    // (409 when another published it first) until one of its publishes wins.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let client = stack.as_role(Role::TenantAdmin, Some(&t));
        let tid = tid.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let r = client
                    .post(&format!("/api/templates/{tid}/versions"), Value::Null)
                    .await;
                assert!(r.status == 201 || r.status == 409, "{}", r.text);
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
    assert_eq!(
        won,
        (4..=13).collect::<Vec<i64>>(),
        "unique and consecutive"
    );
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
    assert_eq!(numbers, (1..=13).collect::<Vec<i64>>());
    let got = admin
        .get(&format!("/api/templates/{tid}"))
        .await
        .expect(200);
    assert_eq!(got.json["current_version"], 13);
    assert_eq!(got.json["status"], "active");
}
