//! FHIR R4 Questionnaire export and import (issue 6, T2): export -> import -> export is
//! byte-identical canonical JSON over a template using every item type, enableWhen operator
//! and answer type, answerOption type and limit extension; unsupported input is a 422 naming
//! its path; versions, drafts, owners and roles; on SQLite and PostgreSQL.

mod common;

use std::collections::BTreeSet;

use common::{id, tenant};
use medgate_control_plane::templates::fhir::canonical;
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    export_import_export_is_byte_identical,
    published_versions_export_with_their_status,
    unsupported_constructs_are_422_naming_the_path,
    export_refuses_what_fhir_cannot_say,
    owners_and_roles_of_fhir_endpoints,
);

const FHIR_JSON: &str = "application/fhir+json";

/// The every-construct template shared with tests/python/test_fhir.py.
fn every_construct() -> Value {
    serde_json::from_str(include_str!("fixtures/fhir_every_construct.json")).expect("fixture")
}

fn minimal(items: Value) -> Value {
    json!({ "resourceType": "Questionnaire", "status": "draft", "title": "T", "item": items })
}

async fn import(stack: &Stack, client_role: Option<(Role, &str)>, body: &Value) -> (u16, Value) {
    let client = match client_role {
        Some((role, t)) => stack.as_role(role, Some(t)),
        None => stack.admin(),
    };
    let r = client
        .raw(
            Method::POST,
            "/api/templates/import/fhir",
            FHIR_JSON,
            serde_json::to_vec(body).expect("json"),
        )
        .await;
    (r.status, r.json)
}

async fn export(stack: &Stack, tid: &str, query: &str) -> String {
    let r = stack
        .admin()
        .get(&format!("/api/templates/{tid}/fhir{query}"))
        .await
        .expect(200);
    let content_type = r.headers["content-type"].to_str().expect("header");
    assert_eq!(content_type, FHIR_JSON);
    r.text
}

fn walk<'a>(items: &'a Value, out: &mut Vec<&'a Value>) {
    for item in items.as_array().into_iter().flatten() {
        out.push(item);
        walk(&item["item"], out);
    }
}

async fn export_import_export_is_byte_identical(stack: Stack) {
    let t = tenant(&stack, "fhir-rt", None).await;
    let admin = stack.as_role(Role::TenantAdmin, Some(&t));
    let r = admin
        .post(
            "/api/templates",
            json!({ "name": "Every construct 全部", "description": "T2 round trip",
                    "content": every_construct() }),
        )
        .await
        .expect(201);
    let tid = id(&r.json);
    let first = export(&stack, &tid, "?draft=true").await;
    let doc: Value = serde_json::from_str(&first).expect("json");
    assert_eq!(canonical::to_string(&doc), first, "the export is canonical");
    assert_eq!(doc["status"], "draft");
    assert_eq!(doc["url"], format!("urn:medgate:template:{tid}"));
    assert_eq!(doc["title"], "Every construct 全部");
    assert!(doc.get("version").is_none(), "a draft has no version");

    // Coverage: every item type, operator, answer[x], answerOption value[x], extension.
    let mut items = Vec::new();
    walk(&doc["item"], &mut items);
    let set = |f: &dyn Fn(&Value) -> Vec<String>| -> BTreeSet<String> {
        items.iter().flat_map(|i| f(i)).collect()
    };
    let keys = |list: &Value, prefix: &str| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| e.as_object().into_iter().flat_map(|m| m.keys()))
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    };
    let types = set(&|i| vec![i["type"].as_str().unwrap_or("").to_owned()]);
    assert_eq!(types.len(), 16, "{types:?}");
    let ops = set(&|i| {
        i["enableWhen"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["operator"].as_str().unwrap_or("").to_owned())
            .collect()
    });
    assert_eq!(ops.len(), 7, "{ops:?}");
    let answers = set(&|i| keys(&i["enableWhen"], "answer"));
    assert_eq!(
        answers.len(),
        9,
        "all nine R4 answer[x] but Reference: {answers:?}"
    );
    let options = set(&|i| keys(&i["answerOption"], "value"));
    assert_eq!(options.len(), 5, "{options:?}");
    let initial = set(&|i| keys(&i["initial"], "value"));
    assert_eq!(initial.len(), 10, "{initial:?}");
    let urls = set(&|i| {
        i["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["url"].as_str().unwrap_or("").to_owned())
            .collect()
    });
    assert_eq!(urls.len(), 8, "{urls:?}");

    // Import as a tenant admin, then export the new draft: the same bytes.
    let (status, imported) = import(&stack, Some((Role::TenantAdmin, &t)), &doc).await;
    assert_eq!(status, 201, "{imported}");
    let copy = id(&imported);
    assert_ne!(copy, tid);
    assert_eq!(imported["tenant_id"], t.as_str());
    assert_eq!(imported["status"], "draft");
    assert_eq!(imported["name"], "Every construct 全部");
    assert_eq!(imported["description"], "T2 round trip");
    assert_eq!(
        imported["draft"],
        every_construct(),
        "the model survives unchanged"
    );
    let second = export(&stack, &copy, "?draft=true").await;
    assert_eq!(
        second, first,
        "export -> import -> export is byte-identical"
    );

    // And once more, by a platform admin without a tenant: a platform template.
    let (status, platform) =
        import(&stack, None, &serde_json::from_str(&second).expect("json")).await;
    assert_eq!(status, 201, "{platform}");
    assert!(platform["tenant_id"].is_null());
    let r = stack
        .admin()
        .raw(
            Method::POST,
            &format!("/api/templates/import/fhir?tenant_id={t}"),
            "application/json",
            second.clone().into_bytes(),
        )
        .await
        .expect(201);
    assert_eq!(export(&stack, &id(&platform), "?draft=true").await, first);
    let third = export(&stack, &id(&r.json), "?draft=true").await;
    assert_eq!(third, first);
}

async fn published_versions_export_with_their_status(stack: Stack) {
    let t = tenant(&stack, "fhir-ver", None).await;
    let admin = stack.admin();
    let r = admin
        .post(
            "/api/templates",
            json!({ "tenant_id": t, "name": "Vitals", "content": every_construct() }),
        )
        .await
        .expect(201);
    let tid = id(&r.json);
    let r = admin
        .get(&format!("/api/templates/{tid}/fhir"))
        .await
        .expect(404);
    assert_eq!(r.error_code(), "not_found");
    admin
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(201);
    let v1 = export(&stack, &tid, "").await;
    let doc: Value = serde_json::from_str(&v1).expect("json");
    assert_eq!(
        (doc["status"].as_str(), doc["version"].as_str()),
        (Some("active"), Some("1"))
    );
    assert_eq!(export(&stack, &tid, "?version=1").await, v1);
    admin
        .get(&format!("/api/templates/{tid}/fhir?version=2"))
        .await
        .expect(404);
    let r = admin
        .get(&format!("/api/templates/{tid}/fhir?draft=true"))
        .await
        .expect(404);
    assert_eq!(r.error_code(), "not_found");
    admin
        .get(&format!("/api/templates/{tid}/fhir?draft=true&version=1"))
        .await
        .expect(422);
    admin
        .get(&format!("/api/templates/{tid}/fhir?bogus=1"))
        .await
        .expect(400);

    // A published import exports exactly like the published original.
    let (status, imported) = import(&stack, None, &json!(null)).await;
    assert_eq!(status, 422, "{imported}");
    let r = admin
        .raw(
            Method::POST,
            &format!("/api/templates/import/fhir?tenant_id={t}"),
            FHIR_JSON,
            v1.clone().into_bytes(),
        )
        .await
        .expect(201);
    let copy = id(&r.json);
    admin
        .post(&format!("/api/templates/{copy}/publish"), Value::Null)
        .await
        .expect(201);
    assert_eq!(export(&stack, &copy, "").await, v1);
}

async fn unsupported_constructs_are_422_naming_the_path(stack: Stack) {
    let t = tenant(&stack, "fhir-422", None).await;
    let q = |item: Value| minimal(json!([item]));
    let cases = [
        (
            json!({ "resourceType": "Patient" }),
            "Questionnaire.resourceType",
        ),
        (
            json!({ "resourceType": "Questionnaire", "title": "T" }),
            "Questionnaire.status",
        ),
        (
            json!({ "resourceType": "Questionnaire", "status": "published", "title": "T" }),
            "Questionnaire.status",
        ),
        (
            json!({ "resourceType": "Questionnaire", "status": "draft" }),
            "Questionnaire.title",
        ),
        (
            json!({ "resourceType": "Questionnaire", "status": "draft", "title": "T",
                 "publisher": "X" }),
            "Questionnaire.publisher",
        ),
        (
            json!({ "resourceType": "Questionnaire", "status": "draft", "title": "T", "item": [] }),
            "Questionnaire.item",
        ),
        (
            q(json!({ "linkId": "a", "type": "string",
                   "code": [{ "system": "http://loinc.org", "code": "8480-6" }] })),
            "Questionnaire.item[0].code",
        ),
        (
            q(json!({ "linkId": "a", "type": "number" })),
            "Questionnaire.item[0].type",
        ),
        (
            q(json!({ "linkId": "a", "type": "string", "_text": { "extension": [] } })),
            "Questionnaire.item[0]._text",
        ),
        (
            q(json!({ "linkId": "a", "type": "string", "text": "" })),
            "Questionnaire.item[0].text",
        ),
        (
            q(json!({ "linkId": "a", "type": "integer", "extension": [
            { "url": "http://example.org/x", "valueString": "y" }] })),
            "Questionnaire.item[0].extension[0].url",
        ),
        (
            q(json!({ "linkId": "a", "type": "integer", "extension": [
            { "url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueString": "1" }] })),
            "Questionnaire.item[0].extension[0].valueString",
        ),
        (
            q(json!({ "linkId": "a", "type": "reference", "initial": [
            { "valueReference": { "reference": "Patient/1" } }] })),
            "Questionnaire.item[0].initial[0].valueReference",
        ),
        (
            q(
                json!({ "linkId": "a", "type": "integer", "initial": [{ "valueInteger": 3000000000u64 }] }),
            ),
            "Questionnaire.item[0].initial[0].valueInteger",
        ),
        (
            q(json!({ "linkId": "a", "type": "date", "initial": [{ "valueDate": "2020-13-01" }] })),
            "Questionnaire.item[0].initial[0].valueDate",
        ),
        (
            q(json!({ "linkId": "a", "type": "string", "enableWhen": [
            { "question": "a", "operator": "~", "answerBoolean": true }] })),
            "Questionnaire.item[0].enableWhen[0].operator",
        ),
        (
            q(json!({ "linkId": "a", "type": "string", "modifierExtension": [] })),
            "Questionnaire.item[0].modifierExtension",
        ),
    ];
    for (body, path) in cases {
        let (status, r) = import(&stack, Some((Role::TenantAdmin, &t)), &body).await;
        assert_eq!(status, 422, "{body} -> {r}");
        assert_eq!(r["error"]["code"], "fhir_unsupported", "{r}");
        assert_eq!(r["error"]["details"]["path"], path, "{r}");
    }
    // Structure rules of the template itself.
    let (status, r) = import(
        &stack,
        Some((Role::TenantAdmin, &t)),
        &q(json!({ "linkId": "g", "type": "group" })),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(r["error"]["details"]["rule"], "que-1", "{r}");
    // Not JSON at all is a 400, a JSON non-object a 422.
    let r = stack
        .admin()
        .raw(
            Method::POST,
            "/api/templates/import/fhir",
            FHIR_JSON,
            b"{".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let (status, _) = import(&stack, None, &json!([1])).await;
    assert_eq!(status, 422);
}

async fn export_refuses_what_fhir_cannot_say(stack: Stack) {
    let t = tenant(&stack, "fhir-refuse", None).await;
    // FHIR strings have no Unicode spaces but ' ', tab, CR, LF (the R4 schema's pattern).
    let content =
        json!({ "items": [{ "link_id": "a", "type": "string", "text": "收缩压\u{3000}SBP" }] });
    let r = stack
        .admin()
        .post(
            "/api/templates",
            json!({ "tenant_id": t, "name": "X", "content": content }),
        )
        .await
        .expect(201);
    let r = stack
        .admin()
        .get(&format!("/api/templates/{}/fhir?draft=true", id(&r.json)))
        .await
        .expect(422);
    assert_eq!(
        r.json["error"]["details"]["path"],
        "Questionnaire.item[0].text"
    );
}

async fn owners_and_roles_of_fhir_endpoints(stack: Stack) {
    let t = tenant(&stack, "fhir-own", None).await;
    let other = tenant(&stack, "fhir-other", None).await;
    let body = minimal(json!([{ "linkId": "a", "type": "string" }]));
    let (status, r) = import(&stack, Some((Role::TenantViewer, &t)), &body).await;
    assert_eq!(status, 403, "{r}");
    let (status, r) = import(&stack, Some((Role::TenantAdmin, &t)), &body).await;
    assert_eq!(status, 201, "{r}");
    let tid = id(&r);
    stack
        .as_role(Role::TenantViewer, Some(&t))
        .get(&format!("/api/templates/{tid}/fhir?draft=true"))
        .await
        .expect(200);
    stack
        .as_role(Role::TenantAdmin, Some(&other))
        .get(&format!("/api/templates/{tid}/fhir?draft=true"))
        .await
        .expect(404);
    let r = stack
        .as_role(Role::TenantAdmin, Some(&t))
        .raw(
            Method::POST,
            &format!("/api/templates/import/fhir?tenant_id={other}"),
            FHIR_JSON,
            serde_json::to_vec(&body).expect("json"),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    // A platform admin without a tenant creates a platform template.
    let r = stack
        .admin()
        .raw(
            Method::POST,
            "/api/templates/import/fhir",
            FHIR_JSON,
            serde_json::to_vec(&body).expect("json"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json["tenant_id"].is_null());
    let audit = stack
        .admin()
        .get("/api/audit-logs?page_size=500")
        .await
        .expect(200);
    assert!(audit.text.contains("templates.import_fhir"));
}
