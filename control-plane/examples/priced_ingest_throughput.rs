//! Priced usage-ingest throughput over HTTP: like `ingest_throughput`, but every event has a
//! rate (so each batch is priced, its tenants' balances locked and debited, and their
//! low-balance thresholds checked). 10 tenants with a balance and a threshold.
//! Run: `cargo run --release -p medgate-control-plane --example priced_ingest_throughput`

use std::time::{Duration, Instant};

use medgate_control_plane::Role;
use medgate_testkit::{Backend, Stack};
use serde_json::{json, Value};

const BATCH: usize = 2_000;
const BATCHES: usize = 25;
const TENANTS: usize = 10;

#[tokio::main]
async fn main() {
    let stack = Stack::start(Backend::Sqlite).await;
    let admin = stack.admin();
    let model = admin
        .post(
            "/api/models",
            json!({ "name": "bench", "upstreams": [{ "url": "https://x.example/v1" }] }),
        )
        .await
        .expect(201)
        .json["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let rate = json!({ "rates": [{ "model_id": model, "input_per_1k_micros": 150_000,
        "output_per_1k_micros": 600_000, "per_request_micros": 1_000,
        "effective_from": "2030-01-01T00:00:00Z" }] });
    admin.put("/api/billing/rates", rate).await.expect(200);
    let http = reqwest::Client::new();
    let admin_token = stack.token(Role::PlatformAdmin, None);
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        let t = stack.create_active_tenant(&format!("bench{i}")).await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let r = http
            .post(format!("{}/api/balance/adjust", stack.base_url))
            .bearer_auth(&admin_token)
            .header("Idempotency-Key", format!("seed-{i}"))
            .json(&json!({ "tenant_id": t, "amount_minor": 1_000_000, "reason": "bench" }))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 201);
        admin
            .post(
                "/api/balance/threshold",
                json!({ "tenant_id": t, "threshold_minor": 500_000 }),
            )
            .await
            .expect(200);
        tenants.push(t);
    }
    let token = stack
        .keys
        .issue("bench", Role::Node, None, Duration::from_secs(600))
        .expect("token");
    let batches: Vec<Value> = (0..BATCHES)
        .map(|b| {
            let events: Vec<Value> = (b * BATCH..(b + 1) * BATCH)
                .map(|i| {
                    json!({ "request_id": format!("bench-{i:08}"), "tenant_id": tenants[i % TENANTS],
                        "requested_model": "bench", "model_id": model, "model_name": "bench",
                        "endpoint": "chat", "input_tokens": 42, "output_tokens": 17, "status": 200,
                        "latency_ms": 3, "streamed": false, "usage_reported": true,
                        "occurred_at": "2030-11-25T12:00:00.000000Z" })
                })
                .collect();
            json!({ "events": events })
        })
        .collect();
    let started = Instant::now();
    for batch in &batches {
        let r = http
            .post(format!("{}/api/internal/usage", stack.base_url))
            .bearer_auth(&token)
            .json(batch)
            .send()
            .await
            .expect("sent");
        assert!(
            r.status().is_success(),
            "{}",
            r.text().await.unwrap_or_default()
        );
    }
    let elapsed = started.elapsed();
    let n = BATCH * BATCHES;
    println!(
        "ingested {n} priced events in {:.3} s: {:.0} events/s (SQLite, batches of {BATCH}, \
         {TENANTS} tenants, sequential)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
