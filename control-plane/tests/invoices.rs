//! Invoices (API §2.3; billing-medical.md §6.1): I1 idempotent generation, I2 the lifecycle,
//! I3 immutability after issuing (I4 numbering is in invoice_money.rs).

mod invoice_common;

use invoice_common::{content, draft, generate, invoice, plan, set_status, sql, tenant, usage};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    i1_generate_is_idempotent_sequentially_and_concurrently,
    i1_bad_generate_requests_are_4xx,
    i2_allowed_transitions_and_forbidden_ones_are_409,
    i3_issued_content_never_changes,
);

async fn i1_generate_is_idempotent_sequentially_and_concurrently(stack: Stack) {
    let p = plan(&stack, "basic", 1_000, 0).await;
    let t = tenant(&stack, "i1", Some(&p)).await;
    usage(
        &stack,
        "i1-a",
        &t,
        "gpt-4o",
        "2026-03-05T10:00:00Z",
        2_000_000,
    )
    .await;
    let first = generate(&stack, &t, "2026-03").await.expect(201);
    assert_eq!(first.json["status"], "draft");
    assert_eq!(first.json["number"], Value::Null);
    assert_eq!(first.json["total_minor"], 1_002);
    let again = generate(&stack, &t, "2026-03").await.expect(200);
    assert_eq!(again.json["id"], first.json["id"]);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (admin, t) = (stack.admin(), t.clone());
            tokio::spawn(async move {
                admin
                    .post(
                        "/api/billing/invoices/generate",
                        json!({ "tenant_id": t, "period": "2026-04" }),
                    )
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let r = task.await.expect("task");
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
        created += usize::from(r.status == 201);
        ids.push(r.json["id"].clone());
    }
    assert_eq!(created, 1, "one call created the invoice");
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "every call got the same invoice"
    );
    let list = stack
        .admin()
        .get(&format!("/api/billing/invoices?tenant_id={t}"))
        .await
        .expect(200);
    assert_eq!(list.json["total"], 2, "one invoice per period");
    let generated = stack
        .admin()
        .get("/api/audit-logs?action=billing.invoices.generate")
        .await
        .expect(200);
    assert_eq!(generated.json["total"], 22, "every generate audited");
}

async fn i1_bad_generate_requests_are_4xx(stack: Stack) {
    let t = tenant(&stack, "bad", None).await;
    let admin = stack.admin();
    let path = "/api/billing/invoices/generate";
    for (body, status) in [
        (json!({ "tenant_id": t, "period": "2026-13" }), 422),
        (json!({ "tenant_id": t, "period": "March" }), 422),
        (json!({ "tenant_id": t }), 422),
        (
            json!({ "tenant_id": t, "period": "2026-03", "period_start": "2026-03-01T00:00:00Z" }),
            422,
        ),
        (
            json!({ "tenant_id": t, "period_start": "2026-03-02T00:00:00Z",
                    "period_end": "2026-03-01T00:00:00Z" }),
            422,
        ),
        (
            json!({ "tenant_id": t, "period": "2026-03", "tax_rate_bps": 10_001 }),
            422,
        ),
        (
            json!({ "tenant_id": t, "period": "2026-03", "tax_rate_bps": -1 }),
            422,
        ),
        (
            json!({ "tenant_id": t, "period": "2026-03", "colour": "blue" }),
            422,
        ),
        (
            json!({ "tenant_id": "tnt_missing", "period": "2026-03" }),
            404,
        ),
        (json!({ "tenant_id": "../etc", "period": "2026-03" }), 422),
    ] {
        let r = admin.post(path, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert!(r.json["error"]["code"].is_string(), "{body}");
    }
    generate(&stack, &t, "2026-03").await.expect(201);
    let overlap = admin
        .post(
            path,
            json!({ "tenant_id": t, "period_start": "2026-03-15T00:00:00Z",
                    "period_end": "2026-04-15T00:00:00Z" }),
        )
        .await
        .expect(409);
    assert_eq!(overlap.error_code(), "period_overlap");
    admin
        .post(
            path,
            json!({ "tenant_id": t, "period_start": "2026-04-01T00:00:00Z",
                    "period_end": "2026-04-15T00:00:00Z" }),
        )
        .await
        .expect(201);
    for role in [Role::TenantAdmin, Role::Auditor] {
        stack
            .as_role(role, Some(&t))
            .post(path, json!({ "tenant_id": t, "period": "2026-05" }))
            .await
            .expect(403);
    }
}

async fn walk(stack: &Stack, id: &str, path: &[&str]) {
    for status in path {
        let r = set_status(stack, id, status).await.expect(200);
        assert_eq!(r.json["status"], *status);
    }
}

async fn i2_allowed_transitions_and_forbidden_ones_are_409(stack: Stack) {
    let t = tenant(&stack, "i2", None).await;
    let mut month = 0;
    let mut next = || {
        month += 1;
        month
    };
    // Allowed: every edge of the table.
    let paid = draft(&stack, &t, next()).await;
    walk(&stack, &paid, &["open", "paid"]).await;
    let voided = draft(&stack, &t, next()).await;
    walk(&stack, &voided, &["open", "void"]).await;
    let unc_paid = draft(&stack, &t, next()).await;
    walk(&stack, &unc_paid, &["open", "uncollectible", "paid"]).await;
    let unc_void = draft(&stack, &t, next()).await;
    walk(&stack, &unc_void, &["open", "uncollectible", "void"]).await;
    let open = draft(&stack, &t, next()).await;
    walk(&stack, &open, &["open"]).await;
    let unc = draft(&stack, &t, next()).await;
    walk(&stack, &unc, &["open", "uncollectible"]).await;
    let pending = draft(&stack, &t, next()).await;

    let deleted = draft(&stack, &t, next()).await;
    let r = set_status(&stack, &deleted, "deleted").await.expect(200);
    assert_eq!(r.json["status"], "deleted");
    stack
        .admin()
        .get(&format!("/api/billing/invoices/{deleted}"))
        .await
        .expect(404);
    let removed = draft(&stack, &t, next()).await;
    stack
        .admin()
        .delete(&format!("/api/billing/invoices/{removed}"))
        .await
        .expect(204);
    stack
        .admin()
        .get(&format!("/api/billing/invoices/{removed}"))
        .await
        .expect(404);

    // Forbidden: 409 and nothing changes.
    let forbidden: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            pending.as_str(),
            "draft",
            vec!["draft", "paid", "void", "uncollectible"],
        ),
        (open.as_str(), "open", vec!["open", "draft", "deleted"]),
        (
            paid.as_str(),
            "paid",
            vec!["paid", "open", "void", "uncollectible", "draft", "deleted"],
        ),
        (
            voided.as_str(),
            "void",
            vec!["void", "open", "paid", "uncollectible", "draft", "deleted"],
        ),
        (
            unc.as_str(),
            "uncollectible",
            vec!["uncollectible", "open", "draft", "deleted"],
        ),
    ];
    for (id, now, targets) in forbidden {
        let before = invoice(&stack, id).await;
        for to in targets {
            let r = set_status(&stack, id, to).await.expect(409);
            assert_eq!(r.error_code(), "invalid_transition", "{now} -> {to}");
            assert_eq!(
                invoice(&stack, id).await,
                before,
                "{now} -> {to} changed nothing"
            );
        }
    }
    let r = stack
        .admin()
        .delete(&format!("/api/billing/invoices/{paid}"))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "invalid_transition");

    // Bad input and callers.
    set_status(&stack, &pending, "settled").await.expect(422);
    set_status(&stack, "inv_missing", "open").await.expect(404);
    stack
        .admin()
        .put(
            &format!("/api/billing/invoices/{pending}/status"),
            json!({ "status": "open", "amount": 1 }),
        )
        .await
        .expect(422);
    stack
        .as_role(Role::TenantAdmin, Some(&t))
        .put(
            &format!("/api/billing/invoices/{pending}/status"),
            json!({ "status": "open" }),
        )
        .await
        .expect(403);
    let audit = stack
        .admin()
        .get("/api/audit-logs?action=billing.invoices.status&page_size=500")
        .await
        .expect(200);
    let failures = audit.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["outcome"] == "failure")
        .count();
    assert!(
        failures >= 24,
        "refused transitions are audited too ({failures})"
    );
}

async fn i3_issued_content_never_changes(stack: Stack) {
    let p = plan(&stack, "i3", 500, 100).await;
    let t = tenant(&stack, "i3", Some(&p)).await;
    usage(
        &stack,
        "i3-a",
        &t,
        "gpt-4o",
        "2026-03-05T10:00:00Z",
        1_234_567,
    )
    .await;
    usage(
        &stack,
        "i3-b",
        &t,
        "qwen",
        "2026-03-06T10:00:00Z",
        7_000_000,
    )
    .await;
    let id = generate(&stack, &t, "2026-03").await.expect(201).json["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let issued = set_status(&stack, &id, "open").await.expect(200).json;
    let hash = issued["content_hash"].as_str().expect("hash").to_owned();
    assert_eq!(hash.len(), 64);
    assert_eq!(issued["number"], 1);
    assert_eq!(issued["invoice_number"], "INV-000001");
    invoice_common::check_totals(&issued);

    // Usage inside the period after issuing, then a regenerate: the invoice is unchanged.
    usage(
        &stack,
        "i3-late",
        &t,
        "gpt-4o",
        "2026-03-20T10:00:00Z",
        9_000_000,
    )
    .await;
    let regen = generate(&stack, &t, "2026-03").await.expect(200).json;
    assert_eq!(
        regen, issued,
        "regenerate returns the issued invoice as it is"
    );
    let regen = stack
        .admin()
        .post(
            "/api/billing/invoices/generate",
            json!({ "tenant_id": t, "period": "2026-03", "tax_rate_bps": 500 }),
        )
        .await
        .expect(200)
        .json;
    assert_eq!(
        regen, issued,
        "a new tax rate does not touch an issued invoice"
    );

    // Only status, its timestamp and notes move.
    let paid = stack
        .admin()
        .put(
            &format!("/api/billing/invoices/{id}/status"),
            json!({ "status": "paid", "note": "wire transfer 42" }),
        )
        .await
        .expect(200)
        .json;
    assert_eq!(paid["notes"], "wire transfer 42");
    assert!(paid["paid_at"].is_string());
    assert_eq!(content(&paid), content(&issued));
    assert_eq!(paid["content_hash"], hash.as_str());

    // The store itself refuses content changes to an issued invoice.
    for (statement, binds) in [
        (
            "UPDATE invoices SET total_minor = total_minor + 1 WHERE id = $1",
            vec![json!(id)],
        ),
        (
            "UPDATE invoices SET currency = 'USD' WHERE id = $1",
            vec![json!(id)],
        ),
        (
            "UPDATE invoices SET tenant_id = 'other' WHERE id = $1",
            vec![json!(id)],
        ),
        (
            "UPDATE invoices SET status = 'draft' WHERE id = $1",
            vec![json!(id)],
        ),
        (
            "UPDATE invoice_lines SET amount_minor = 0 WHERE invoice_id = $1",
            vec![json!(id)],
        ),
        (
            "DELETE FROM invoice_lines WHERE invoice_id = $1",
            vec![json!(id)],
        ),
        ("DELETE FROM invoices WHERE id = $1", vec![json!(id)]),
        (
            "INSERT INTO invoice_lines (invoice_id, position, kind, description, model_id, \
             quantity_tokens, requests, cost_micros, amount_minor) \
             VALUES ($1, 99, 'credit', 'x', NULL, 0, 0, 0, -1)",
            vec![json!(id)],
        ),
    ] {
        assert!(sql(&stack, statement, binds).await.is_err(), "{statement}");
    }
    assert_eq!(content(&invoice(&stack, &id).await), content(&issued));
}
