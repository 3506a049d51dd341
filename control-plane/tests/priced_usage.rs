//! Priced usage at ingest and usage reports (billing-medical.md §6.1 U1-U4), rates and the
//! billing-plan address of tenant plans (API §2.1, §2.2).

mod pricing_common;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use medgate_control_plane::billing::money::usage_cost_micros;
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use pricing_common::{balance, credit, drift, event, ingest, int, model, rate, scalar, tenant};
use serde_json::{json, Value};
use sqlx::Row;

both_backends!(
    u1_concurrent_replays_are_priced_and_debited_once,
    u2_a_replay_with_other_content_is_refused_and_changes_nothing,
    u3_reports_are_sums_of_rows_in_the_tenant_timezone,
    u4_a_new_rate_never_reprices_earlier_usage,
    tiny_costs_are_carried_exactly,
    rates_are_validated_versioned_and_audited,
    billing_plans_are_the_tenant_plans,
    reports_are_tenant_scoped,
);

async fn report(stack: &Stack, path: &str) -> Value {
    stack.admin().get(path).await.expect(200).json
}

async fn u1_concurrent_replays_are_priced_and_debited_once(stack: Stack) {
    let m = model(&stack, "gpt-u1").await;
    // 10k input at 0.15 fen/1k + 5k output at 0.6 fen/1k + 0.5 fen = 5 fen.
    rate(
        &stack,
        &m,
        150_000,
        600_000,
        500_000,
        "2030-01-01T00:00:00Z",
    )
    .await;
    let t = tenant(&stack, "u1", None).await;
    credit(&stack, &t, 1_000, "seed").await;
    let e = event("req-u1", &t, &m, 10_000, 5_000, "2030-01-02T00:00:00Z");
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let c = pricing_common::node(&stack);
            let body = json!({ "events": [e.clone()] });
            tokio::spawn(async move { c.post("/api/internal/usage", body).await })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        let r = task.await.expect("task").expect(200);
        inserted += int(&r.json["inserted"]);
    }
    assert_eq!(inserted, 1);
    assert_eq!(scalar(&stack, "SELECT COUNT(*) FROM usage_events").await, 1);
    let b = balance(&stack, &t).await;
    assert_eq!(b["balance_minor"], 995);
    assert_eq!(b["carry_micros"], 0);
    let totals = report(&stack, &format!("/api/billing/usage/{t}")).await;
    assert_eq!(totals["totals"][0]["requests"], 1);
    assert_eq!(totals["totals"][0]["cost_micros"], 5_000_000);
    assert_eq!(totals["totals"][0]["debit_minor"], 5);
    let daily = report(&stack, &format!("/api/billing/usage/{t}/daily")).await;
    assert_eq!(daily["days"].as_array().expect("days").len(), 1);
    assert_eq!(daily["days"][0]["requests"], 1);
    let models = report(&stack, &format!("/api/billing/usage/{t}/models")).await;
    assert_eq!(models["models"][0]["requests"], 1);
    assert_eq!(models["models"][0]["debit_minor"], 5);
    assert!(drift(&stack).await.is_empty());
}

async fn u2_a_replay_with_other_content_is_refused_and_changes_nothing(stack: Stack) {
    let m = model(&stack, "gpt-u2").await;
    let other = model(&stack, "gpt-u2b").await;
    rate(&stack, &m, 1_000_000, 1_000_000, 0, "2030-01-01T00:00:00Z").await;
    let t = tenant(&stack, "u2", None).await;
    let at = "2030-01-02T00:00:00Z";
    let original = event("req-u2", &t, &m, 1_000, 1_000, at);
    assert_eq!(
        ingest(&stack, vec![original.clone()])
            .await
            .expect(200)
            .json["inserted"],
        1
    );
    let before = balance(&stack, &t).await;
    assert_eq!(before["balance_minor"], -2);
    let mut more_tokens = original.clone();
    more_tokens["output_tokens"] = json!(9_000);
    let mut other_model = original.clone();
    other_model["model_id"] = json!(other);
    let fresh = event("req-u2-new", &t, &m, 1_000, 0, at);
    for changed in [more_tokens.clone(), other_model] {
        let r = ingest(&stack, vec![fresh.clone(), changed])
            .await
            .expect(422);
        assert_eq!(r.error_code(), "usage_conflict");
        assert_eq!(r.json["error"]["details"]["request_ids"], json!(["req-u2"]));
    }
    // Within one batch too.
    let r = ingest(&stack, vec![original.clone(), more_tokens])
        .await
        .expect(422);
    assert_eq!(r.error_code(), "usage_conflict");
    assert_eq!(scalar(&stack, "SELECT COUNT(*) FROM usage_events").await, 1);
    assert_eq!(
        scalar(
            &stack,
            "SELECT cost_micros FROM usage_events WHERE request_id = 'req-u2'"
        )
        .await,
        2_000_000
    );
    assert_eq!(balance(&stack, &t).await, before);
    // An identical replay is always fine.
    let r = ingest(&stack, vec![original]).await.expect(200);
    assert_eq!(r.json, json!({ "inserted": 0, "duplicates": 1 }));
    assert_eq!(balance(&stack, &t).await, before);
}

/// A small deterministic generator (no seed files, same cases on both backends).
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

async fn u3_reports_are_sums_of_rows_in_the_tenant_timezone(stack: Stack) {
    let m1 = model(&stack, "gpt-u3a").await;
    let m2 = model(&stack, "gpt-u3b").await;
    rate(
        &stack,
        &m1,
        150_000,
        600_000,
        10_000,
        "2030-01-01T00:00:00Z",
    )
    .await;
    rate(&stack, &m2, 333_333, 777_777, 1, "2030-01-01T00:00:00Z").await;
    // New York changes to daylight time on 2030-03-10; Kolkata is UTC+05:30.
    let tenants = [
        (
            tenant(&stack, "u3ny", Some("America/New_York")).await,
            "America/New_York",
        ),
        (
            tenant(&stack, "u3in", Some("Asia/Kolkata")).await,
            "Asia/Kolkata",
        ),
    ];
    let start: DateTime<Utc> = "2030-03-07T00:00:00Z".parse().expect("time");
    let mut rng = Lcg(7);
    let mut events = Vec::new();
    for i in 0..400 {
        let (t, _) = &tenants[usize::try_from(rng.next(2)).expect("index")];
        let m = if rng.next(3) == 0 { &m2 } else { &m1 };
        let at = start + Duration::seconds(i64::try_from(rng.next(6 * 86_400)).expect("secs"));
        events.push(event(
            &format!("u3-{i:04}"),
            t,
            m,
            rng.next(5_000),
            rng.next(2_000),
            &at.to_rfc3339(),
        ));
    }
    for batch in events.chunks(97) {
        ingest(&stack, batch.to_vec()).await.expect(200);
    }
    let all = report(&stack, "/api/billing/usage").await;
    for (t, tz) in &tenants {
        let tz: Tz = tz.parse().expect("tz");
        let rows = sqlx::query(
            "SELECT occurred_at, input_tokens, output_tokens, cost_micros, debit_minor, model_id \
             FROM usage_events WHERE tenant_id = $1",
        )
        .bind(t.clone())
        .fetch_all(stack.state.store().reader())
        .await
        .expect("rows");
        let mut expected: std::collections::BTreeMap<String, [i64; 5]> = Default::default();
        let mut total = [0i64; 5];
        for row in &rows {
            let at: String = row.get("occurred_at");
            let (i, o): (i64, i64) = (row.get("input_tokens"), row.get("output_tokens"));
            let cost: i64 = row.get("cost_micros");
            let model_id: String = row.get("model_id");
            let (ri, ro, rr) = if model_id == m2 {
                (333_333, 777_777, 1)
            } else {
                (150_000, 600_000, 10_000)
            };
            let priced = usage_cost_micros(i as u64, o as u64, ri, ro, rr).expect("cost");
            assert_eq!(cost, priced, "each row is priced with its rate");
            let day = at
                .parse::<DateTime<Utc>>()
                .expect("stored time")
                .with_timezone(&tz)
                .format("%Y-%m-%d")
                .to_string();
            let figures = [1, i, o, cost, row.get::<i64, _>("debit_minor")];
            let entry = expected.entry(day).or_default();
            for k in 0..5 {
                entry[k] += figures[k];
                total[k] += figures[k];
            }
        }
        let daily = report(&stack, &format!("/api/billing/usage/{t}/daily")).await;
        let got: std::collections::BTreeMap<String, [i64; 5]> = daily["days"]
            .as_array()
            .expect("days")
            .iter()
            .map(|d| (d["date"].as_str().expect("date").to_owned(), figures(d)))
            .collect();
        assert_eq!(got, expected, "day buckets in {tz}");
        let models = report(&stack, &format!("/api/billing/usage/{t}/models")).await;
        let mut sum = [0i64; 5];
        for m in models["models"].as_array().expect("models") {
            let f = figures(m);
            for k in 0..5 {
                sum[k] += f[k];
            }
        }
        assert_eq!(sum, total, "per-model figures add up to the tenant total");
        let totals = report(&stack, &format!("/api/billing/usage/{t}")).await;
        assert_eq!(figures(&totals["totals"][0]), total);
        let row = all["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|r| r["tenant_id"] == t.as_str())
            .expect("tenant row");
        assert_eq!(figures(row), total);
        assert_eq!(int(&balance(&stack, t).await["balance_minor"]), -total[4]);
        // A window narrows every report the same way.
        let q = "?from=2030-03-09T00:00:00Z&to=2030-03-11T00:00:00Z";
        let window = report(&stack, &format!("/api/billing/usage/{t}{q}")).await;
        let window_models = report(&stack, &format!("/api/billing/usage/{t}/models{q}")).await;
        let summed: i64 = window_models["models"]
            .as_array()
            .expect("models")
            .iter()
            .map(|m| int(&m["cost_micros"]))
            .sum();
        assert_eq!(int(&window["totals"][0]["cost_micros"]), summed);
    }
    assert!(drift(&stack).await.is_empty());
}

fn figures(v: &Value) -> [i64; 5] {
    [
        int(&v["requests"]),
        int(&v["input_tokens"]),
        int(&v["output_tokens"]),
        int(&v["cost_micros"]),
        int(&v["debit_minor"]),
    ]
}

async fn row_price(stack: &Stack, request_id: &str) -> (String, i64) {
    let row = sqlx::query("SELECT rate_id, cost_micros FROM usage_events WHERE request_id = $1")
        .bind(request_id.to_owned())
        .fetch_one(stack.state.store().reader())
        .await
        .expect("row");
    (row.get("rate_id"), row.get("cost_micros"))
}

async fn u4_a_new_rate_never_reprices_earlier_usage(stack: Stack) {
    let m = model(&stack, "gpt-u4").await;
    rate(&stack, &m, 1_000_000, 0, 0, "2030-01-01T00:00:00Z").await;
    let t = tenant(&stack, "u4", None).await;
    ingest(
        &stack,
        vec![event("jan-1", &t, &m, 2_000, 0, "2030-01-15T00:00:00Z")],
    )
    .await
    .expect(200);
    let (v1, cost) = row_price(&stack, "jan-1").await;
    assert_eq!(cost, 2_000_000);
    rate(&stack, &m, 3_000_000, 0, 0, "2030-02-01T00:00:00Z").await;
    ingest(
        &stack,
        vec![
            event("jan-2", &t, &m, 2_000, 0, "2030-01-31T23:59:59.999999Z"),
            event("feb-1", &t, &m, 2_000, 0, "2030-02-01T00:00:00Z"),
        ],
    )
    .await
    .expect(200);
    assert_eq!(row_price(&stack, "jan-1").await, (v1.clone(), 2_000_000));
    assert_eq!(row_price(&stack, "jan-2").await, (v1.clone(), 2_000_000));
    let (v2, cost) = row_price(&stack, "feb-1").await;
    assert_ne!(v2, v1);
    assert_eq!(cost, 6_000_000);
    assert_eq!(balance(&stack, &t).await["balance_minor"], -10);
    // History and time travel.
    let history = report(&stack, &format!("/api/billing/rates?model_id={m}")).await;
    assert_eq!(history["total"], 2);
    let jan = report(&stack, "/api/billing/rates?at=2030-01-20T00:00:00Z").await;
    assert_eq!(jan["items"][0]["id"], v1.as_str());
    let mar = report(&stack, "/api/billing/rates?at=2030-03-01T00:00:00Z").await;
    assert_eq!(mar["total"], 1);
    assert_eq!(mar["items"][0]["id"], v2.as_str());
    // Unpriced models cost nothing and debit nothing.
    ingest(
        &stack,
        vec![event(
            "free",
            &t,
            "mdl_unpriced",
            9_999,
            9_999,
            "2030-03-01T00:00:00Z",
        )],
    )
    .await
    .expect(200);
    assert_eq!(
        scalar(
            &stack,
            "SELECT cost_micros FROM usage_events WHERE request_id = 'free'"
        )
        .await,
        0
    );
    assert_eq!(balance(&stack, &t).await["balance_minor"], -10);
}

async fn tiny_costs_are_carried_exactly(stack: Stack) {
    let m = model(&stack, "gpt-tiny").await;
    rate(&stack, &m, 0, 0, 12_345, "2030-01-01T00:00:00Z").await;
    let t = tenant(&stack, "tiny", None).await;
    let events: Vec<Value> = (0..500)
        .map(|i| {
            event(
                &format!("tiny-{i:04}"),
                &t,
                &m,
                1,
                1,
                "2030-01-02T00:00:00Z",
            )
        })
        .collect();
    for batch in events.chunks(70) {
        ingest(&stack, batch.to_vec()).await.expect(200);
        // Replays in between change nothing.
        ingest(&stack, events[..10].to_vec()).await.expect(200);
    }
    let costs = scalar(
        &stack,
        "SELECT CAST(SUM(cost_micros) AS BIGINT) FROM usage_events",
    )
    .await;
    let debits = scalar(
        &stack,
        "SELECT CAST(SUM(debit_minor) AS BIGINT) FROM usage_events",
    )
    .await;
    let b = balance(&stack, &t).await;
    assert_eq!(costs, 500 * 12_345);
    assert_eq!(debits * 1_000_000 + int(&b["carry_micros"]), costs);
    assert_eq!(debits, 6);
    assert_eq!(b["carry_micros"], 172_500);
    assert_eq!(b["balance_minor"], -6);
    assert!(drift(&stack).await.is_empty());
}

async fn rates_are_validated_versioned_and_audited(stack: Stack) {
    let m = model(&stack, "gpt-rates").await;
    let admin = stack.admin();
    let body = |from: &str, price: i64| {
        json!({ "rates": [{ "model_id": m, "input_per_1k_micros": price,
                            "output_per_1k_micros": 1, "effective_from": from }] })
    };
    let r = admin
        .put("/api/billing/rates", body("2020-01-01T00:00:00Z", 1))
        .await
        .expect(422);
    assert!(r.text.contains("past"), "{}", r.text);
    admin
        .put("/api/billing/rates", body("2031-01-01T00:00:00Z", -1))
        .await
        .expect(422);
    let created = admin
        .put("/api/billing/rates", body("2031-01-01T00:00:00Z", 5))
        .await
        .expect(200);
    assert_eq!(created.json[0]["currency"], "CNY");
    admin
        .put("/api/billing/rates", body("2031-01-01T00:00:00Z", 6))
        .await
        .expect(409);
    let unknown = json!({ "rates": [{ "model_id": "mdl_nope", "input_per_1k_micros": 1, "output_per_1k_micros": 1 }] });
    admin.put("/api/billing/rates", unknown).await.expect(404);
    admin
        .put("/api/billing/rates", json!({ "rates": [] }))
        .await
        .expect(422);
    admin
        .put("/api/billing/rates", json!({ "rates": [], "x": 1 }))
        .await
        .expect(422);
    // Default effective_from is now: in force at once.
    let now = json!({ "rates": [{ "model_id": m, "input_per_1k_micros": 7, "output_per_1k_micros": 8 }] });
    admin.put("/api/billing/rates", now).await.expect(200);
    let in_force = report(&stack, "/api/billing/rates").await;
    assert_eq!(in_force["total"], 1);
    assert_eq!(in_force["items"][0]["input_per_1k_micros"], 7);
    let t = tenant(&stack, "rates", None).await;
    let viewer = stack.as_role(Role::TenantViewer, Some(&t));
    viewer.get("/api/billing/rates").await.expect(200);
    stack
        .as_role(Role::TenantAdmin, Some(&t))
        .put("/api/billing/rates", body("2032-01-01T00:00:00Z", 1))
        .await
        .expect(403);
    let audit = report(&stack, "/api/audit-logs?action=billing.update_rates").await;
    assert_eq!(audit["total"], 9, "every write attempt is audited");
}

async fn billing_plans_are_the_tenant_plans(stack: Stack) {
    let admin = stack.admin();
    let created = admin
        .post(
            "/api/billing/plans",
            json!({ "name": "pro", "monthly_price_minor": 9_900, "included_tokens": 1_000_000,
                    "overage_per_1k_micros": 2_000 }),
        )
        .await
        .expect(201)
        .json;
    let id = created["id"].as_str().expect("id");
    let same = report(&stack, &format!("/api/tenant-plans/{id}")).await;
    assert_eq!(same, created);
    assert_eq!(same["included_tokens"], 1_000_000);
    assert_eq!(same["overage_per_1k_micros"], 2_000);
    let updated = admin
        .put(
            &format!("/api/billing/plans/{id}"),
            json!({ "name": "pro", "included_tokens": 5 }),
        )
        .await
        .expect(200)
        .json;
    assert_eq!(updated["overage_per_1k_micros"], Value::Null);
    admin
        .post("/api/tenant-plans", json!({ "name": "old-style" }))
        .await
        .expect(201);
    assert_eq!(report(&stack, "/api/billing/plans").await["total"], 2);
    admin
        .post(
            "/api/billing/plans",
            json!({ "name": "bad", "included_tokens": 0 }),
        )
        .await
        .expect(422);
    admin
        .post(
            "/api/billing/plans",
            json!({ "name": "bad", "overage_per_1k_micros": -1 }),
        )
        .await
        .expect(422);
    admin
        .delete(&format!("/api/billing/plans/{id}"))
        .await
        .expect(204);
    admin
        .get(&format!("/api/tenant-plans/{id}"))
        .await
        .expect(404);
}

async fn reports_are_tenant_scoped(stack: Stack) {
    let m = model(&stack, "gpt-iso").await;
    rate(&stack, &m, 1_000_000, 0, 0, "2030-01-01T00:00:00Z").await;
    let a = tenant(&stack, "iso-a", None).await;
    let b = tenant(&stack, "iso-b", None).await;
    ingest(
        &stack,
        vec![
            event("iso-1", &a, &m, 1_000, 0, "2030-01-02T00:00:00Z"),
            event("iso-2", &b, &m, 3_000, 0, "2030-01-02T00:00:00Z"),
        ],
    )
    .await
    .expect(200);
    let client = stack.as_role(Role::TenantAdmin, Some(&a));
    for path in ["", "/daily", "/models"] {
        client
            .get(&format!("/api/billing/usage/{b}{path}"))
            .await
            .expect(404);
        client
            .get(&format!("/api/billing/usage/{a}{path}"))
            .await
            .expect(200);
    }
    let own = client.get("/api/billing/usage").await.expect(200).json;
    assert_eq!(own["total"], 1);
    assert_eq!(own["items"][0]["tenant_id"], a.as_str());
    client
        .get(&format!("/api/billing/usage?tenant_id={b}"))
        .await
        .expect(404);
    stack
        .admin()
        .get("/api/billing/usage/tnt_missing")
        .await
        .expect(404);
    let r = stack
        .admin()
        .get("/api/billing/usage?from=yesterday")
        .await
        .expect(422);
    assert_eq!(r.error_code(), "validation_failed");
    assert_eq!(report(&stack, "/api/billing/usage").await["total"], 2);
}
