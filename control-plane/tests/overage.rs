//! Overage (API §2.4; billing-medical.md §6.1 O1): validated rules per tenant or platform
//! default, exactly one record and one notification per crossed threshold under 100
//! concurrent notify calls racing usage ingest, filtered records, and hard caps.

mod invoice_common;

use chrono::{TimeZone, Utc};
use invoice_common::{event, ingest, node, tenant};
use medgate_control_plane::billing::{notify, overage};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    settings_are_validated_and_replace_per_scope,
    o1_each_crossing_is_recorded_and_notified_once,
    records_filter_and_hard_caps_follow_the_rules,
);

const SETTINGS: &str = "/api/billing/overages/settings";

/// The hard caps the snapshot hands the data plane.
async fn snapshot_caps(stack: &Stack) -> std::collections::BTreeMap<String, String> {
    let r = stack
        .as_role(Role::Node, None)
        .get("/api/internal/snapshot")
        .await
        .expect(200);
    let s: medgate_config::Snapshot = serde_json::from_value(r.json).expect("snapshot");
    s.validate().expect("valid");
    s.protection.quota_caps
}

async fn settings_are_validated_and_replace_per_scope(stack: Stack) {
    let t = tenant(&stack, "rules", None).await;
    let admin = stack.admin();
    for (body, status) in [
        (
            json!({ "tenant_id": t, "included_tokens": 100, "thresholds": [] }),
            422,
        ),
        (
            json!({ "tenant_id": t, "included_tokens": 100, "thresholds": [80, 80] }),
            422,
        ),
        (
            json!({ "tenant_id": t, "included_tokens": 100, "thresholds": [0] }),
            422,
        ),
        (
            json!({ "tenant_id": t, "included_tokens": 100, "thresholds": [1001] }),
            422,
        ),
        (
            json!({ "tenant_id": t, "included_tokens": 100, "thresholds": (1..=11).collect::<Vec<_>>() }),
            422,
        ),
        (json!({ "tenant_id": t, "included_tokens": 0 }), 422),
        (json!({ "tenant_id": t }), 422),
        (
            json!({ "tenant_id": t, "metric": "spend", "included_tokens": 5 }),
            422,
        ),
        (
            json!({ "tenant_id": t, "metric": "bytes", "included_tokens": 5 }),
            422,
        ),
        (
            json!({ "tenant_id": t, "mode": "strict", "included_tokens": 5 }),
            422,
        ),
        (
            json!({ "tenant_id": t, "included_tokens": 5, "overage_per_1k_micros": -1 }),
            422,
        ),
        (
            json!({ "tenant_id": t, "included_tokens": 5, "colour": "red" }),
            422,
        ),
        (json!({ "tenant_id": t, "included_tokens": "many" }), 422),
        (
            json!({ "tenant_id": "tnt_missing", "included_tokens": 5 }),
            404,
        ),
    ] {
        let r = admin.post(SETTINGS, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    let created = admin
        .post(
            SETTINGS,
            json!({ "tenant_id": t, "included_tokens": 1000, "thresholds": [120, 80, 100] }),
        )
        .await
        .expect(201)
        .json;
    assert_eq!(created["thresholds"], json!([80, 100, 120]));
    assert_eq!(created["mode"], "soft");
    let replaced = admin
        .post(
            SETTINGS,
            json!({ "tenant_id": t, "included_tokens": 2000, "mode": "hard" }),
        )
        .await
        .expect(200)
        .json;
    assert_eq!(
        replaced["id"], created["id"],
        "one rule per tenant and metric"
    );
    assert_eq!(replaced["included_tokens"], 2000);
    admin
        .post(
            SETTINGS,
            json!({ "metric": "spend", "included_spend_minor": 10_000 }),
        )
        .await
        .expect(201);
    stack
        .as_role(Role::TenantAdmin, Some(&t))
        .post(SETTINGS, json!({ "tenant_id": t, "included_tokens": 5 }))
        .await
        .expect(403);
    let all = admin.get(SETTINGS).await.expect(200);
    assert_eq!(all.json["total"], 2);
    let other = tenant(&stack, "rules-other", None).await;
    let own = stack
        .as_role(Role::TenantViewer, Some(&other))
        .get(SETTINGS)
        .await
        .expect(200);
    assert_eq!(
        own.json["total"], 1,
        "the platform default applies to every tenant"
    );
    stack
        .as_role(Role::TenantViewer, Some(&other))
        .get(&format!("{SETTINGS}?tenant_id={t}"))
        .await
        .expect(404);
    let audit = admin
        .get("/api/audit-logs?action=billing.overages.settings.set")
        .await
        .expect(200);
    assert!(audit.json["total"].as_u64().expect("total") >= 17);
}

async fn o1_each_crossing_is_recorded_and_notified_once(stack: Stack) {
    let t = tenant(&stack, "o1", None).await;
    let other = tenant(&stack, "o1-other", None).await;
    let rule = stack
        .admin()
        .post(
            SETTINGS,
            json!({ "tenant_id": t, "included_tokens": 1000, "thresholds": [80, 100, 120],
                    "mode": "hard" }),
        )
        .await
        .expect(201)
        .json;
    let rule_id = rule["id"].as_str().expect("id").to_owned();
    // 30 events of 50 tokens: 1,500 tokens, crossing 80 %, 100 % and 120 % while 100
    // notify calls (half for the tenant, half for every tenant) run at the same time.
    let mut tasks = Vec::new();
    for i in 0..100 {
        if i % 10 < 3 {
            let n = node(&stack);
            let e = event(&format!("o1-{i}"), &t, "alpha", 50, "2026-03-10T10:00:00Z");
            tasks.push(tokio::spawn(async move {
                n.post("/api/internal/usage", json!({ "events": [e] }))
                    .await
                    .expect(200);
                Value::Null
            }));
        }
        let admin = stack.admin();
        let body = if i % 2 == 0 {
            json!({ "tenant_id": t, "period": "2026-03" })
        } else {
            json!({ "period": "2026-03" })
        };
        tasks.push(tokio::spawn(async move {
            admin
                .post("/api/billing/overages/notify", body)
                .await
                .expect(200)
                .json
        }));
    }
    let mut notified: Vec<Value> = Vec::new();
    for task in tasks {
        let r = task.await.expect("task");
        if let Some(items) = r["notified"].as_array() {
            notified.extend(items.iter().cloned());
        }
    }
    let last = stack
        .admin()
        .post(
            "/api/billing/overages/notify",
            json!({ "period": "2026-03" }),
        )
        .await
        .expect(200)
        .json;
    notified.extend(
        last["notified"]
            .as_array()
            .expect("notified")
            .iter()
            .cloned(),
    );
    let ingested: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(input_tokens) AS BIGINT) FROM usage_events WHERE tenant_id = $1",
    )
    .bind(t.clone())
    .fetch_one(stack.state.store().reader())
    .await
    .expect("sum");
    assert_eq!(ingested, 1_500);
    let mut thresholds: Vec<i64> = notified
        .iter()
        .map(|r| r["threshold"].as_i64().expect("threshold"))
        .collect();
    thresholds.sort_unstable();
    assert_eq!(
        thresholds,
        vec![80, 100, 120],
        "each crossing answered as new once"
    );

    let records = stack
        .admin()
        .get(&format!("/api/billing/overages?tenant_id={t}"))
        .await
        .expect(200);
    assert_eq!(records.json["total"], 3);
    for r in records.json["items"].as_array().expect("items") {
        let threshold = r["threshold"].as_i64().expect("threshold");
        assert_eq!(r["rule_id"], rule_id.as_str());
        assert_eq!(r["period"], "2026-03");
        assert!(r["usage_value"].as_i64().expect("usage") * 100 >= 1000 * threshold);
    }
    let sent = notify::list(stack.state.store(), "overage", Some(&t), 100)
        .await
        .expect("notifications");
    let mut keys: Vec<String> = sent.iter().map(|n| n.dedup_key.clone()).collect();
    keys.sort();
    let want: Vec<String> = [100, 120, 80]
        .iter()
        .map(|th| format!("overage:{t}:{rule_id}:2026-03:{th}"))
        .collect();
    assert_eq!(keys, want, "one notification per threshold");
    assert!(
        notify::list(stack.state.store(), "overage", Some(&other), 100)
            .await
            .expect("none")
            .is_empty()
    );
}

async fn records_filter_and_hard_caps_follow_the_rules(stack: Stack) {
    let hard = tenant(&stack, "cap-hard", None).await;
    let soft = tenant(&stack, "cap-soft", None).await;
    let admin = stack.admin();
    // The platform default is soft; `hard` has its own hard rule without a 100 % threshold
    // (a hard rule always evaluates 100 %).
    admin
        .post(
            SETTINGS,
            json!({ "included_tokens": 100, "thresholds": [50] }),
        )
        .await
        .expect(201);
    admin
        .post(
            SETTINGS,
            json!({ "tenant_id": hard, "included_tokens": 100, "thresholds": [50],
                    "mode": "hard" }),
        )
        .await
        .expect(201);
    for (i, who) in [&hard, &soft].into_iter().enumerate() {
        let e = event(
            &format!("cap-{i}"),
            who,
            "alpha",
            150,
            "2026-03-10T10:00:00Z",
        );
        ingest(&stack, vec![e]).await;
    }
    let r = admin
        .post(
            "/api/billing/overages/notify",
            json!({ "period": "2026-03" }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["notified"].as_array().expect("notified").len(), 3);
    let at = Utc
        .with_ymd_and_hms(2026, 3, 20, 0, 0, 0)
        .single()
        .expect("time");
    let caps = overage::hard_capped_tenants(stack.state.store(), at)
        .await
        .expect("caps");
    assert_eq!(caps.len(), 1, "{caps:?}");
    assert_eq!(caps[0].tenant_id, hard);
    assert_eq!(caps[0].until, "2026-04-01T00:00:00.000000Z");
    let after = Utc
        .with_ymd_and_hms(2026, 4, 1, 0, 0, 0)
        .single()
        .expect("time");
    assert!(overage::hard_capped_tenants(stack.state.store(), after)
        .await
        .expect("caps")
        .is_empty());
    // The data plane learns the cap through the snapshot (and ignores it once it lifts).
    let caps = snapshot_caps(&stack).await;
    assert_eq!(
        caps.get(&hard).map(String::as_str),
        Some("2026-04-01T00:00:00.000000Z")
    );
    assert_eq!(caps.len(), 1, "{caps:?}");
    // Raising the allowance above the usage lifts the cap.
    admin
        .post(
            SETTINGS,
            json!({ "tenant_id": hard, "included_tokens": 1000, "mode": "hard" }),
        )
        .await
        .expect(200);
    assert!(overage::hard_capped_tenants(stack.state.store(), at)
        .await
        .expect("caps")
        .is_empty());
    assert!(
        snapshot_caps(&stack).await.is_empty(),
        "lifted on the data plane too"
    );

    let page = admin
        .get("/api/billing/overages?threshold=100")
        .await
        .expect(200);
    assert_eq!(page.json["total"], 1);
    let page = admin
        .get("/api/billing/overages?period=2026-03&page_size=2")
        .await
        .expect(200);
    assert_eq!(page.json["total"], 3);
    assert_eq!(page.json["items"].as_array().expect("items").len(), 2);
    let viewer = stack.as_role(Role::TenantViewer, Some(&soft));
    let own = viewer.get("/api/billing/overages").await.expect(200);
    assert_eq!(own.json["total"], 1);
    viewer
        .get(&format!("/api/billing/overages?tenant_id={hard}"))
        .await
        .expect(404);
    viewer
        .post("/api/billing/overages/notify", json!({}))
        .await
        .expect(403);
    for q in ["period=2026-3", "threshold=x", "page=0", "colour=red"] {
        let r = admin.get(&format!("/api/billing/overages?{q}")).await;
        assert!(r.status == 400 || r.status == 422, "{q}: {}", r.status);
    }
    for body in [
        json!({ "period": "March" }),
        json!({ "tenant_id": "tnt_missing" }),
        json!({ "x": 1 }),
    ] {
        let r = admin
            .post("/api/billing/overages/notify", body.clone())
            .await;
        assert!(r.status == 404 || r.status == 422, "{body}: {}", r.status);
    }
}
