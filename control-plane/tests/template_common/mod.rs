//! Helpers of the template section, lifecycle and platform-template tests.
#![allow(dead_code)]

use medgate_testkit::{Client, Stack};
use serde_json::{json, Value};

/// A two-section draft: vitals (sbp, dbp) and history (smoker), then a top-level note.
pub fn two_sections() -> Value {
    json!({ "items": [
        { "link_id": "vitals", "type": "group", "text": "Vital signs", "items": [
            { "link_id": "sbp", "type": "integer",
              "limits": { "min_value": { "integer": 10 }, "max_value": { "integer": 250 }, "unit": "mm[Hg]" } },
            { "link_id": "dbp", "type": "integer",
              "limits": { "min_value": { "integer": 30 }, "max_value": { "integer": 200 }, "unit": "mm[Hg]" } }
        ]},
        { "link_id": "history", "type": "group", "text": "History", "items": [
            { "link_id": "smoker", "type": "boolean" }
        ]},
        { "link_id": "note", "type": "text" }
    ]})
}

/// A group with one string question.
pub fn section(link_id: &str) -> Value {
    json!({ "link_id": link_id, "type": "group", "text": link_id,
            "items": [{ "link_id": format!("{link_id}.q"), "type": "string" }] })
}

/// Creates a template with `content` (owned by `tenant`, or a platform template) as the
/// platform admin; returns its id.
pub async fn create(stack: &Stack, tenant: Option<&str>, name: &str, content: Value) -> String {
    let r = stack
        .admin()
        .post(
            "/api/templates",
            json!({ "tenant_id": tenant, "name": name, "content": content }),
        )
        .await
        .expect(201);
    r.json["id"].as_str().expect("id").to_owned()
}

/// Publishes the draft; returns the version JSON.
pub async fn publish(client: &Client, tid: &str) -> Value {
    client
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(201)
        .json
}

/// Starts a new draft from the latest published content.
pub async fn new_draft(client: &Client, tid: &str) {
    client
        .post(&format!("/api/templates/{tid}/versions"), Value::Null)
        .await
        .expect(201);
}

/// The top-level linkIds of a template's draft.
pub fn top_level(template: &Value) -> Vec<String> {
    template["draft"]["items"]
        .as_array()
        .expect("draft items")
        .iter()
        .map(|i| i["link_id"].as_str().expect("link_id").to_owned())
        .collect()
}

/// Audit entries of one action, newest first.
pub async fn audit(stack: &Stack, action: &str) -> Vec<Value> {
    let r = stack
        .admin()
        .get(&format!("/api/audit-logs?action={action}&page_size=500"))
        .await
        .expect(200);
    r.json["items"].as_array().expect("items").clone()
}
