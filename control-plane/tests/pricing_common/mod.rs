//! Helpers shared by the pricing, usage-report and balance tests.
#![allow(dead_code)]

use medgate_control_plane::billing::ledger;
use medgate_control_plane::Role;
use medgate_testkit::{Client, Reply, Stack};
use serde_json::{json, Value};

/// Creates a model; returns its id.
pub async fn model(stack: &Stack, name: &str) -> String {
    let r = stack
        .admin()
        .post(
            "/api/models",
            json!({ "name": name, "upstreams": [{ "url": "https://llm.example.com/v1", "weight": 1 }] }),
        )
        .await
        .expect(201);
    r.json["id"].as_str().expect("id").to_owned()
}

/// Creates an active tenant (timezone optional); returns its id.
pub async fn tenant(stack: &Stack, code: &str, timezone: Option<&str>) -> String {
    let admin = stack.admin();
    let mut body = json!({ "name": format!("Tenant {code}"), "code": code });
    if let Some(tz) = timezone {
        body["timezone"] = json!(tz);
    }
    let r = admin.post("/api/tenants", body).await.expect(201);
    let id = r.json["id"].as_str().expect("id").to_owned();
    admin
        .post(&format!("/api/tenants/{id}/activate"), Value::Null)
        .await
        .expect(200);
    id
}

/// Appends one rate version (prices in micros per 1k tokens).
pub async fn rate(
    stack: &Stack,
    model_id: &str,
    input: i64,
    output: i64,
    per_request: i64,
    from: &str,
) {
    stack
        .admin()
        .put(
            "/api/billing/rates",
            json!({ "rates": [{
                "model_id": model_id,
                "currency": "CNY",
                "input_per_1k_micros": input,
                "output_per_1k_micros": output,
                "per_request_micros": per_request,
                "effective_from": from,
            }] }),
        )
        .await
        .expect(200);
}

/// A usage event.
pub fn event(
    request_id: &str,
    tenant: &str,
    model: &str,
    input: u64,
    output: u64,
    at: &str,
) -> Value {
    json!({
        "request_id": request_id,
        "tenant_id": tenant,
        "requested_model": "m",
        "model_id": model,
        "model_name": format!("name-{model}"),
        "endpoint": "chat",
        "input_tokens": input,
        "output_tokens": output,
        "status": 200,
        "latency_ms": 10,
        "streamed": false,
        "usage_reported": true,
        "occurred_at": at,
    })
}

pub fn node(stack: &Stack) -> Client {
    stack.as_role(Role::Node, None)
}

/// Posts a batch as a data-plane node.
pub async fn ingest(stack: &Stack, events: Vec<Value>) -> Reply {
    node(stack)
        .post("/api/internal/usage", json!({ "events": events }))
        .await
}

/// `POST /api/balance/adjust` with an Idempotency-Key: (status, body, replayed header).
pub async fn adjust(stack: &Stack, key: Option<&str>, body: Value) -> (u16, Value, bool) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/balance/adjust", stack.base_url))
        .bearer_auth(stack.token(Role::PlatformAdmin, None))
        .json(&body);
    if let Some(k) = key {
        request = request.header("Idempotency-Key", k);
    }
    let r = request.send().await.expect("sent");
    let status = r.status().as_u16();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    let json = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, json, replayed)
}

/// A credit (or debit) by adjustment that must succeed.
pub async fn credit(stack: &Stack, tenant: &str, amount: i64, key: &str) {
    let (status, body, _) = adjust(
        stack,
        Some(key),
        json!({ "tenant_id": tenant, "amount_minor": amount, "reason": "test", "force": true }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

pub async fn set_overdraft(stack: &Stack, tenant: &str, overdraft: Option<i64>) {
    stack
        .admin()
        .put(
            &format!("/api/tenants/{tenant}/balance/overdraft"),
            json!({ "overdraft_minor": overdraft }),
        )
        .await
        .expect(200);
}

/// The balance view of a tenant.
pub async fn balance(stack: &Stack, tenant: &str) -> Value {
    stack
        .admin()
        .get(&format!("/api/tenants/{tenant}/balance"))
        .await
        .expect(200)
        .json
}

pub fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Tenants whose cached balance differs from SUM(ledger) - SUM(usage debits).
pub async fn drift(stack: &Stack) -> Vec<(String, i64, i64)> {
    let mut tx = stack.state.store().begin().await.expect("tx");
    ledger::drift(&mut tx).await.expect("drift")
}

/// One scalar from the database.
pub async fn scalar(stack: &Stack, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(stack.state.store().reader())
        .await
        .expect(sql)
}
