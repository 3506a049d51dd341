//! System settings (API §9, issue 7): general settings typed and validated (every bad field a
//! 4xx naming it), the SMTP password write-only and never stored in plaintext, the test send
//! against a real SMTP server (aiosmtpd on 127.0.0.1), retention purges, log sampling.

mod common;
mod smtp_common;

use chrono::{Duration, Utc};
use medgate_control_plane::settings::general;
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Client, Stack};
use serde_json::{json, Value};
use smtp_common::SmtpSink;

both_backends!(
    general_settings_defaults_update_roles_and_audit,
    general_settings_validation_is_4xx,
    webhook_secret_is_write_only,
    smtp_password_is_write_only_and_sealed,
    smtp_validation_is_4xx,
    smtp_test_send_reports_success_and_errors,
    purge_respects_platform_and_tenant_retention,
    log_sampling_keeps_errors_and_drops_successes,
    new_tenants_take_the_default_currency_and_timezone,
);

fn node(stack: &Stack) -> Client {
    stack.as_role(Role::Node, None)
}

/// The stored JSON of a settings section, as text.
async fn stored(stack: &Stack, section: &str) -> String {
    sqlx::query_scalar("SELECT value FROM system_settings WHERE name = $1")
        .bind(section)
        .fetch_one(stack.state.store().reader())
        .await
        .expect("stored section")
}

/// Every audit entry of `action`, as text.
async fn audit_text(stack: &Stack, action: &str) -> (u64, String) {
    let r = stack
        .admin()
        .get(&format!("/api/audit-logs?action={action}&page_size=100"))
        .await
        .expect(200);
    (r.json["total"].as_u64().expect("total"), r.text)
}

fn error_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().expect("field").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn general_settings_defaults_update_roles_and_audit(stack: Stack) {
    let admin = stack.admin();
    let r = admin.get("/api/settings").await.expect(200);
    assert_eq!(
        r.json,
        json!({
            "platform_name": "medgate",
            "default_currency": "CNY",
            "default_timezone": "Asia/Shanghai",
            "access_log_retention_days": 90,
            "usage_retention_days": 1825,
            "log_sampling": 1.0,
            "notification_emails": [],
            "notification_webhook_url": null,
            "notification_webhook_secret_set": false,
        })
    );
    let update = json!({
        "platform_name": "Clinic Cloud",
        "default_currency": "USD",
        "default_timezone": "Europe/Berlin",
        "access_log_retention_days": 30,
        "usage_retention_days": 730,
        "log_sampling": 0.25,
        "notification_emails": ["ops@example.com", "billing@example.com"],
    });
    let r = admin.put("/api/settings", update).await.expect(200);
    assert_eq!(r.json["platform_name"], "Clinic Cloud");
    assert_eq!(r.json["default_currency"], "USD");
    assert_eq!(r.json["default_timezone"], "Europe/Berlin");
    assert_eq!(r.json["access_log_retention_days"], 30);
    assert_eq!(r.json["usage_retention_days"], 730);
    assert_eq!(r.json["log_sampling"], 0.25);
    // Omitted fields keep their value.
    let r = admin
        .put("/api/settings", json!({ "log_sampling": 1 }))
        .await
        .expect(200);
    assert_eq!(r.json["log_sampling"], 1.0);
    assert_eq!(r.json["platform_name"], "Clinic Cloud");
    assert_eq!(
        r.json["notification_emails"],
        json!(["ops@example.com", "billing@example.com"])
    );
    let got = admin.get("/api/settings").await.expect(200);
    assert_eq!(got.json, r.json);
    let loaded = general::load(stack.state.store()).await.expect("load");
    assert_eq!(loaded.access_log_retention_days, 30);

    // Roles: auditors read, only platform admins write, tenant roles see nothing.
    let auditor = stack.as_role(Role::Auditor, None);
    auditor.get("/api/settings").await.expect(200);
    assert_eq!(
        auditor
            .put("/api/settings", json!({ "platform_name": "x" }))
            .await
            .status,
        403
    );
    let t = common::tenant(&stack, "settings-roles", None).await;
    let tenant_admin = stack.as_role(Role::TenantAdmin, Some(&t));
    assert_eq!(tenant_admin.get("/api/settings").await.status, 403);
    assert_eq!(
        tenant_admin
            .put("/api/settings", json!({ "platform_name": "x" }))
            .await
            .status,
        403
    );
    assert_eq!(stack.anonymous().get("/api/settings").await.status, 401);
    assert_eq!(
        admin.get("/api/settings").await.json["platform_name"],
        "Clinic Cloud"
    );

    let (total, text) = audit_text(&stack, "settings.update").await;
    assert_eq!(total, 4, "two successes, two refusals: {text}");
    assert!(text.contains("Clinic Cloud"));
}

async fn general_settings_validation_is_4xx(stack: Stack) {
    let admin = stack.admin();
    let before = admin.get("/api/settings").await.expect(200).json;
    let r = admin
        .put(
            "/api/settings",
            json!({
                "platform_name": "",
                "default_currency": "usd",
                "default_timezone": "Mars/Olympus_Mons",
                "access_log_retention_days": 0,
                "usage_retention_days": 399,
                "log_sampling": 1.5,
                "notification_emails": ["ops@example.com", "nope"],
                "notification_webhook_url": "ftp://hooks.example.com/x",
            }),
        )
        .await
        .expect(422);
    assert_eq!(r.error_code(), "validation_failed");
    assert_eq!(
        error_fields(&r.json),
        [
            "platform_name",
            "default_currency",
            "default_timezone",
            "access_log_retention_days",
            "usage_retention_days",
            "log_sampling",
            "notification_emails[1]",
            "notification_webhook_url",
            "notification_webhook_secret",
        ],
        "{}",
        r.text
    );
    assert_eq!(r.json["error"]["details"]["field"], "platform_name");
    for (body, field) in [
        (
            json!({ "access_log_retention_days": 3651 }),
            "access_log_retention_days",
        ),
        (
            json!({ "access_log_retention_days": -1 }),
            "access_log_retention_days",
        ),
        (
            json!({ "usage_retention_days": 3651 }),
            "usage_retention_days",
        ),
        (
            json!({ "usage_retention_days": 1_000_000_000_000i64 }),
            "usage_retention_days",
        ),
        (json!({ "log_sampling": -0.1 }), "log_sampling"),
        (json!({ "default_currency": "XXX" }), "default_currency"),
        (json!({ "default_timezone": "" }), "default_timezone"),
        (json!({ "platform_name": " padded" }), "platform_name"),
        (json!({ "platform_name": "x".repeat(101) }), "platform_name"),
        (
            json!({ "notification_emails": (0..21).map(|i| format!("o{i}@example.com")).collect::<Vec<_>>() }),
            "notification_emails",
        ),
        (
            json!({ "notification_emails": ["a@example.com", "A@example.com"] }),
            "notification_emails[1]",
        ),
        (
            json!({ "notification_webhook_url": "https://hooks.example.com/x" }),
            "notification_webhook_secret",
        ),
        (
            json!({ "notification_webhook_url": "https://u:p@hooks.example.com/x",
                    "notification_webhook_secret": "0123456789abcdef" }),
            "notification_webhook_url",
        ),
        (
            json!({ "notification_webhook_url": "https://hooks.example.com/x",
                    "notification_webhook_secret": "short" }),
            "notification_webhook_secret",
        ),
    ] {
        let r = admin.put("/api/settings", body.clone()).await.expect(422);
        assert_eq!(
            r.json["error"]["details"]["field"], field,
            "{body}: {}",
            r.text
        );
    }
    // Unknown fields, wrong types and broken JSON are refused before any rule.
    let r = admin
        .put("/api/settings", json!({ "platform_nam": "typo" }))
        .await
        .expect(422);
    assert_eq!(r.error_code(), "invalid_body");
    assert!(r.text.contains("platform_nam"), "{}", r.text);
    let r = admin
        .put("/api/settings", json!({ "log_sampling": "half" }))
        .await
        .expect(422);
    assert_eq!(r.error_code(), "invalid_body");
    let r = admin
        .raw(
            reqwest::Method::PUT,
            "/api/settings",
            "application/json",
            b"{\"log_sampling\": ".to_vec(),
        )
        .await
        .expect(400);
    assert_eq!(r.error_code(), "malformed_json");
    let r = admin
        .put("/api/settings", json!({ "platform_name": "nul\u{0}byte" }))
        .await;
    assert!((400..500).contains(&r.status), "{}", r.text);
    // Nothing was applied by any of them.
    assert_eq!(admin.get("/api/settings").await.expect(200).json, before);
}

async fn webhook_secret_is_write_only(stack: Stack) {
    let admin = stack.admin();
    let secret = "whsec-settings-0123456789";
    let r = admin
        .put(
            "/api/settings",
            json!({ "notification_webhook_url": "https://hooks.example.com/medgate?token=1",
                    "notification_webhook_secret": secret }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["notification_webhook_secret_set"], true);
    assert!(!r.text.contains(secret));
    assert!(r.json.get("notification_webhook_secret").is_none());
    let got = admin.get("/api/settings").await.expect(200);
    assert!(!got.text.contains(secret));
    assert!(!stored(&stack, "general").await.contains(secret));
    let (_, audit) = audit_text(&stack, "settings.update").await;
    assert!(!audit.contains(secret));
    // Omitted keeps it; removing the URL and the secret together is allowed.
    let r = admin
        .put("/api/settings", json!({ "platform_name": "P" }))
        .await
        .expect(200);
    assert_eq!(r.json["notification_webhook_secret_set"], true);
    let r = admin
        .put(
            "/api/settings",
            json!({ "notification_webhook_url": null, "notification_webhook_secret": null }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["notification_webhook_secret_set"], false);
    assert_eq!(r.json["notification_webhook_url"], Value::Null);
}

async fn smtp_password_is_write_only_and_sealed(stack: Stack) {
    let admin = stack.admin();
    let r = admin.get("/api/settings/smtp").await.expect(200);
    assert_eq!(
        r.json,
        json!({ "host": null, "port": 587, "tls": "starttls", "username": null,
                "password_set": false, "from": null, "timeout_secs": 10, "configured": false })
    );
    let password = "S3cret-SMTP-pass!";
    let r = admin
        .put(
            "/api/settings/smtp",
            json!({ "host": "smtp.example.com", "port": 465, "tls": "tls",
                    "username": "mailer", "password": password,
                    "from": "Medgate <noreply@example.com>", "timeout_secs": 15 }),
        )
        .await
        .expect(200);
    assert_eq!(
        r.json,
        json!({ "host": "smtp.example.com", "port": 465, "tls": "tls", "username": "mailer",
                "password_set": true, "from": "Medgate <noreply@example.com>",
                "timeout_secs": 15, "configured": true })
    );
    assert!(!r.text.contains(password));
    let got = stack
        .as_role(Role::Auditor, None)
        .get("/api/settings/smtp")
        .await
        .expect(200);
    assert_eq!(got.json, r.json);
    assert!(!got.text.contains(password));
    let raw = stored(&stack, "smtp").await;
    assert!(!raw.contains(password), "stored in plaintext: {raw}");
    assert!(raw.contains("\"password\":\"v2:"), "sealed: {raw}");
    let (_, audit) = audit_text(&stack, "settings.update_smtp").await;
    assert!(!audit.contains(password));
    assert!(audit.contains("password_changed"));

    // A PUT without the password keeps it; null clears it (with the username).
    let r = admin
        .put("/api/settings/smtp", json!({ "port": 2465 }))
        .await
        .expect(200);
    assert_eq!(r.json["password_set"], true);
    assert_eq!(r.json["port"], 2465);
    let sealed =
        |text: &str| serde_json::from_str::<Value>(text).expect("json")["password"].clone();
    assert_eq!(
        sealed(&stored(&stack, "smtp").await),
        sealed(&raw),
        "kept as it was"
    );
    let r = admin
        .put(
            "/api/settings/smtp",
            json!({ "username": null, "password": null }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["password_set"], false);
    assert_eq!(r.json["username"], Value::Null);
    // Turning e-mail off.
    let r = admin
        .put("/api/settings/smtp", json!({ "host": null }))
        .await
        .expect(200);
    assert_eq!(r.json["configured"], false);
    assert_eq!(
        stack
            .as_role(Role::Auditor, None)
            .put("/api/settings/smtp", json!({ "port": 25 }))
            .await
            .status,
        403
    );
}

async fn smtp_validation_is_4xx(stack: Stack) {
    let admin = stack.admin();
    admin
        .put(
            "/api/settings/smtp",
            json!({ "host": "smtp.example.com", "from": "noreply@example.com" }),
        )
        .await
        .expect(200);
    let before = admin.get("/api/settings/smtp").await.expect(200).json;
    for (body, field) in [
        (json!({ "port": 0 }), "port"),
        (json!({ "port": 70000 }), "port"),
        (json!({ "timeout_secs": 0 }), "timeout_secs"),
        (json!({ "timeout_secs": 121 }), "timeout_secs"),
        (json!({ "host": "bad host!" }), "host"),
        (json!({ "host": "-x.example.com" }), "host"),
        (json!({ "from": "not an address" }), "from"),
        (json!({ "from": null }), "from"),
        (json!({ "username": "mailer" }), "password"),
        (json!({ "password": "p" }), "username"),
        (json!({ "username": "u", "password": "" }), "password"),
        (
            json!({ "tls": "none", "username": "u", "password": "p" }),
            "tls",
        ),
    ] {
        let r = admin
            .put("/api/settings/smtp", body.clone())
            .await
            .expect(422);
        assert_eq!(r.error_code(), "validation_failed", "{body}");
        assert_eq!(
            r.json["error"]["details"]["field"], field,
            "{body}: {}",
            r.text
        );
    }
    for body in [
        json!({ "tls": "ssl" }),
        json!({ "port": "25" }),
        json!({ "password_set": true }),
        json!({ "smtp_host": "x" }),
    ] {
        let r = admin
            .put("/api/settings/smtp", body.clone())
            .await
            .expect(422);
        assert_eq!(r.error_code(), "invalid_body", "{body}");
    }
    assert_eq!(
        admin.get("/api/settings/smtp").await.expect(200).json,
        before
    );
    // An IP address and plain SMTP with credentials on the loopback are fine.
    admin
        .put(
            "/api/settings/smtp",
            json!({ "host": "127.0.0.1", "port": 25, "tls": "none",
                    "username": "u", "password": "p" }),
        )
        .await
        .expect(200);
}

async fn smtp_test_send_reports_success_and_errors(stack: Stack) {
    let test = "smtp_test_send_reports_success_and_errors";
    let admin = stack.admin();
    let r = admin
        .post(
            "/api/settings/smtp/test",
            json!({ "to": "ops@example.com" }),
        )
        .await
        .expect(409);
    assert_eq!(r.error_code(), "smtp_not_configured");
    let r = admin
        .post("/api/settings/smtp/test", json!({ "to": "not-an-address" }))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "to");
    admin
        .post("/api/settings/smtp/test", json!({}))
        .await
        .expect(422);
    if !smtp_common::available(test).await {
        return;
    }
    let sink = SmtpSink::start(
        0,
        &stack.data_dir.path().join("mail"),
        Some(("mailer", "pw-1")),
    )
    .await;
    admin
        .put(
            "/api/settings/smtp",
            json!({ "host": "127.0.0.1", "port": sink.port, "tls": "none",
                    "username": "mailer", "password": "pw-1",
                    "from": "Medgate <noreply@medgate.example>", "timeout_secs": 5 }),
        )
        .await
        .expect(200);
    let r = admin
        .post(
            "/api/settings/smtp/test",
            json!({ "to": "ops@example.com" }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["sent"], true);
    assert_eq!(r.json["server"], format!("127.0.0.1:{}", sink.port));
    assert!(r.json["response"]
        .as_str()
        .expect("response")
        .starts_with("250"));
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].envelope_to, "ops@example.com");
    assert_eq!(got[0].envelope_from, "noreply@medgate.example");
    assert_eq!(got[0].auth_login.as_deref(), Some("mailer"));
    assert_eq!(got[0].subject, "[medgate] SMTP test");

    // The server refuses the recipient: 502 with its answer.
    let r = admin
        .post(
            "/api/settings/smtp/test",
            json!({ "to": "reject-me@example.com" }),
        )
        .await
        .expect(502);
    assert_eq!(r.error_code(), "smtp_failed");
    let message = r.json["error"]["message"].as_str().expect("message");
    assert!(message.contains("550"), "{message}");
    assert_eq!(r.json["error"]["details"]["permanent"], true);

    // A wrong password: refused by the server.
    admin
        .put("/api/settings/smtp", json!({ "password": "wrong" }))
        .await
        .expect(200);
    let r = admin
        .post(
            "/api/settings/smtp/test",
            json!({ "to": "ops@example.com" }),
        )
        .await
        .expect(502);
    assert!(r.text.contains("535"), "{}", r.text);

    // The server is down: 502 saying it could not be reached.
    let port = sink.port;
    sink.stop().await;
    let r = admin
        .post(
            "/api/settings/smtp/test",
            json!({ "to": "ops@example.com" }),
        )
        .await
        .expect(502);
    let message = r.json["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("127.0.0.1:{port} could not be reached")),
        "{message}"
    );
    let (total, text) = audit_text(&stack, "settings.test_smtp").await;
    assert_eq!(total, 7, "{text}");
    assert!(text.contains("\"failure\""));
}

/// An access-log entry of `tenant` that happened `days` ago.
fn access_entry(id: &str, tenant: Option<&str>, days: i64) -> Value {
    let at = (Utc::now() - Duration::days(days)).to_rfc3339();
    json!({
        "request_id": id, "occurred_at": at, "method": "POST", "host": "gw.example",
        "path": "/v1/chat/completions", "status": 200, "latency_ms": 5, "tenant_id": tenant,
        "route": "inference", "upstream": null, "bytes_sent": 10,
        "instance_id": "0193f0a0-0000-7000-8000-000000000001"
    })
}

async fn access_ids(stack: &Stack) -> Vec<String> {
    let mut ids: Vec<String> =
        sqlx::query_scalar("SELECT request_id FROM access_logs ORDER BY request_id")
            .fetch_all(stack.state.store().reader())
            .await
            .expect("ids");
    ids.sort();
    ids
}

/// A usage row `days` old, billed by `invoice` (if any), with `debit` minor units.
async fn usage_row(
    stack: &Stack,
    id: &str,
    tenant: &str,
    days: i64,
    invoice: Option<&str>,
    debit: i64,
) {
    let at =
        (Utc::now() - Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    sqlx::query(
        "INSERT INTO usage_events (request_id, tenant_id, requested_model, model_id, \
         model_name, endpoint, input_tokens, output_tokens, status, latency_ms, streamed, \
         usage_reported, occurred_at, ingested_at, cost_micros, debit_minor, invoice_id) \
         VALUES ($1, $2, 'm', 'mdl_1', 'm', 'chat', 1, 1, 200, 5, 0, 1, $3, $3, 0, $4, $5)",
    )
    .bind(id)
    .bind(tenant)
    .bind(at)
    .bind(debit)
    .bind(invoice)
    .execute(stack.state.store().reader())
    .await
    .expect("usage row");
}

async fn invoice(stack: &Stack, id: &str, tenant: &str, status: &str, start_days: i64) {
    let ts = |d: i64| {
        (Utc::now() - Duration::days(d)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    sqlx::query(
        "INSERT INTO invoices (id, tenant_id, period_start, period_end, status, currency, \
         subtotal_minor, credits_minor, tax_rate_bps, tax_minor, total_minor, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, 'CNY', 0, 0, 0, 0, 0, $4, $4)",
    )
    .bind(id)
    .bind(tenant)
    .bind(ts(start_days))
    .bind(ts(start_days - 30))
    .bind(status)
    .execute(stack.state.store().reader())
    .await
    .expect("invoice");
}

async fn usage_ids(stack: &Stack) -> Vec<String> {
    sqlx::query_scalar("SELECT request_id FROM usage_events ORDER BY request_id")
        .fetch_all(stack.state.store().reader())
        .await
        .expect("ids")
}

async fn purge_respects_platform_and_tenant_retention(stack: Stack) {
    let admin = stack.admin();
    let short = common::tenant(&stack, "retention-short", None).await;
    let long = common::tenant(&stack, "retention-long", None).await;
    admin
        .put(
            &format!("/api/tenants/{short}/config"),
            json!({ "access_log_retention_days": 30 }),
        )
        .await
        .expect(200);
    admin
        .put(
            &format!("/api/tenants/{long}/config"),
            json!({ "access_log_retention_days": 3650 }),
        )
        .await
        .expect(200);
    node(&stack)
        .post(
            "/api/internal/access-logs",
            json!({ "events": [
                access_entry("a-short-100d", Some(&short), 100),
                access_entry("b-short-40d", Some(&short), 40),
                access_entry("c-short-1d", Some(&short), 1),
                access_entry("d-long-100d", Some(&long), 100),
                access_entry("e-long-40d", Some(&long), 40),
                access_entry("f-none-100d", None, 100),
                access_entry("g-none-40d", None, 40),
            ] }),
        )
        .await
        .expect(200);
    invoice(&stack, "inv_paid", &long, "paid", 520).await;
    invoice(&stack, "inv_open", &long, "open", 480).await;
    invoice(&stack, "inv_void", &long, "void", 450).await;
    usage_row(&stack, "u1-paid-old", &long, 500, Some("inv_paid"), 0).await;
    usage_row(&stack, "u2-paid-old-debit", &long, 500, Some("inv_paid"), 3).await;
    usage_row(&stack, "u3-open-old", &long, 470, Some("inv_open"), 0).await;
    usage_row(&stack, "u4-void-old", &long, 440, Some("inv_void"), 0).await;
    usage_row(&stack, "u5-unbilled-old", &long, 500, None, 0).await;
    usage_row(&stack, "u6-paid-recent", &long, 10, Some("inv_paid"), 0).await;

    // Platform 90 days; the short tenant keeps 30, the long one is capped at 90.
    let report = general::purge_expired(stack.state.store())
        .await
        .expect("purge");
    assert_eq!(report.access_logs, 4, "{report:?}");
    assert_eq!(
        access_ids(&stack).await,
        ["c-short-1d", "e-long-40d", "g-none-40d"]
    );
    // Usage: platform 1825 days, nothing is old enough.
    assert_eq!(report.usage_events, 0);
    assert_eq!(usage_ids(&stack).await.len(), 6);

    admin
        .put(
            "/api/settings",
            json!({ "access_log_retention_days": 7, "usage_retention_days": 400 }),
        )
        .await
        .expect(200);
    let report = general::purge_expired(stack.state.store())
        .await
        .expect("purge");
    assert_eq!(report.access_logs, 2);
    assert_eq!(access_ids(&stack).await, ["c-short-1d"]);
    assert_eq!(report.usage_events, 2, "{report:?}");
    assert_eq!(
        usage_ids(&stack).await,
        [
            "u2-paid-old-debit",
            "u3-open-old",
            "u5-unbilled-old",
            "u6-paid-recent"
        ]
    );
    // Idempotent: a second run (or another control plane) finds nothing more.
    let report = general::purge_expired(stack.state.store())
        .await
        .expect("purge");
    assert_eq!(report, general::PurgeReport::default());
}

async fn log_sampling_keeps_errors_and_drops_successes(stack: Stack) {
    let admin = stack.admin();
    admin
        .put("/api/settings", json!({ "log_sampling": 0.0 }))
        .await
        .expect(200);
    let mut entries = Vec::new();
    for (id, status) in [
        ("s-200", 200),
        ("s-302", 302),
        ("s-404", 404),
        ("s-503", 503),
    ] {
        let mut e = access_entry(id, None, 0);
        e["status"] = json!(status);
        entries.push(e);
    }
    let ack = node(&stack)
        .post(
            "/api/internal/access-logs",
            json!({ "events": entries.clone() }),
        )
        .await
        .expect(200)
        .json;
    assert_eq!(ack, json!({ "inserted": 2, "duplicates": 0 }));
    assert_eq!(access_ids(&stack).await, ["s-404", "s-503"]);
    admin
        .put("/api/settings", json!({ "log_sampling": 1.0 }))
        .await
        .expect(200);
    let ack = node(&stack)
        .post("/api/internal/access-logs", json!({ "events": entries }))
        .await
        .expect(200)
        .json;
    assert_eq!(ack, json!({ "inserted": 2, "duplicates": 2 }));
    assert_eq!(access_ids(&stack).await.len(), 4);
}

async fn new_tenants_take_the_default_currency_and_timezone(stack: Stack) {
    let admin = stack.admin();
    admin
        .put(
            "/api/settings",
            json!({"default_currency": "USD", "default_timezone": "Europe/Berlin"}),
        )
        .await
        .expect(200);
    let defaulted = admin
        .post(
            "/api/tenants",
            json!({"name": "Defaulted", "code": "defaulted"}),
        )
        .await
        .expect(201);
    assert_eq!(defaulted.json["currency"], "USD");
    assert_eq!(defaulted.json["timezone"], "Europe/Berlin");
    let explicit = admin
        .post(
            "/api/tenants",
            json!({"name": "Explicit", "code": "explicit", "currency": "CNY", "timezone": "UTC"}),
        )
        .await
        .expect(201);
    assert_eq!(explicit.json["currency"], "CNY");
    assert_eq!(explicit.json["timezone"], "UTC");
}
