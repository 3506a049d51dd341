//! How long the largest recharge-card batch (100,000 cards, API §5.2) takes on SQLite:
//! computing the codes and hashes alone, then the whole `POST /api/recharge-cards/batch`
//! over HTTP (codes, hashes, inserts, the JSON answer), then the export of the batch.
//! Run: `cargo run --release -p medgate-control-plane --example card_batch_timing`

use std::time::Instant;

use medgate_control_plane::billing::cards::{CardKeys, Seed};
use medgate_testkit::{Backend, Stack};
use serde_json::{json, Value};

const COUNT: u64 = 100_000;

#[tokio::main]
async fn main() {
    let stack = Stack::start(Backend::Sqlite).await;
    let keys = CardKeys::from_settings(stack.state.settings()).expect("keys");
    let seed = Seed::random();
    let started = Instant::now();
    let hashes: Vec<String> = (0..COUNT)
        .map(|i| keys.code_hash(keys.derive(&seed, i)))
        .collect();
    println!(
        "derive + hash {} codes: {:?}",
        hashes.len(),
        started.elapsed()
    );

    let client = reqwest::Client::new();
    let token = stack.token(medgate_control_plane::Role::PlatformAdmin, None);
    let started = Instant::now();
    let r = client
        .post(format!("{}/api/recharge-cards/batch", stack.base_url))
        .bearer_auth(&token)
        .json(&json!({ "count": COUNT, "face_value_minor": 100, "currency": "CNY" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.expect("json");
    println!(
        "POST /api/recharge-cards/batch, {COUNT} cards on SQLite: {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let r = client
        .post(format!("{}/api/recharge-cards/export", stack.base_url))
        .bearer_auth(&token)
        .json(&json!({ "batch_id": body["batch"]["id"] }))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    let csv = r.text().await.expect("csv");
    println!(
        "POST /api/recharge-cards/export: {:?} ({} lines)",
        started.elapsed(),
        csv.lines().count()
    );
}
