//! Record validation against published template versions (API §4.4): one failing case per
//! rule (T3), exact enableWhen semantics (T4) and pinning to a version (V3), on SQLite and
//! PostgreSQL.

mod common;

use std::collections::BTreeSet;

use common::{id, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    each_rule_reports_its_own_issue,
    enable_when_semantics_are_exact,
    records_keep_validating_against_their_version,
    validate_errors_are_4xx,
);

fn female() -> Value {
    json!({ "coding": { "system": "http://hl7.org/fhir/administrative-gender", "code": "female" } })
}

fn intake() -> Value {
    json!({ "items": [
        { "link_id": "sbp", "type": "integer", "required": true,
          "limits": { "min_value": { "integer": 10 }, "max_value": { "integer": 250 }, "unit": "mm[Hg]" } },
        { "link_id": "note", "type": "string", "max_length": 5, "limits": { "regex": "[a-z]+" } },
        { "link_id": "sex", "type": "choice", "answer_options": [
            { "value": female() },
            { "value": { "coding": { "system": "http://hl7.org/fhir/administrative-gender", "code": "male" } } }] },
        { "link_id": "pregnant", "type": "boolean",
          "enable_when": [{ "question": "sex", "operator": "=", "answer": female() }] },
        { "link_id": "complaint", "type": "string" }
    ]})
}

/// Creates and publishes a template in a new tenant; returns (tenant, template).
async fn published(stack: &Stack, code: &str, content: Value) -> (String, String) {
    let t = tenant(stack, code, None).await;
    let admin = stack.admin();
    let r = admin
        .post(
            "/api/templates",
            json!({ "tenant_id": t, "name": "Form", "content": content }),
        )
        .await
        .expect(201);
    let tid = id(&r.json);
    admin
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(201);
    (t, tid)
}

async fn check(stack: &Stack, tid: &str, query: &str, body: Value) -> Value {
    stack
        .admin()
        .post(&format!("/api/templates/{tid}/validate{query}"), body)
        .await
        .expect(200)
        .json
}

fn rules(report: &Value) -> Vec<(String, String)> {
    report["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| {
            (
                i["link_id"].as_str().expect("id").to_owned(),
                i["rule"].as_str().expect("rule").to_owned(),
            )
        })
        .collect()
}

async fn each_rule_reports_its_own_issue(stack: Stack) {
    let (_, tid) = published(&stack, "rec-t3", intake()).await;
    let valid = json!({ "status": "completed", "items": [
        { "link_id": "sbp", "answers": [{ "integer": 120 }] },
        { "link_id": "note", "answers": [{ "string": "ok" }] },
        { "link_id": "sex", "answers": [female()] },
        { "link_id": "pregnant", "answers": [{ "boolean": false }] }
    ]});
    let r = check(&stack, &tid, "", valid).await;
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["issues"], json!([]));
    assert_eq!(r["version"], 1);

    let male = json!({ "coding": { "system": "http://hl7.org/fhir/administrative-gender", "code": "male" } });
    let other = json!({ "coding": { "system": "http://hl7.org/fhir/administrative-gender", "code": "other" } });
    let cases = [
        (json!([]), "sbp", "required"),
        (
            json!([{ "link_id": "sbp", "answers": [{ "string": "abc" }] }]),
            "sbp",
            "type",
        ),
        (
            json!([{ "link_id": "sbp", "answers": [{ "integer": 300 }] }]),
            "sbp",
            "max-value",
        ),
        (
            json!([{ "link_id": "sbp", "answers": [{ "integer": 5 }] }]),
            "sbp",
            "min-value",
        ),
        (
            json!([{ "link_id": "note", "answers": [{ "string": "ABC" }] }]),
            "note",
            "regex",
        ),
        (
            json!([{ "link_id": "note", "answers": [{ "string": "abcdefgh" }] }]),
            "note",
            "max-length",
        ),
        (
            json!([{ "link_id": "sex", "answers": [other] }]),
            "sex",
            "options",
        ),
        (
            json!([{ "link_id": "sex", "answers": [male] }, { "link_id": "pregnant", "answers": [{ "boolean": true }] }]),
            "pregnant",
            "enable-when",
        ),
        (
            json!([{ "link_id": "complaint", "answers": [{ "string": "a" }, { "string": "b" }] }]),
            "complaint",
            "repeats",
        ),
        (
            json!([{ "link_id": "nope", "answers": [{ "string": "a" }] }]),
            "nope",
            "unknown-link-id",
        ),
    ];
    for (mut items, link_id, rule) in cases {
        if rule != "required" {
            items
                .as_array_mut()
                .expect("items")
                .push(json!({ "link_id": "sbp", "answers": [{ "integer": 120 }] }));
        }
        if link_id == "sbp" && rule != "required" {
            items.as_array_mut().expect("items").pop();
        }
        let r = check(
            &stack,
            &tid,
            "",
            json!({ "status": "completed", "items": items }),
        )
        .await;
        assert_eq!(r["valid"], false, "{rule}: {r}");
        assert_eq!(
            rules(&r),
            [(link_id.to_owned(), rule.to_owned())],
            "{rule}: {r}"
        );
        assert_eq!(r["issues"][0]["severity"], "error");
    }
    // Required items may wait while the record is in progress.
    let r = check(
        &stack,
        &tid,
        "",
        json!({ "status": "in-progress", "items": [] }),
    )
    .await;
    assert_eq!(r["valid"], true, "{r}");
}

fn logic() -> Value {
    let on = |question: &str, operator: &str, answer: Value| json!({ "question": question, "operator": operator, "answer": answer });
    let text = |link_id: &str, conds: Vec<Value>, behavior: Option<&str>| {
        let mut item = json!({ "link_id": link_id, "type": "string", "enable_when": conds });
        if let Some(b) = behavior {
            item["enable_behavior"] = json!(b);
        }
        item
    };
    json!({ "items": [
        { "link_id": "a", "type": "boolean" },
        { "link_id": "b", "type": "integer", "repeats": true },
        text("c", vec![on("a", "=", json!({ "boolean": true })), on("b", ">", json!({ "integer": 5 }))], Some("all")),
        text("d", vec![on("a", "=", json!({ "boolean": true })), on("b", ">", json!({ "integer": 5 }))], Some("any")),
        text("e", vec![on("a", "exists", json!({ "boolean": true }))], None),
        text("f", vec![on("a", "exists", json!({ "boolean": false }))], None),
        { "link_id": "g", "type": "group", "enable_when": [on("a", "=", json!({ "boolean": true }))],
          "items": [{ "link_id": "h", "type": "string" }] },
        text("i", vec![on("h", "exists", json!({ "boolean": true }))], None),
        text("j", vec![on("b", "=", json!({ "integer": 7 }))], None),
        text("k", vec![on("b", "!=", json!({ "integer": 7 }))], None),
    ]})
}

/// Answers every dependent item; the items reported as answered-while-disabled are the
/// disabled ones.
async fn disabled(stack: &Stack, tid: &str, a: Option<bool>, b: &[i64]) -> BTreeSet<String> {
    let mut items = vec![];
    if let Some(a) = a {
        items.push(json!({ "link_id": "a", "answers": [{ "boolean": a }] }));
    }
    let b: Vec<Value> = b.iter().map(|n| json!({ "integer": n })).collect();
    items.push(json!({ "link_id": "b", "answers": b }));
    for id in ["c", "d", "e", "f", "h", "i", "j", "k"] {
        items.push(json!({ "link_id": id, "answers": [{ "string": "x" }] }));
    }
    let r = check(
        stack,
        tid,
        "",
        json!({ "status": "completed", "items": items }),
    )
    .await;
    rules(&r)
        .into_iter()
        .map(|(id, rule)| {
            assert_eq!(rule, "enable-when", "{r}");
            id
        })
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

async fn enable_when_semantics_are_exact(stack: Stack) {
    let (_, tid) = published(&stack, "rec-t4", logic()).await;
    // all vs any, exists, multi-answer any-match (7 among [1, 7]), != when one answer equals.
    assert_eq!(
        disabled(&stack, &tid, Some(true), &[1, 7]).await,
        set(&["f", "k"])
    );
    // A disabled group disables its child h; i depends on h, which then counts as unvalued
    // even though it was answered.
    assert_eq!(
        disabled(&stack, &tid, Some(false), &[1]).await,
        set(&["c", "d", "f", "h", "i", "j"])
    );
    assert_eq!(
        disabled(&stack, &tid, None, &[9]).await,
        set(&["c", "e", "h", "i", "j"])
    );
}

async fn records_keep_validating_against_their_version(stack: Stack) {
    let (_, tid) = published(&stack, "rec-v3", intake()).await;
    let admin = stack.admin();
    admin
        .post(&format!("/api/templates/{tid}/versions"), Value::Null)
        .await
        .expect(201);
    let mut tighter = intake();
    tighter["items"][0]["limits"]["max_value"] = json!({ "integer": 200 });
    admin
        .put(
            &format!("/api/templates/{tid}"),
            json!({ "content": tighter }),
        )
        .await
        .expect(200);
    admin
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(201);

    let record = json!({ "status": "completed", "items": [{ "link_id": "sbp", "answers": [{ "integer": 230 }] }] });
    let r = check(&stack, &tid, "?version=1", record.clone()).await;
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["version"], 1);
    let r = check(&stack, &tid, "", record.clone()).await;
    assert_eq!(r["version"], 2);
    assert_eq!(rules(&r), [("sbp".to_owned(), "max-value".to_owned())]);
    admin
        .post(&format!("/api/templates/{tid}/validate?version=9"), record)
        .await
        .expect(404);
}

async fn validate_errors_are_4xx(stack: Stack) {
    let (t, tid) = published(&stack, "rec-errors", intake()).await;
    let admin = stack.admin();
    let path = format!("/api/templates/{tid}/validate");
    let ok = json!({ "status": "in-progress", "items": [] });
    admin
        .post(&path, json!({ "status": "done", "items": [] }))
        .await
        .expect(422);
    admin
        .post(
            &path,
            json!({ "status": "completed", "items": [], "extra": 1 }),
        )
        .await
        .expect(422);
    admin
        .post(&format!("{path}?version=x"), ok.clone())
        .await
        .expect(400);
    admin
        .post("/api/templates/tpl_missing/validate", ok.clone())
        .await
        .expect(404);
    // A template never published has nothing to validate against.
    let r = admin
        .post(
            "/api/templates",
            json!({ "tenant_id": t, "name": "Unpublished" }),
        )
        .await
        .expect(201);
    admin
        .post(
            &format!("/api/templates/{}/validate", id(&r.json)),
            ok.clone(),
        )
        .await
        .expect(409);
    // Any role of the tenant may validate; other tenants see nothing.
    stack
        .as_role(Role::TenantViewer, Some(&t))
        .post(&path, ok.clone())
        .await
        .expect(200);
    let other = tenant(&stack, "rec-other", None).await;
    stack
        .as_role(Role::TenantAdmin, Some(&other))
        .post(&path, ok)
        .await
        .expect(404);
}
