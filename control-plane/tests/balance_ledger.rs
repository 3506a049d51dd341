//! The balance API (API §5.3, §5.4; billing-medical.md §6.2 B2-B5, B11): concurrent debits
//! within the overdraft, idempotent adjustments, the append-only ledger, the books always
//! balancing, low-balance notifications, tenant isolation and the data plane's balance feed.

mod pricing_common;

use std::time::{Duration, Instant};

use medgate_control_plane::billing::notify;
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use pricing_common::{
    adjust, balance, credit, drift, event, ingest, int, model, rate, scalar, set_overdraft, tenant,
};
use serde_json::{json, Value};

both_backends!(
    b2_concurrent_debits_stop_at_the_overdraft,
    b3_randomized_operations_keep_the_books_balanced,
    b4_adjust_is_idempotent_by_key,
    b5_ledger_rows_cannot_be_changed_or_deleted,
    b11_one_notification_per_downward_crossing,
    transactions_list_ledger_entries_and_usage_debits,
    balances_are_tenant_scoped,
    feed_reports_changes_after_the_cursor_and_long_polls,
);

async fn debit_race(stack: &Stack, t: &str, n: usize) -> (usize, usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let stack_url = stack.base_url.clone();
            let token = stack.token(Role::PlatformAdmin, None);
            let body = json!({ "tenant_id": t, "amount_minor": -10, "reason": "race" });
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{stack_url}/api/balance/adjust"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", format!("race-{i}"))
                    .json(&body)
                    .send()
                    .await
                    .expect("sent")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            201 => ok += 1,
            409 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, refused)
}

async fn ledger_sum(stack: &Stack, t: &str) -> i64 {
    scalar(
        stack,
        &format!(
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM ledger_entries \
             WHERE tenant_id = '{t}'"
        ),
    )
    .await
}

async fn b2_concurrent_debits_stop_at_the_overdraft(stack: Stack) {
    for (code, overdraft, wins, end) in [("b2a", 0, 50, 0), ("b2b", 100, 60, -100)] {
        let t = tenant(&stack, code, None).await;
        credit(&stack, &t, 500, "seed").await;
        set_overdraft(&stack, &t, Some(overdraft)).await;
        let (ok, refused) = debit_race(&stack, &t, 100).await;
        assert_eq!((ok, refused), (wins, 100 - wins), "overdraft {overdraft}");
        let b = balance(&stack, &t).await;
        assert_eq!(b["balance_minor"], end);
        assert_eq!(b["spendable_minor"], 0);
        assert_eq!(ledger_sum(&stack, &t).await, end);
    }
    let t = tenant(&stack, "b2c", None).await;
    set_overdraft(&stack, &t, Some(0)).await;
    let (status, body, _) = adjust(
        &stack,
        Some("lonely"),
        json!({ "tenant_id": t, "amount_minor": -1, "reason": "r" }),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("insufficient_balance"))
    );
    // Forced: applied below the limit.
    let (status, _, _) = adjust(
        &stack,
        Some("forced"),
        json!({ "tenant_id": t, "amount_minor": -1, "reason": "r", "force": true }),
    )
    .await;
    assert_eq!(status, 201);
    assert!(drift(&stack).await.is_empty());
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

async fn b3_randomized_operations_keep_the_books_balanced(stack: Stack) {
    let m = model(&stack, "gpt-b3").await;
    rate(&stack, &m, 123_457, 654_321, 777, "2030-01-01T00:00:00Z").await;
    let tenants = [
        tenant(&stack, "b3a", None).await,
        tenant(&stack, "b3b", None).await,
        tenant(&stack, "b3c", None).await,
    ];
    for seed in [1u64, 2, 3] {
        let mut rng = Lcg(seed);
        for step in 0..60 {
            let ti = usize::try_from(rng.next(3)).expect("index");
            let t = &tenants[ti];
            let amount = i64::try_from(rng.next(500)).expect("amount") + 1;
            let key = format!("k-{seed}-{}", rng.next(40));
            match rng.next(5) {
                0 => credit(&stack, t, amount, &format!("top-{seed}-{step}")).await,
                1 => {
                    // A debit within the limit, or a replay of an earlier key: 201 or 409.
                    let body = json!({ "tenant_id": t, "amount_minor": -amount, "reason": "mix" });
                    let (status, _, _) = adjust(&stack, Some(&key), body).await;
                    assert!(matches!(status, 201 | 409), "{status}");
                }
                2 => set_overdraft(&stack, t, Some(amount)).await,
                _ => {
                    let n = rng.next(20) + 1;
                    let events: Vec<Value> = (0..n)
                        .map(|i| {
                            // Ids repeat (replays); an id always carries the same content.
                            let k = rng.next(400) * 100 + i;
                            event(
                                &format!("b3-{seed}-{ti}-{k}"),
                                t,
                                &m,
                                k * 37 % 20_000,
                                k * 11 % 4_000,
                                "2030-01-02T00:00:00Z",
                            )
                        })
                        .collect();
                    ingest(&stack, events).await.expect(200);
                }
            }
        }
        assert!(drift(&stack).await.is_empty(), "seed {seed}");
    }
    for t in &tenants {
        let b = balance(&stack, t).await;
        let debits = scalar(
            &stack,
            &format!(
                "SELECT CAST(COALESCE(SUM(debit_minor), 0) AS BIGINT) FROM usage_events \
                 WHERE tenant_id = '{t}'"
            ),
        )
        .await;
        assert_eq!(
            int(&b["balance_minor"]),
            ledger_sum(&stack, t).await - debits
        );
        let costs = scalar(
            &stack,
            &format!(
                "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM usage_events \
                 WHERE tenant_id = '{t}'"
            ),
        )
        .await;
        assert_eq!(debits * 1_000_000 + int(&b["carry_micros"]), costs);
    }
}

async fn b4_adjust_is_idempotent_by_key(stack: Stack) {
    let t = tenant(&stack, "b4", None).await;
    let body = json!({ "tenant_id": t, "amount_minor": 250, "reason": "goodwill" });
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let base = stack.base_url.clone();
            let token = stack.token(Role::PlatformAdmin, None);
            let body = body.clone();
            tokio::spawn(async move {
                let r = reqwest::Client::new()
                    .post(format!("{base}/api/balance/adjust"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", "same-key")
                    .json(&body)
                    .send()
                    .await
                    .expect("sent");
                let replayed = r.headers().get("idempotent-replayed").is_some();
                (r.status().as_u16(), replayed, r.text().await.expect("body"))
            })
        })
        .collect();
    let mut bodies = Vec::new();
    let mut replays = 0;
    for task in tasks {
        let (status, replayed, text) = task.await.expect("task");
        assert_eq!(status, 201, "{text}");
        replays += usize::from(replayed);
        bodies.push(text);
    }
    assert_eq!(replays, 19);
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every body is the same"
    );
    assert_eq!(balance(&stack, &t).await["balance_minor"], 250);
    assert_eq!(
        scalar(&stack, "SELECT COUNT(*) FROM ledger_entries").await,
        1
    );
    for other in [
        json!({ "tenant_id": t, "amount_minor": 251, "reason": "goodwill" }),
        json!({ "tenant_id": t, "amount_minor": 250, "reason": "other" }),
    ] {
        let (status, reply, _) = adjust(&stack, Some("same-key"), other).await;
        assert_eq!(status, 409, "{reply}");
    }
    let usd =
        json!({ "tenant_id": t, "amount_minor": 250, "currency": "USD", "reason": "goodwill" });
    let (status, reply, _) = adjust(&stack, Some("same-key"), usd).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (422, Some("currency_mismatch"))
    );
    let (status, reply, _) = adjust(&stack, None, body).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("idempotency_key_required"))
    );
    for bad in [
        json!({ "tenant_id": t, "amount_minor": 0, "reason": "r" }),
        json!({ "tenant_id": t, "amount_minor": 1, "reason": "" }),
        json!({ "tenant_id": t, "amount_minor": 1, "reason": "r", "currency": "usd" }),
        json!({ "tenant_id": t, "amount_minor": 1 }),
    ] {
        let (status, body, _) = adjust(&stack, Some("bad"), bad).await;
        assert_eq!(status, 422, "{body}");
    }
    let (status, _, _) = adjust(
        &stack,
        Some("k"),
        json!({ "tenant_id": "tnt_missing", "amount_minor": 1, "reason": "r" }),
    )
    .await;
    assert_eq!(status, 404);
    let audit = stack
        .admin()
        .get("/api/audit-logs?action=balance.adjust")
        .await
        .expect(200);
    assert_eq!(audit.json["total"], 20 + 2 + 1 + 1 + 4 + 1);
}

async fn b5_ledger_rows_cannot_be_changed_or_deleted(stack: Stack) {
    let t = tenant(&stack, "b5", None).await;
    credit(&stack, &t, 10, "seed").await;
    let store = stack.state.store();
    for sql in [
        "UPDATE ledger_entries SET amount_minor = 1000",
        "UPDATE ledger_entries SET reason = 'edited'",
        "DELETE FROM ledger_entries",
    ] {
        assert!(
            sqlx::query(sql).execute(store.reader()).await.is_err(),
            "{sql}"
        );
    }
    assert_eq!(ledger_sum(&stack, &t).await, 10);
}

async fn notifications(stack: &Stack, t: &str) -> usize {
    notify::list(stack.state.store(), "low_balance", Some(t), 100)
        .await
        .expect("list")
        .len()
}

async fn b11_one_notification_per_downward_crossing(stack: Stack) {
    let t = tenant(&stack, "b11", None).await;
    credit(&stack, &t, 150, "seed").await;
    let admin = stack.as_role(Role::TenantAdmin, Some(&t));
    let r = admin
        .post("/api/balance/threshold", json!({ "threshold_minor": 100 }))
        .await
        .expect(200);
    assert_eq!(r.json["threshold"]["armed"], true);
    for (i, (amount, expected)) in [
        (-60, 1),
        (-10, 1),
        (15, 1),
        (-5, 1),
        (40, 1),
        (-21, 1),
        (-10, 2),
    ]
    .into_iter()
    .enumerate()
    {
        credit(&stack, &t, amount, &format!("step-{i}")).await;
        assert_eq!(
            notifications(&stack, &t).await,
            expected,
            "after step {i} ({amount})"
        );
    }
    // Usage crossing it, 50 deliveries at once: one more notification.
    let m = model(&stack, "gpt-b11").await;
    rate(&stack, &m, 0, 0, 1_000_000, "2030-01-01T00:00:00Z").await;
    credit(&stack, &t, 10, "back-up").await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let c = pricing_common::node(&stack);
            let body = json!({ "events": [event(&format!("b11-{i}"), &t, &m, 1, 1, "2030-01-02T00:00:00Z")] });
            tokio::spawn(async move { c.post("/api/internal/usage", body).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect(200);
    }
    assert_eq!(notifications(&stack, &t).await, 3);
    let view = balance(&stack, &t).await;
    assert_eq!(view["balance_minor"], 59);
    assert_eq!(
        view["threshold"],
        json!({ "threshold_minor": 100, "below": true, "armed": false })
    );
    let got = admin.get("/api/balance/threshold").await.expect(200);
    assert_eq!(got.json["threshold"]["threshold_minor"], 100);
    // Viewers read; they do not write. Removing the threshold.
    let viewer = stack.as_role(Role::TenantViewer, Some(&t));
    viewer.get("/api/balance/threshold").await.expect(200);
    viewer
        .post("/api/balance/threshold", json!({ "threshold_minor": 1 }))
        .await
        .expect(403);
    admin
        .post("/api/balance/threshold", json!({}))
        .await
        .expect(422);
    admin
        .post("/api/balance/threshold", json!({ "threshold_minor": -1 }))
        .await
        .expect(422);
    let r = admin
        .post("/api/balance/threshold", json!({ "threshold_minor": null }))
        .await
        .expect(200);
    assert_eq!(r.json["threshold"], Value::Null);
    stack
        .admin()
        .post("/api/balance/threshold", json!({ "threshold_minor": 5 }))
        .await
        .expect(422);
}

async fn transactions_list_ledger_entries_and_usage_debits(stack: Stack) {
    let m = model(&stack, "gpt-tx").await;
    rate(&stack, &m, 1_000_000, 0, 0, "2030-01-01T00:00:00Z").await;
    let t = tenant(&stack, "tx", None).await;
    credit(&stack, &t, 100, "one").await;
    ingest(
        &stack,
        vec![event("tx-1", &t, &m, 3_000, 0, "2030-01-02T00:00:00Z")],
    )
    .await
    .expect(200);
    credit(&stack, &t, -7, "two").await;
    let page = stack
        .admin()
        .get(&format!("/api/balance/transactions?tenant_id={t}"))
        .await
        .expect(200)
        .json;
    assert_eq!(page["total"], 3);
    let kinds: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["adjustment", "usage", "adjustment"], "newest first");
    assert_eq!(page["items"][1]["amount_minor"], -3);
    assert_eq!(page["items"][1]["cost_micros"], 3_000_000);
    let sum: i64 = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| int(&i["amount_minor"]))
        .sum();
    assert_eq!(sum, int(&balance(&stack, &t).await["balance_minor"]));
    let usage = stack
        .admin()
        .get(&format!(
            "/api/balance/transactions?tenant_id={t}&kind=usage&page_size=1"
        ))
        .await
        .expect(200)
        .json;
    assert_eq!(
        (usage["total"].clone(), usage["items"][0]["id"].clone()),
        (json!(1), json!("tx-1"))
    );
    stack
        .admin()
        .get("/api/balance/transactions?kind=bogus")
        .await
        .expect(422);
    stack
        .admin()
        .get("/api/balance/transactions?from=nope")
        .await
        .expect(422);
    let future = stack
        .admin()
        .get("/api/balance/transactions?from=2999-01-01T00:00:00Z")
        .await
        .expect(200);
    assert_eq!(future.json["total"], 0);
}

async fn balances_are_tenant_scoped(stack: Stack) {
    let a = tenant(&stack, "sa", None).await;
    let b = tenant(&stack, "sb", None).await;
    credit(&stack, &a, 5, "a").await;
    credit(&stack, &b, 7, "b").await;
    let client = stack.as_role(Role::TenantAdmin, Some(&a));
    client
        .get(&format!("/api/tenants/{b}/balance"))
        .await
        .expect(404);
    assert_eq!(
        client
            .get(&format!("/api/tenants/{a}/balance"))
            .await
            .expect(200)
            .json["balance_minor"],
        5
    );
    client
        .get(&format!("/api/balance/transactions?tenant_id={b}"))
        .await
        .expect(404);
    let own = client
        .get("/api/balance/transactions")
        .await
        .expect(200)
        .json;
    assert_eq!(own["total"], 1);
    client
        .get(&format!("/api/balance/threshold?tenant_id={b}"))
        .await
        .expect(404);
    client
        .post(
            "/api/balance/threshold",
            json!({ "tenant_id": b, "threshold_minor": 1 }),
        )
        .await
        .expect(404);
    client
        .put(
            &format!("/api/tenants/{a}/balance/overdraft"),
            json!({ "overdraft_minor": 5 }),
        )
        .await
        .expect(403);
    let (status, _, _) = adjust(
        &stack,
        Some("x"),
        json!({ "tenant_id": a, "amount_minor": 1, "reason": "r" }),
    )
    .await;
    assert_eq!(status, 201);
    stack
        .as_role(Role::TenantAdmin, Some(&a))
        .post(
            "/api/balance/adjust",
            json!({ "tenant_id": a, "amount_minor": 1, "reason": "r" }),
        )
        .await
        .expect(403);
    stack
        .admin()
        .get("/api/tenants/tnt_missing/balance")
        .await
        .expect(404);
    let fresh = tenant(&stack, "fresh", None).await;
    let view = balance(&stack, &fresh).await;
    assert_eq!(
        (
            view["balance_minor"].clone(),
            view["spendable_minor"].clone()
        ),
        (json!(0), Value::Null)
    );
    stack
        .admin()
        .put(&format!("/api/tenants/{a}/balance/overdraft"), json!({}))
        .await
        .expect(422);
}

async fn feed(stack: &Stack, query: &str) -> Value {
    stack
        .as_role(Role::Node, None)
        .get(&format!("/api/internal/balances{query}"))
        .await
        .expect(200)
        .json
}

async fn feed_reports_changes_after_the_cursor_and_long_polls(stack: Stack) {
    let gated = tenant(&stack, "gated", None).await;
    let postpaid = tenant(&stack, "postpaid", None).await;
    credit(&stack, &gated, 50, "seed").await;
    credit(&stack, &postpaid, 50, "seed").await;
    set_overdraft(&stack, &gated, Some(10)).await;
    let full = feed(&stack, "?after=0").await;
    assert_eq!(
        full["funds"],
        json!([{ "tenant_id": gated, "spendable_minor": 60, "currency": "CNY" }])
    );
    let cursor = int(&full["cursor"]);
    assert!(cursor > 0);
    // A usage debit shows up after the cursor; a postpaid tenant's does not.
    let m = model(&stack, "gpt-feed").await;
    rate(&stack, &m, 0, 0, 4_000_000, "2030-01-01T00:00:00Z").await;
    ingest(
        &stack,
        vec![
            event("f-1", &gated, &m, 1, 1, "2030-01-02T00:00:00Z"),
            event("f-2", &postpaid, &m, 1, 1, "2030-01-02T00:00:00Z"),
        ],
    )
    .await
    .expect(200);
    let next = feed(&stack, &format!("?after={cursor}")).await;
    assert_eq!(
        next["funds"],
        json!([{ "tenant_id": gated, "spendable_minor": 56, "currency": "CNY" }])
    );
    let cursor = int(&next["cursor"]);
    // Nothing new: an empty answer with the same cursor after the wait.
    let started = Instant::now();
    let idle = feed(&stack, &format!("?after={cursor}&wait_secs=1")).await;
    assert_eq!(idle, json!({ "cursor": cursor, "funds": [] }));
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A long-poll wakes on a change.
    let node = stack.as_role(Role::Node, None);
    let path = format!("/api/internal/balances?after={cursor}&wait_secs=20");
    let waiting = tokio::spawn(async move { node.get(&path).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    credit(&stack, &gated, 100, "wake").await;
    let woke = waiting.await.expect("task").expect(200).json;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(woke["funds"][0]["spendable_minor"], 156);
    // Removing the limit un-gates the tenant once.
    let cursor = int(&woke["cursor"]);
    set_overdraft(&stack, &gated, None).await;
    let ungated = feed(&stack, &format!("?after={cursor}")).await;
    assert_eq!(
        ungated["funds"],
        json!([{ "tenant_id": gated, "spendable_minor": null, "currency": "CNY" }])
    );
    assert_eq!(feed(&stack, "?after=0").await["funds"], json!([]));
    // A cursor from elsewhere (beyond the sequence) gets the full state.
    set_overdraft(&stack, &postpaid, Some(0)).await;
    assert_eq!(
        feed(&stack, "?after=999999").await["funds"][0]["tenant_id"],
        postpaid.as_str()
    );
    stack
        .as_role(Role::Node, None)
        .get("/api/internal/balances?wait_secs=31")
        .await
        .expect(422);
    stack
        .as_role(Role::TenantAdmin, Some(&gated))
        .get("/api/internal/balances")
        .await
        .expect(403);
}
