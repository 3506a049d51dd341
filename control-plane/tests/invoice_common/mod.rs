//! Helpers shared by the invoice and overage tests (invoices.rs, invoice_money.rs,
//! overage.rs).
//!
//! Usage goes in through `POST /api/internal/usage`, like the data plane sends it. Its price
//! (`currency`, `cost_micros`) is then set directly in the store, so the invoice tests do not
//! depend on the rate tables: ingest prices with the model's rate when there is one; these
//! tests want exact, chosen costs (e.g. a line at exactly .5 of a minor unit).
#![allow(dead_code)]

use medgate_control_plane::Role;
use medgate_testkit::{Client, Reply, Stack};
use serde_json::{json, Value};

/// One usage event of `tokens` (input) at `at` (RFC 3339).
pub fn event(request_id: &str, tenant: &str, model: &str, tokens: u64, at: &str) -> Value {
    json!({
        "request_id": request_id,
        "tenant_id": tenant,
        "api_key_id": "key_0123456789ab",
        "key_prefix": "mg_0123456789ab",
        "requested_model": model,
        "model_id": format!("mdl_{}", model_key(model)),
        "model_name": model,
        "endpoint": "chat",
        "input_tokens": tokens,
        "output_tokens": 0,
        "status": 200,
        "latency_ms": 100,
        "ttft_ms": null,
        "streamed": false,
        "usage_reported": true,
        "occurred_at": at,
    })
}

pub fn node(stack: &Stack) -> Client {
    stack.as_role(Role::Node, None)
}

/// Ingests `events` as a data-plane node.
pub async fn ingest(stack: &Stack, events: Vec<Value>) {
    node(stack)
        .post("/api/internal/usage", json!({ "events": events }))
        .await
        .expect(200);
}

/// Ingests one event of 100 tokens of `model` and prices it at exactly `cost` micros (CNY).
pub async fn usage(stack: &Stack, id: &str, tenant: &str, model: &str, at: &str, cost: i64) {
    ingest(stack, vec![event(id, tenant, model, 100, at)]).await;
    price(stack, id, cost).await;
}

/// A model id derived from the name, stable across calls.
fn model_key(model: &str) -> String {
    model
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

/// Sets the price of a stored usage row.
pub async fn price(stack: &Stack, request_id: &str, cost_micros: i64) {
    sql(
        stack,
        "UPDATE usage_events SET currency = 'CNY', cost_micros = $1 WHERE request_id = $2",
        vec![json!(cost_micros), json!(request_id)],
    )
    .await
    .expect("price the usage row");
}

/// Runs one statement in its own transaction; binds strings and integers.
pub async fn sql(stack: &Stack, statement: &str, binds: Vec<Value>) -> Result<u64, sqlx::Error> {
    let mut tx = stack.state.store().begin().await?;
    let mut q = sqlx::query(statement);
    for b in binds {
        q = match b {
            Value::Number(n) => q.bind(n.as_i64().expect("i64")),
            Value::String(s) => q.bind(s),
            other => panic!("unsupported bind {other}"),
        };
    }
    let done = q.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Creates a tenant in UTC (optionally on a plan); returns its id.
pub async fn tenant(stack: &Stack, code: &str, plan: Option<&str>) -> String {
    let r = stack
        .admin()
        .post(
            "/api/tenants",
            json!({ "name": format!("Tenant {code}"), "code": code, "plan_id": plan,
                    "timezone": "UTC" }),
        )
        .await
        .expect(201);
    r.json["id"].as_str().expect("id").to_owned()
}

/// Creates a plan with a monthly fee and included credit (CNY); returns its id.
pub async fn plan(stack: &Stack, name: &str, fee: i64, credit: i64) -> String {
    let r = stack
        .admin()
        .post(
            "/api/tenant-plans",
            json!({ "name": name, "monthly_price_minor": fee, "included_credit_minor": credit,
                    "currency": "CNY" }),
        )
        .await
        .expect(201);
    r.json["id"].as_str().expect("id").to_owned()
}

/// Generates the invoice of `tenant` for the month `period`; returns the reply.
pub async fn generate(stack: &Stack, tenant: &str, period: &str) -> Reply {
    stack
        .admin()
        .post(
            "/api/billing/invoices/generate",
            json!({ "tenant_id": tenant, "period": period }),
        )
        .await
}

/// Moves an invoice to `status`; returns the reply.
pub async fn set_status(stack: &Stack, id: &str, status: &str) -> Reply {
    stack
        .admin()
        .put(
            &format!("/api/billing/invoices/{id}/status"),
            json!({ "status": status }),
        )
        .await
}

/// The invoice as JSON (admin).
pub async fn invoice(stack: &Stack, id: &str) -> Value {
    stack
        .admin()
        .get(&format!("/api/billing/invoices/{id}"))
        .await
        .expect(200)
        .json
}

/// The frozen part of an invoice: everything but status, its timestamps and notes.
pub fn content(invoice: &Value) -> Value {
    let mut v = invoice.clone();
    let o = v.as_object_mut().expect("object");
    for k in [
        "status",
        "paid_at",
        "voided_at",
        "uncollectible_at",
        "notes",
        "updated_at",
    ] {
        o.remove(k);
    }
    v
}

/// Asserts the integer identities of an invoice's totals (I5) and returns the total.
pub fn check_totals(invoice: &Value) -> i64 {
    let int = |k: &str| invoice[k].as_i64().expect(k);
    let lines = invoice["lines"].as_array().expect("lines");
    let sum = |pred: &dyn Fn(&Value) -> bool| -> i64 {
        lines
            .iter()
            .filter(|l| pred(l))
            .map(|l| l["amount_minor"].as_i64().expect("amount"))
            .sum()
    };
    let subtotal = sum(&|l| l["kind"] != "credit");
    let credit_lines = sum(&|l| l["kind"] == "credit");
    assert_eq!(
        int("subtotal_minor"),
        subtotal,
        "subtotal = Σ non-credit lines"
    );
    assert_eq!(
        -credit_lines,
        int("credits_minor"),
        "credit line mirrors credits"
    );
    assert_eq!(
        int("total_minor"),
        int("subtotal_minor") - int("credits_minor") + int("tax_minor"),
        "total = Σ lines - credits + tax"
    );
    int("total_minor")
}

/// A fresh draft of `t` for month index `i` (2020-01 + i).
pub async fn draft(stack: &Stack, t: &str, i: u32) -> String {
    let period = format!("{}-{:02}", 2020 + i / 12, i % 12 + 1);
    let r = generate(stack, t, &period).await.expect(201);
    r.json["id"].as_str().expect("id").to_owned()
}
