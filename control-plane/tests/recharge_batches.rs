//! Batch generation (API §5.2) on SQLite and PostgreSQL: idempotent by key, all or
//! nothing (B10), and the timed 100,000-card batch (ignored in the normal run).

mod cards_common;

use std::collections::HashSet;
use std::time::Instant;

use cards_common::{exec, rows};
use medgate_control_plane::billing::cards::batches::{self, BatchCreate};
use medgate_control_plane::billing::cards::{CardKeys, Code, Seed};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Backend, Stack};
use serde_json::{json, Value};

both_backends!(
    a_batch_is_created_once_per_idempotency_key,
    a_batch_that_fails_midway_leaves_nothing,
);

async fn a_batch_is_created_once_per_idempotency_key(stack: Stack) {
    let token = stack.token(Role::PlatformAdmin, None);
    let body = json!({ "name": "Spring promotion", "count": 10_000, "face_value_minor": 2000,
                       "currency": "CNY", "expires_at": "2099-06-30T00:00:00Z" });
    let post = |body: Value, key: Option<&str>| {
        let mut request = reqwest::Client::new()
            .post(format!("{}/api/recharge-cards/batch", stack.base_url))
            .bearer_auth(&token)
            .json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        async move {
            let r = request.send().await.expect("sent");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let started = Instant::now();
    let (status, first) = post(body.clone(), Some("spring-2026")).await;
    eprintln!(
        "batch of 10,000 cards on {:?}: {:?}",
        stack.backend,
        started.elapsed()
    );
    assert_eq!(status, 201, "{first}");
    let codes: Vec<&str> = first["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code"))
        .collect();
    assert_eq!(codes.len(), 10_000);
    assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 10_000);
    assert!(codes.iter().all(|c| Code::parse(c).is_ok()));
    let batch_id = first["batch"]["id"].as_str().expect("id").to_owned();
    assert_eq!(first["batch"]["count"], 10_000);
    assert_eq!(first["replayed"], false);

    // Retries: same batch, no codes, nothing new; the body field works like the header.
    let (status, again) = post(body.clone(), Some("spring-2026")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["batch"]["id"], batch_id.as_str());
    assert_eq!(again["replayed"], true);
    assert_eq!(again["codes"], json!([]));
    let mut with_field = body.clone();
    with_field["idempotency_key"] = json!("spring-2026");
    assert_eq!(post(with_field.clone(), None).await.0, 200);
    assert_eq!(post(with_field, Some("other")).await.0, 422);
    let mut changed = body.clone();
    changed["face_value_minor"] = json!(1);
    let (status, conflict) = post(changed, Some("spring-2026")).await;
    assert_eq!(
        (status, conflict["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    assert_eq!(rows(&stack, "card_batches").await, 1);
    assert_eq!(rows(&stack, "recharge_cards").await, 10_000);

    let detail = stack
        .admin()
        .get(&format!("/api/recharge-cards/batches/{batch_id}"))
        .await
        .expect(200);
    assert_eq!(
        detail.json["counts"],
        json!({ "active": 10_000, "disabled": 0, "redeemed": 0, "expired": 0, "total": 10_000 })
    );
    let list = stack
        .admin()
        .get("/api/recharge-cards/batches")
        .await
        .expect(200);
    assert_eq!(list.json["total"], 1);
    let page = stack
        .admin()
        .get(&format!(
            "/api/recharge-cards?batch_id={batch_id}&page=2&page_size=500&currency=CNY"
        ))
        .await
        .expect(200);
    assert_eq!(
        (
            page.json["total"].as_i64(),
            page.json["items"].as_array().map(Vec::len)
        ),
        (Some(10_000), Some(500))
    );
    assert_eq!(page.json["items"][0]["batch_index"], 500);

    for bad in [
        json!({ "count": 0, "face_value_minor": 1, "currency": "CNY" }),
        json!({ "count": 100_001, "face_value_minor": 1, "currency": "CNY" }),
        json!({ "count": 1, "face_value_minor": -5, "currency": "CNY" }),
        json!({ "count": 1, "face_value_minor": 1, "currency": "CNY", "name": "" }),
        json!({ "count": -1, "face_value_minor": 1, "currency": "CNY" }),
    ] {
        let (status, _) = post(bad.clone(), None).await;
        assert_eq!(status, 422, "{bad}");
    }
    // Concurrent first requests with one key: one batch.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = post(
            json!({ "count": 50, "face_value_minor": 5, "currency": "CNY" }),
            Some("race"),
        );
        tasks.spawn(request);
    }
    let mut created = 0;
    while let Some(done) = tasks.join_next().await {
        let (status, _) = done.expect("task");
        assert!(status == 201 || status == 200, "{status}");
        created += usize::from(status == 201);
    }
    assert_eq!(created, 1);
    assert_eq!(rows(&stack, "card_batches").await, 2);
    assert_eq!(rows(&stack, "recharge_cards").await, 10_050);
}

/// B10: a code-hash collision injected at card 777 of 1,000 fails the whole batch.
async fn a_batch_that_fails_midway_leaves_nothing(stack: Stack) {
    let store = stack.state.store();
    let keys = CardKeys::from_settings(stack.state.settings()).expect("keys");
    let seed = Seed::from_bytes([9; 32]);
    let clash = keys.derive(&seed, 777);
    exec(
        &stack,
        "INSERT INTO recharge_cards (id, code_hash, code_hint, face_value_minor, currency, \
         status, created_at, updated_at) VALUES ('rcc_clash', $1, $2, 1, 'CNY', 'active', \
         '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')",
        &[&keys.code_hash(clash), &clash.hint()],
    )
    .await;
    let input = || {
        serde_json::from_value::<BatchCreate>(json!({
            "count": 1000, "face_value_minor": 300, "currency": "CNY", "idempotency_key": "b10"
        }))
        .expect("body")
        .check(None)
        .expect("valid")
    };
    let err = batches::create(store, &keys, input(), "test", seed.clone())
        .await
        .expect_err("collision");
    assert_eq!(err.status(), 409, "{err}");
    assert_eq!(rows(&stack, "card_batches").await, 0);
    assert_eq!(
        rows(&stack, "recharge_cards").await,
        1,
        "only the injected card"
    );

    // Without the clash the same request (same key) succeeds, then replays.
    exec(
        &stack,
        "DELETE FROM recharge_cards WHERE id = $1",
        &["rcc_clash"],
    )
    .await;
    let made = batches::create(store, &keys, input(), "test", seed.clone())
        .await
        .expect("batch");
    assert!(!made.replayed);
    assert_eq!(made.codes[777], clash.display());
    let again = batches::create(store, &keys, input(), "test", Seed::random())
        .await
        .expect("replay");
    assert!(again.replayed && again.codes.is_empty());
    assert_eq!(again.batch.id, made.batch.id);
    assert_eq!(rows(&stack, "card_batches").await, 1);
    assert_eq!(rows(&stack, "recharge_cards").await, 1000);
}

/// The largest batch (100,000 cards), timed end to end over HTTP on SQLite and PostgreSQL.
/// Ignored in the normal run; run it with
/// `cargo test -p medgate-control-plane --test recharge_cards -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow in debug builds: generates 100,000 cards per backend"]
async fn batch_of_100k_cards_timed() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(stack) = Stack::start_backend_with(backend, "batch_of_100k", |_| {}).await else {
            continue;
        };
        let started = Instant::now();
        let r = stack
            .admin()
            .post(
                "/api/recharge-cards/batch",
                json!({ "count": 100_000, "face_value_minor": 100, "currency": "CNY" }),
            )
            .await
            .expect(201);
        let elapsed = started.elapsed();
        assert_eq!(r.json["codes"].as_array().map(Vec::len), Some(100_000));
        assert_eq!(rows(&stack, "recharge_cards").await, 100_000);
        let started = Instant::now();
        let batch_id = r.json["batch"]["id"].as_str().expect("id");
        let csv = stack
            .admin()
            .post(
                "/api/recharge-cards/export",
                json!({ "batch_id": batch_id }),
            )
            .await
            .expect(200);
        eprintln!(
            "100,000 cards on {backend:?}: generated in {elapsed:?}, exported in {:?} ({} bytes)",
            started.elapsed(),
            csv.text.len()
        );
    }
}
