//! Helpers shared by the model, key, tenant-model and usage tests.
#![allow(dead_code)]

use medgate_config::Snapshot;
use medgate_control_plane::Role;
use medgate_testkit::Stack;
use serde_json::{json, Value};

/// A minimal valid model body.
pub fn model_body(name: &str) -> Value {
    json!({
        "name": name,
        "upstreams": [{ "url": "https://llm.example.com/v1", "weight": 1 }]
    })
}

/// Creates a model from `body` as platform admin; returns its JSON.
pub async fn create_model_with(stack: &Stack, body: Value) -> Value {
    let r = stack.admin().post("/api/models", body).await;
    assert_eq!(r.status, 201, "create model: {}", r.text);
    r.json
}

/// Creates a minimal model; returns its id.
pub async fn create_model(stack: &Stack, name: &str) -> String {
    id(&create_model_with(stack, model_body(name)).await)
}

/// The current snapshot, as a data-plane node fetches it (validated).
pub async fn snapshot(stack: &Stack) -> Snapshot {
    let r = stack
        .as_role(Role::Node, None)
        .get("/api/internal/snapshot")
        .await
        .expect(200);
    let s: Snapshot = serde_json::from_value(r.json).expect("snapshot");
    s.validate().expect("snapshot valid");
    s
}

/// Creates an active tenant (optionally on a plan); returns its id.
pub async fn tenant(stack: &Stack, code: &str, plan: Option<&str>) -> String {
    let admin = stack.admin();
    let r = admin
        .post(
            "/api/tenants",
            json!({ "name": format!("Tenant {code}"), "code": code, "plan_id": plan }),
        )
        .await
        .expect(201);
    let id = id(&r.json);
    admin
        .post(&format!("/api/tenants/{id}/activate"), Value::Null)
        .await
        .expect(200);
    id
}

/// Creates a plan from a full body; returns its id.
pub async fn plan(stack: &Stack, body: Value) -> String {
    id(&stack
        .admin()
        .post("/api/tenant-plans", body)
        .await
        .expect(201)
        .json)
}

/// Creates an API key for `tenant` as its tenant admin; returns the 201 body.
pub async fn create_key(stack: &Stack, tenant: &str, name: &str) -> Value {
    stack
        .as_role(Role::TenantAdmin, Some(tenant))
        .post("/api/api-keys", json!({ "name": name }))
        .await
        .expect(201)
        .json
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The details of an audit entry (stored as JSON text).
pub fn audit_details(entry: &Value) -> Value {
    serde_json::from_str(entry["details"].as_str().expect("details")).expect("details JSON")
}
