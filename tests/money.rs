//! Money end to end (issue 5): a tenant on a prepaid balance sends inference traffic through
//! the proxy; the balance falls by exactly the priced usage, the proxy answers 402 once it is
//! spent (overshooting by at most one request's cost), and redeeming a recharge card restores
//! service.

mod world;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use world::{call, infer, world, World};

async fn admin(w: &World, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let (status, value) = call(method, &format!("{}{path}", w.api_url), &w.admin, body).await;
    assert!(status < 300, "{path}: {status} {value}");
    value
}

async fn balance(w: &World) -> Value {
    admin(
        w,
        reqwest::Method::GET,
        &format!("/api/tenants/{}/balance", w.tenant),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prepaid_tenant_pays_exactly_its_usage_is_stopped_at_zero_and_restored_by_a_card() {
    let w = world().await;
    // 1 fen per 1k input tokens, 2 per 1k output, 0.5 fen per request.
    admin(
        &w,
        reqwest::Method::PUT,
        "/api/billing/rates",
        Some(
            json!({ "rates": [{ "model_id": w.model_id, "currency": "CNY",
            "input_per_1k_micros": 1_000_000, "output_per_1k_micros": 2_000_000,
            "per_request_micros": 500_000 }] }),
        ),
    )
    .await;
    admin(
        &w,
        reqwest::Method::PUT,
        &format!("/api/tenants/{}/balance/overdraft", w.tenant),
        Some(json!({ "overdraft_minor": 0 })),
    )
    .await;
    let adjusted = reqwest::Client::new()
        .post(format!("{}/api/balance/adjust", w.api_url))
        .bearer_auth(&w.admin)
        .header("Idempotency-Key", "fund-1")
        .json(
            &json!({ "tenant_id": w.tenant, "amount_minor": 5, "currency": "CNY",
            "reason": "test funds" }),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(adjusted.status().as_u16(), 201);

    // The proxy learns the new funds from the balance feed (a long-poll woken within ~100 ms
    // of the change): until then the tenant is gated at 0 and refused.
    let known = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, body) = infer(&w).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 402, "unexpected answer: {body}");
        assert!(Instant::now() < known, "the proxy never saw the funds");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Spend it: about 0.5 fen a request, so about ten requests pass before the 402.
    let mut served = 1;
    let refusal = loop {
        let (status, body) = infer(&w).await;
        match status {
            200 => served += 1,
            402 => break body,
            other => panic!("unexpected {other}: {body}"),
        }
        assert!(served < 100, "never refused");
        // Let each usage event reach the control plane, as steady traffic would.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(served >= 5, "only {served} requests were served");
    assert_eq!(refusal["error"]["code"], "insufficient_balance");
    assert_eq!(refusal["error"]["type"], "insufficient_quota");

    // Every figure traces to the usage rows: 5 fen minus the debits is the balance, and the
    // debits plus the carry are exactly the priced cost.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (b, usage) = loop {
        let usage = admin(
            &w,
            reqwest::Method::GET,
            &format!("/api/billing/usage/{}", w.tenant),
            None,
        )
        .await;
        let b = balance(&w).await;
        if usage
            .to_string()
            .contains(&format!("\"requests\":{served}"))
            || Instant::now() > deadline
        {
            break (b, usage);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = usage.to_string();
    let sum = |field: &str| -> i64 {
        // The totals object of the tenant's usage report.
        usage["totals"]
            .as_array()
            .map(|t| t.iter().filter_map(|x| x[field].as_i64()).sum())
            .or_else(|| usage["totals"][field].as_i64())
            .unwrap_or_else(|| panic!("no {field} in {text}"))
    };
    let (cost, debits) = (sum("cost_micros"), sum("debit_minor"));
    let balance_minor = b["balance_minor"].as_i64().expect("balance");
    let carry = b["carry_micros"].as_i64().expect("carry");
    assert_eq!(5 - balance_minor, debits, "{b} {text}");
    assert_eq!(debits * 1_000_000 + carry, cost, "{b} {text}");
    // Overshoot is bounded by one request's cost (well under 2 fen here).
    assert!(balance_minor >= -1, "overshot to {balance_minor}");

    // A recharge card restores service.
    let card = admin(
        &w,
        reqwest::Method::POST,
        "/api/recharge-cards",
        Some(json!({ "face_value_minor": 1000, "currency": "CNY" })),
    )
    .await;
    let code = card["code"].as_str().expect("plaintext code").to_owned();
    admin(
        &w,
        reqwest::Method::POST,
        "/api/recharge",
        Some(json!({ "code": code, "tenant_id": w.tenant })),
    )
    .await;
    let redeemed = Instant::now();
    loop {
        let (status, body) = infer(&w).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 402, "{body}");
        assert!(
            redeemed.elapsed() < Duration::from_secs(5),
            "service never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "service restored {:?} after the redemption",
        redeemed.elapsed()
    );
}
