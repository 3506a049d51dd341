//! Usage-ingest throughput over HTTP (DESIGN.md §8: >= 20k events/s on SQLite with batching).
//!
//! Starts the control plane in-process on a fresh SQLite file, posts `BATCHES` batches of
//! `BATCH` events to `POST /api/internal/usage` with a node token, and prints events/s.
//! Run: `cargo run --release -p medgate-control-plane --example ingest_throughput`

use std::time::{Duration, Instant};

use medgate_config::{UsageBatch, UsageEvent};
use medgate_control_plane::Role;
use medgate_testkit::{Backend, Stack};

const BATCH: usize = 2_000;
const BATCHES: usize = 25;

fn event(i: usize) -> UsageEvent {
    UsageEvent {
        request_id: format!("bench-{i:08}"),
        tenant_id: "tnt_bench".into(),
        api_key_id: Some("key_bench".into()),
        key_prefix: Some("mg_000000000000".into()),
        requested_model: "mock-echo".into(),
        model_id: "mdl_bench".into(),
        model_name: "mock-echo".into(),
        endpoint: "chat".into(),
        input_tokens: 42,
        output_tokens: 17,
        status: 200,
        latency_ms: 3,
        ttft_ms: Some(1),
        streamed: false,
        usage_reported: true,
        occurred_at: "2026-11-25T12:00:00.000000Z".into(),
    }
}

#[tokio::main]
async fn main() {
    let stack = Stack::start(Backend::Sqlite).await;
    let token = stack
        .keys
        .issue("bench", Role::Node, None, Duration::from_secs(600))
        .expect("token");
    let client = reqwest::Client::new();
    let batches: Vec<UsageBatch> = (0..BATCHES)
        .map(|b| UsageBatch {
            events: (b * BATCH..(b + 1) * BATCH).map(event).collect(),
        })
        .collect();
    let started = Instant::now();
    for batch in &batches {
        let r = client
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
        "ingested {n} events in {:.3} s: {:.0} events/s (SQLite, batches of {BATCH}, sequential)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
