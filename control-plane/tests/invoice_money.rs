//! Invoice money and presentation (billing-medical.md §6.1): I5 exact integer totals with
//! half-away-from-zero rounding at the .5 boundary, I6 late usage never touches an issued
//! invoice (the next one bills it), the HTML page escapes every value, tenant isolation,
//! and I4 gapless numbering under 50 concurrent issues.

mod invoice_common;

use invoice_common::{
    check_totals, draft, generate, invoice, plan, set_status, sql, tenant, usage,
};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    i5_lines_round_half_away_from_zero_and_totals_are_exact,
    i6_late_usage_goes_to_the_next_invoice,
    html_page_escapes_every_value,
    tenants_see_only_their_own_invoices,
    i4_concurrent_issues_number_gaplessly,
);

fn lines(invoice: &Value) -> Vec<(String, i64)> {
    invoice["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                format!("{}:{}", l["kind"].as_str().expect("kind"), l["description"]),
                l["amount_minor"].as_i64().expect("amount"),
            )
        })
        .collect()
}

fn amounts(invoice: &Value, kind: &str) -> Vec<i64> {
    invoice["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["kind"] == kind)
        .map(|l| l["amount_minor"].as_i64().expect("amount"))
        .collect()
}

async fn i5_lines_round_half_away_from_zero_and_totals_are_exact(stack: Stack) {
    let at = "2026-03-10T08:00:00Z";
    // No plan: lines only. 1.5 -> 2; 2.499999 -> 2; 0.25 + 0.25 = 0.5 -> 1 (summed per line,
    // then rounded once); 10 % tax on 5 = 0.5 -> 1.
    let a = tenant(&stack, "i5-a", None).await;
    usage(&stack, "a1", &a, "alpha", at, 1_500_000).await;
    usage(&stack, "a2", &a, "beta", at, 2_499_999).await;
    usage(&stack, "a3", &a, "gamma", at, 250_000).await;
    usage(&stack, "a4", &a, "gamma", at, 250_000).await;
    let inv = stack
        .admin()
        .post(
            "/api/billing/invoices/generate",
            json!({ "tenant_id": a, "period": "2026-03", "tax_rate_bps": 1_000 }),
        )
        .await
        .expect(201)
        .json;
    assert_eq!(
        amounts(&inv, "model_usage"),
        vec![2, 2, 1],
        "{:?}",
        lines(&inv)
    );
    let gamma = &inv["lines"][2];
    assert_eq!(gamma["cost_micros"], 500_000);
    assert_eq!(gamma["requests"], 2);
    assert_eq!(gamma["quantity_tokens"], 200);
    assert_eq!(inv["subtotal_minor"], 5);
    assert_eq!(inv["tax_minor"], 1, "0.5 of tax rounds away from zero");
    assert_eq!(check_totals(&inv), 6);
    let issued = set_status(&stack, inv["id"].as_str().expect("id"), "open")
        .await
        .expect(200)
        .json;
    assert_eq!(
        issued["total_minor"], 6,
        "issuing recomputes the same amounts"
    );

    // A plan: fee 1000, credit 100000 capped at the usage (5); tax 10 % of 1000 = 100.
    let p = plan(&stack, "i5", 1_000, 100_000).await;
    let b = tenant(&stack, "i5-b", Some(&p)).await;
    usage(&stack, "b1", &b, "alpha", at, 1_500_000).await;
    usage(&stack, "b2", &b, "beta", at, 3_499_999).await;
    let inv = stack
        .admin()
        .post(
            "/api/billing/invoices/generate",
            json!({ "tenant_id": b, "period": "2026-03", "tax_rate_bps": 1_000 }),
        )
        .await
        .expect(201)
        .json;
    assert_eq!(amounts(&inv, "model_usage"), vec![2, 3]);
    assert_eq!(amounts(&inv, "plan_fee"), vec![1_000]);
    assert_eq!(
        amounts(&inv, "credit"),
        vec![-5],
        "credit never exceeds the usage"
    );
    assert_eq!(inv["credits_minor"], 5);
    assert_eq!(inv["tax_minor"], 100);
    assert_eq!(check_totals(&inv), 1_100);

    // Overage: 1,100 tokens against 100 included at 500,000 micros per 1,000 tokens:
    // 1,000 tokens over = 0.5 of a minor unit -> 1.
    let c = tenant(&stack, "i5-c", None).await;
    stack
        .admin()
        .post(
            "/api/billing/overages/settings",
            json!({ "tenant_id": c, "included_tokens": 100, "overage_per_1k_micros": 500_000 }),
        )
        .await
        .expect(201);
    for i in 0..11 {
        usage(&stack, &format!("c{i}"), &c, "alpha", at, 0).await;
    }
    let inv = generate(&stack, &c, "2026-03").await.expect(201).json;
    let over = inv["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["kind"] == "overage")
        .expect("overage line")
        .clone();
    assert_eq!(over["quantity_tokens"], 1_000);
    assert_eq!(over["cost_micros"], 500_000);
    assert_eq!(over["amount_minor"], 1);
    assert_eq!(check_totals(&inv), 1);
}

async fn i6_late_usage_goes_to_the_next_invoice(stack: Stack) {
    let t = tenant(&stack, "i6", None).await;
    usage(&stack, "m1", &t, "alpha", "2026-03-02T00:00:00Z", 4_000_000).await;
    usage(&stack, "m2", &t, "beta", "2026-03-31T23:59:59Z", 6_000_000).await;
    usage(&stack, "a1", &t, "alpha", "2026-04-01T00:00:00Z", 1_000_000).await;
    let march = generate(&stack, &t, "2026-03").await.expect(201).json;
    let march_id = march["id"].as_str().expect("id").to_owned();
    assert_eq!(
        march["total_minor"], 10,
        "the sum of the period's usage rows"
    );
    let march = set_status(&stack, &march_id, "open").await.expect(200).json;
    assert_eq!(march["total_minor"], 10);

    // Usage of March arrives after March was issued.
    usage(
        &stack,
        "late",
        &t,
        "alpha",
        "2026-03-15T12:00:00Z",
        3_000_000,
    )
    .await;
    assert_eq!(
        invoice(&stack, &march_id).await,
        march,
        "the issued invoice is untouched"
    );
    assert_eq!(
        generate(&stack, &t, "2026-03").await.expect(200).json,
        march
    );

    let april = generate(&stack, &t, "2026-04").await.expect(201).json;
    assert_eq!(amounts(&april, "model_usage"), vec![1]);
    assert_eq!(
        amounts(&april, "late_usage"),
        vec![3],
        "{:?}",
        lines(&april)
    );
    let april_id = april["id"].as_str().expect("id").to_owned();
    let april = set_status(&stack, &april_id, "open").await.expect(200).json;
    assert_eq!(check_totals(&april), 4);
    assert_eq!(invoice(&stack, &march_id).await, march);

    // Each usage row is billed by exactly one invoice.
    let store = stack.state.store();
    let billed: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT request_id, invoice_id FROM usage_events ORDER BY request_id")
            .fetch_all(store.reader())
            .await
            .expect("usage rows");
    let by = |rid: &str| {
        billed
            .iter()
            .find(|(r, _)| r == rid)
            .and_then(|(_, i)| i.clone())
    };
    assert_eq!(by("m1").as_deref(), Some(march_id.as_str()));
    assert_eq!(by("m2").as_deref(), Some(march_id.as_str()));
    assert_eq!(by("a1").as_deref(), Some(april_id.as_str()));
    assert_eq!(by("late").as_deref(), Some(april_id.as_str()));
    // Late usage arriving for April after it was issued waits for the next invoice.
    usage(
        &stack,
        "late2",
        &t,
        "alpha",
        "2026-04-10T00:00:00Z",
        2_000_000,
    )
    .await;
    let may = generate(&stack, &t, "2026-05").await.expect(201).json;
    assert_eq!(amounts(&may, "late_usage"), vec![2]);
    let total: i64 = [&march, &april, &may]
        .iter()
        .map(|i| i["total_minor"].as_i64().expect("total"))
        .sum();
    assert_eq!(total, 16, "every usage row billed once over the invoices");
}

async fn html_page_escapes_every_value(stack: Stack) {
    let t = tenant(&stack, "html", None).await;
    let evil = "<script>alert(1)</script>";
    usage(&stack, "h1", &t, evil, "2026-03-02T00:00:00Z", 123_000_000).await;
    let id = generate(&stack, &t, "2026-03").await.expect(201).json["id"]
        .as_str()
        .expect("id")
        .to_owned();
    stack
        .admin()
        .put(
            &format!("/api/billing/invoices/{id}/status"),
            json!({ "status": "open", "note": "<b onclick=\"x()\">'paid' & done</b>" }),
        )
        .await
        .expect(200);
    let url = format!("{}/api/billing/invoices/{id}", stack.base_url);
    let token = stack.token(Role::PlatformAdmin, None);
    let http = reqwest::Client::new();
    for request in [
        http.get(format!("{url}?format=html")),
        http.get(&url)
            .header("accept", "text/html,application/xhtml+xml"),
    ] {
        let r = request.bearer_auth(&token).send().await.expect("sent");
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().expect("ct").to_owned();
        assert!(ct.starts_with("text/html"), "{ct}");
        let body = r.text().await.expect("body");
        assert!(!body.contains("<script>"), "raw markup leaked");
        assert!(!body.contains("<b onclick"), "raw note leaked");
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{body}"
        );
        assert!(body.contains("&lt;b onclick=&quot;x()&quot;&gt;&#39;paid&#39; &amp; done"));
        assert!(body.contains("INV-000001"));
        assert!(body.contains("1.23"));
    }
    let json = stack
        .admin()
        .get(&format!("/api/billing/invoices/{id}?format=json"))
        .await;
    assert_eq!(
        json.expect(200).json["lines"][0]["description"],
        format!("{evil} usage")
    );
    let bad = stack
        .admin()
        .get(&format!("/api/billing/invoices/{id}?format=pdf"))
        .await;
    assert_eq!(bad.expect(422).error_code(), "validation_failed");
}

async fn tenants_see_only_their_own_invoices(stack: Stack) {
    let a = tenant(&stack, "iso-a", None).await;
    let b = tenant(&stack, "iso-b", None).await;
    let ia = generate(&stack, &a, "2026-03").await.expect(201).json["id"].clone();
    let ib = generate(&stack, &b, "2026-03").await.expect(201).json["id"].clone();
    let (ia, ib) = (ia.as_str().expect("a"), ib.as_str().expect("b"));
    for role in [Role::TenantAdmin, Role::TenantViewer] {
        let c = stack.as_role(role, Some(&a));
        c.get(&format!("/api/billing/invoices/{ia}"))
            .await
            .expect(200);
        let r = c
            .get(&format!("/api/billing/invoices/{ib}"))
            .await
            .expect(404);
        assert_eq!(r.error_code(), "not_found");
        c.get(&format!("/api/billing/invoices/{ib}?format=html"))
            .await
            .expect(404);
        let list = c.get("/api/billing/invoices").await.expect(200);
        assert_eq!(list.json["total"], 1);
        assert_eq!(list.json["items"][0]["id"], ia);
        c.get(&format!("/api/billing/invoices?tenant_id={b}"))
            .await
            .expect(404);
        c.get(&format!("/api/billing/tenants/{b}/invoices"))
            .await
            .expect(404);
        let own = c
            .get(&format!("/api/billing/tenants/{a}/invoices"))
            .await
            .expect(200);
        assert_eq!(own.json["total"], 1);
        c.put(
            &format!("/api/billing/invoices/{ia}/status"),
            json!({ "status": "open" }),
        )
        .await
        .expect(403);
    }
    let auditor = stack.as_role(Role::Auditor, None);
    auditor
        .get(&format!("/api/billing/invoices/{ib}"))
        .await
        .expect(200);
    assert_eq!(
        auditor.get("/api/billing/invoices").await.expect(200).json["total"],
        2
    );
    let admin = stack.admin();
    let page = admin
        .get("/api/billing/invoices?page_size=1&page=2")
        .await
        .expect(200);
    assert_eq!(page.json["total"], 2);
    assert_eq!(page.json["items"].as_array().expect("items").len(), 1);
    for q in [
        "status=sent",
        "period=2026-3",
        "page_size=0",
        "page=0",
        "colour=red",
    ] {
        let r = admin.get(&format!("/api/billing/invoices?{q}")).await;
        assert!(r.status == 400 || r.status == 422, "{q}: {}", r.status);
    }
    let drafts = admin
        .get("/api/billing/invoices?status=draft&period=2026-03")
        .await;
    assert_eq!(drafts.expect(200).json["total"], 2);
    admin
        .get("/api/billing/tenants/tnt_missing/invoices")
        .await
        .expect(404);
    assert!(sql(&stack, "SELECT 1", vec![]).await.is_ok());
}

async fn i4_concurrent_issues_number_gaplessly(stack: Stack) {
    let t = tenant(&stack, "i4", None).await;
    let other = tenant(&stack, "i4-other", None).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(draft(&stack, &t, i).await);
    }
    let other_id = draft(&stack, &other, 0).await;
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (admin, id) = (stack.admin(), id.clone());
            tokio::spawn(async move {
                admin
                    .put(
                        &format!("/api/billing/invoices/{id}/status"),
                        json!({ "status": "open" }),
                    )
                    .await
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        let r = task.await.expect("task").expect(200);
        numbers.push(r.json["number"].as_i64().expect("number"));
    }
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (1..=50).collect::<Vec<i64>>(),
        "unique and gapless"
    );
    let r = set_status(&stack, &other_id, "open").await.expect(200);
    assert_eq!(r.json["number"], 1, "numbering is per tenant");
    // A second issue of an issued invoice takes no number.
    set_status(&stack, &ids[0], "open").await.expect(409);
    let next = draft(&stack, &t, 60).await;
    assert_eq!(
        set_status(&stack, &next, "open").await.expect(200).json["number"],
        51
    );
}
