//! The audit trail: every mutating call (success or failure) writes exactly one entry; the
//! chain verifies, and tampering is found at the right position.

use medgate_control_plane::audit;
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    every_mutation_is_audited_once,
    chain_verifies_and_detects_edits_deletes_and_reorders,
    audit_log_is_append_only_in_the_database,
    audit_queries_filter_and_export,
    concurrent_appends_keep_the_chain_intact,
    the_source_ip_is_the_client_a_trusted_proxy_forwarded,
);

async fn count(stack: &Stack) -> u64 {
    stack
        .admin()
        .get("/api/audit-logs?page_size=1")
        .await
        .expect(200)
        .json["total"]
        .as_u64()
        .expect("total")
}

async fn every_mutation_is_audited_once(stack: Stack) {
    let admin = stack.admin();
    let base = count(&stack).await;
    let r = admin
        .post("/api/tenants", json!({ "name": "Aud", "code": "aud" }))
        .await
        .expect(201);
    let id = r.json["id"].as_str().expect("id").to_owned();
    admin
        .post(&format!("/api/tenants/{id}/suspend"), Value::Null)
        .await
        .expect(409);
    stack
        .as_role(Role::TenantViewer, Some(&id))
        .put(&format!("/api/tenants/{id}/config"), json!({}))
        .await
        .expect(403);
    stack
        .anonymous()
        .post("/api/tenants", json!({ "name": "x", "code": "y" }))
        .await
        .expect(401);
    admin
        .post("/api/tenants", json!({ "bad": true }))
        .await
        .expect(422);
    admin.get("/api/tenants").await.expect(200);
    assert_eq!(count(&stack).await, base + 5, "5 mutating calls, 1 read");

    let r = admin.get("/api/audit-logs?page_size=5").await.expect(200);
    let items = r.json["items"].as_array().expect("items");
    assert_eq!(items[0]["action"], "tenants.create");
    assert_eq!(items[0]["outcome"], "failure");
    assert_eq!(items[0]["status_code"], 422);
    assert_eq!(items[1]["actor"], "anonymous");
    assert_eq!(items[1]["status_code"], 401);
    assert_eq!(items[2]["action"], "tenants.update_config");
    assert_eq!(items[2]["role"], "tenant_viewer");
    assert_eq!(items[2]["status_code"], 403);
    assert_eq!(items[3]["action"], "tenants.suspend");
    assert_eq!(items[3]["resource_id"], json!(id));
    assert_eq!(items[3]["outcome"], "failure");
    assert_eq!(items[4]["action"], "tenants.create");
    assert_eq!(items[4]["outcome"], "success");
    assert_eq!(items[4]["resource_id"], json!(id));
    assert_eq!(items[4]["tenant_id"], json!(id));
    assert_eq!(items[4]["source_ip"], "127.0.0.1");
    assert!(items[4]["request_id"].is_string());
}

async fn chain_verifies_and_detects_edits_deletes_and_reorders(stack: Stack) {
    let admin = stack.admin();
    for i in 0..6 {
        admin
            .post(
                "/api/tenants",
                json!({ "name": format!("T{i}"), "code": format!("chain-{i}") }),
            )
            .await
            .expect(201);
    }
    let store = stack.state.store();
    let report = audit::verify(store).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checked, 6);

    let pool = store.reader().clone();
    let exec = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query(sql).execute(&pool).await.expect(sql) }
    };
    let drop_guard = |pg: bool| async move {
        if pg {
            exec("DROP TRIGGER audit_log_no_update ON audit_log").await;
        } else {
            exec("DROP TRIGGER audit_log_no_update").await;
            exec("DROP TRIGGER audit_log_no_delete").await;
        }
    };
    drop_guard(stack.backend == medgate_testkit::Backend::Postgres).await;

    exec("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3").await;
    let report = audit::verify(store).await.expect("verify");
    assert_eq!(
        report.first_broken.as_ref().map(|b| b.0),
        Some(3),
        "{report:?}"
    );
    exec("UPDATE audit_log SET actor = 'test-platform_admin' WHERE seq = 3").await;
    assert!(
        audit::verify(store).await.expect("verify").is_intact(),
        "restored row verifies again"
    );

    // Swap the content of rows 4 and 5 (a reorder).
    exec("UPDATE audit_log SET seq = 1000 WHERE seq = 4").await;
    exec("UPDATE audit_log SET seq = 4 WHERE seq = 5").await;
    exec("UPDATE audit_log SET seq = 5 WHERE seq = 1000").await;
    let report = audit::verify(store).await.expect("verify");
    assert_eq!(
        report.first_broken.as_ref().map(|b| b.0),
        Some(4),
        "{report:?}"
    );
    exec("UPDATE audit_log SET seq = 1000 WHERE seq = 4").await;
    exec("UPDATE audit_log SET seq = 4 WHERE seq = 5").await;
    exec("UPDATE audit_log SET seq = 5 WHERE seq = 1000").await;
    assert!(audit::verify(store).await.expect("verify").is_intact());

    exec("DELETE FROM audit_log WHERE seq = 2").await;
    let report = audit::verify(store).await.expect("verify");
    assert_eq!(
        report.first_broken.as_ref().map(|b| b.0),
        Some(2),
        "{report:?}"
    );
}

async fn audit_log_is_append_only_in_the_database(stack: Stack) {
    stack
        .admin()
        .post("/api/tenants", json!({ "name": "T", "code": "append" }))
        .await
        .expect(201);
    let pool = stack.state.store().reader().clone();
    assert!(
        sqlx::query("UPDATE audit_log SET actor = 'x'")
            .execute(&pool)
            .await
            .is_err(),
        "UPDATE refused"
    );
    assert!(
        sqlx::query("DELETE FROM audit_log")
            .execute(&pool)
            .await
            .is_err(),
        "DELETE refused"
    );
}

async fn audit_queries_filter_and_export(stack: Stack) {
    let admin = stack.admin();
    let t = stack.create_active_tenant("exp").await;
    let id = t["id"].as_str().expect("id").to_owned();
    admin
        .post(&format!("/api/tenants/{id}/suspend"), Value::Null)
        .await
        .expect(200);

    let r = admin
        .get("/api/audit-logs?action=tenants.suspend")
        .await
        .expect(200);
    assert_eq!(r.json["total"], 1);
    let r = admin
        .get(&format!("/api/audit-logs/{id}"))
        .await
        .expect(200);
    assert_eq!(r.json["total"], 3, "create, activate, suspend");
    let r = admin
        .get("/api/audit-logs?from=2999-01-01T00:00:00Z")
        .await
        .expect(200);
    assert_eq!(r.json["total"], 0);
    admin
        .get("/api/audit-logs?from=not-a-time")
        .await
        .expect(422);
    admin.get("/api/audit-logs/tnt_missing").await.expect(404);

    let r = admin
        .post(
            "/api/audit-logs/export",
            json!({ "format": "jsonl", "filter": { "tenant_id": id } }),
        )
        .await
        .expect(200);
    assert!(r.headers["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("application/x-ndjson"));
    let lines: Vec<Value> = r
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["action"], "tenants.suspend");

    let r = admin
        .post(
            "/api/audit-logs/export",
            json!({ "format": "csv", "filter": { "action": "tenants.activate" } }),
        )
        .await
        .expect(200);
    let rows: Vec<&str> = r.text.lines().collect();
    assert!(rows[0].starts_with("seq,id,recorded_at,actor"));
    assert_eq!(rows.len(), 2);
    admin
        .post("/api/audit-logs/export", json!({ "format": "xml" }))
        .await
        .expect(422);

    let r = admin
        .get("/api/audit-logs?action=audit.export")
        .await
        .expect(200);
    assert_eq!(
        r.json["total"], 3,
        "exports are audited too (including the refused one)"
    );
    stack
        .as_role(Role::TenantViewer, Some(&id))
        .get("/api/audit-logs")
        .await
        .expect(403);
    stack
        .as_role(Role::Auditor, None)
        .get("/api/audit-logs")
        .await
        .expect(200);
}

async fn concurrent_appends_keep_the_chain_intact(stack: Stack) {
    let admin = stack.admin();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = admin.clone();
        tasks.push(tokio::spawn(async move {
            c.post(
                "/api/tenants",
                json!({ "name": format!("C{i}"), "code": format!("conc-{i}") }),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 201);
    }
    let report = audit::verify(stack.state.store()).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checked, 40);
}

/// The built-in proxy (loopback here) forwards the client's address; the audit entry names
/// the client, not the proxy. What the client itself wrote into the header is not believed.
async fn the_source_ip_is_the_client_a_trusted_proxy_forwarded(stack: Stack) {
    let token = stack.token(Role::PlatformAdmin, None);
    let reply = reqwest::Client::new()
        .post(format!("{}/api/tenants", stack.base_url))
        .bearer_auth(token)
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
        .json(&json!({ "name": "Fwd", "code": "fwd" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(reply.status(), 201);
    let r = stack
        .admin()
        .get("/api/audit-logs?page_size=1")
        .await
        .expect(200);
    let entry = &r.json["items"][0];
    assert_eq!(entry["action"], "tenants.create");
    assert_eq!(entry["source_ip"], "203.0.113.9");
}
