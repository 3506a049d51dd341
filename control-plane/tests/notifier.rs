//! The notifier (issue 7): outbox rows (low balance, alerts) delivered by e-mail to a real
//! SMTP server (aiosmtpd on 127.0.0.1) and by signed webhook; an SMTP outage retried with
//! backoff, visible through `GET /api/notifications`, then delivered; exhausted attempts
//! marked failed and queued again by hand; concurrent senders never send twice.
//!
//! Delivery is driven with `deliver_due_at`, never by waiting for the background loop; tests
//! that step through the backoff run on a clock a day ahead, where the loop (real time) never
//! finds their rows due.

mod common;
mod pricing_common;
mod smtp_common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use medgate_control_plane::notifier::{self, DeliveryReport};
use medgate_control_plane::{alerts, Role};
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};
use smtp_common::SmtpSink;

both_backends!(
    low_balance_is_emailed_to_the_tenant_and_the_operators,
    webhook_deliveries_carry_a_valid_signature,
    smtp_outage_is_retried_with_backoff_then_delivered,
    exhausted_attempts_fail_visibly_and_can_be_retried,
    alert_emails_go_through_the_notifier,
    concurrent_senders_never_send_twice,
);

const SECRET: &str = "whsec-notifier-0123456789";

/// What the test webhook receiver got: (headers, raw body).
type Inbox = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A webhook receiver on 127.0.0.1:0 answering 200; returns its URL and its inbox.
async fn receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(inbox): State<Inbox>, headers: HeaderMap, body: String| async move {
                    inbox.lock().expect("inbox").push((headers, body));
                    StatusCode::OK
                },
            ),
        )
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), inbox)
}

/// Points the SMTP settings at 127.0.0.1:`port`, plain SMTP.
async fn smtp_to(stack: &Stack, port: u16) {
    stack
        .admin()
        .put(
            "/api/settings/smtp",
            json!({ "host": "127.0.0.1", "port": port, "tls": "none",
                    "from": "Medgate <noreply@medgate.example>", "timeout_secs": 5 }),
        )
        .await
        .expect(200);
}

/// An active tenant (with `email` as its notification e-mail) whose balance crosses its
/// low-balance threshold once: one `low_balance` row in the outbox. Returns the tenant id.
async fn low_balance(stack: &Stack, code: &str, email: Option<&str>) -> String {
    let admin = stack.admin();
    let t = pricing_common::tenant(stack, code, None).await;
    if let Some(e) = email {
        admin
            .put(
                &format!("/api/tenants/{t}/config"),
                json!({ "notification_email": e }),
            )
            .await
            .expect(200);
    }
    pricing_common::credit(stack, &t, 150, "seed").await;
    admin
        .post(
            "/api/balance/threshold",
            json!({ "tenant_id": t, "threshold_minor": 100 }),
        )
        .await
        .expect(200);
    pricing_common::credit(stack, &t, -60, "spend").await;
    t
}

/// The notifications of `tenant`, newest first.
async fn listed(stack: &Stack, query: &str) -> Vec<Value> {
    stack
        .admin()
        .get(&format!("/api/notifications?{query}"))
        .await
        .expect(200)
        .json["items"]
        .as_array()
        .expect("items")
        .clone()
}

async fn only(stack: &Stack, tenant: &str) -> Value {
    let items = listed(stack, &format!("tenant_id={tenant}")).await;
    assert_eq!(items.len(), 1, "{items:?}");
    items[0].clone()
}

/// The tenant's only notification once its status is `status` (waits up to 10 s: the
/// background loop may be the one finishing it).
async fn when_status(stack: &Stack, tenant: &str, status: &str) -> Value {
    for _ in 0..100 {
        let n = only(stack, tenant).await;
        if n["status"] == status {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("not {status}: {}", only(stack, tenant).await);
}

async fn deliver_at(stack: &Stack, at: DateTime<Utc>) -> DeliveryReport {
    notifier::deliver_due_at(&stack.state, at)
        .await
        .expect("deliver")
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn low_balance_is_emailed_to_the_tenant_and_the_operators(stack: Stack) {
    if !smtp_common::available("low_balance_is_emailed_to_the_tenant_and_the_operators").await {
        return;
    }
    let sink = SmtpSink::start(0, &stack.data_dir.path().join("mail"), None).await;
    smtp_to(&stack, sink.port).await;
    stack
        .admin()
        .put(
            "/api/settings",
            json!({ "platform_name": "Clinic Cloud", "notification_emails": ["ops@example.com"] }),
        )
        .await
        .expect(200);
    let t = low_balance(&stack, "nb-low", Some("billing@clinic.example")).await;
    let n = only(&stack, &t).await;
    assert_eq!(n["kind"], "low_balance");
    assert_eq!(n["status"], "pending");
    assert_eq!(n["attempts"], 0);

    let report = notifier::deliver_due(&stack.state).await.expect("deliver");
    assert!(report.delivered <= 1, "{report:?}");
    let got = sink.wait_for(2).await;
    let mut to: Vec<&str> = got.iter().map(|m| m.envelope_to.as_str()).collect();
    to.sort();
    assert_eq!(to, ["billing@clinic.example", "ops@example.com"]);
    for m in &got {
        assert_eq!(
            m.subject,
            "[Clinic Cloud] Low balance: Tenant nb-low (nb-low)"
        );
        assert_eq!(m.envelope_from, "noreply@medgate.example");
        assert!(m.raw.contains("0.90 CNY"), "{}", m.raw);
        assert!(m.raw.contains("1.00 CNY"), "{}", m.raw);
    }
    let n = when_status(&stack, &t, "delivered").await;
    assert_eq!(n["attempts"], 1);
    assert!(n["delivered_at"].is_string());
    assert_eq!(n["last_error"], Value::Null);
    assert_eq!(n["next_attempt_at"], Value::Null);
    let channels: Vec<&str> = n["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| {
            assert_eq!(c["status"], "delivered");
            c["channel"].as_str().expect("channel")
        })
        .collect();
    assert_eq!(
        channels,
        ["email:billing@clinic.example", "email:ops@example.com"]
    );
    // Delivered is final: nothing is sent again.
    assert_eq!(
        deliver_at(&stack, Utc::now() + Duration::days(30)).await,
        DeliveryReport::default()
    );
    assert_eq!(sink.messages().len(), 2);
    let delivered = listed(&stack, "status=delivered&kind=low_balance").await;
    assert_eq!(delivered.len(), 1);
}

async fn webhook_deliveries_carry_a_valid_signature(stack: Stack) {
    let (url, inbox) = receiver().await;
    stack
        .admin()
        .put(
            "/api/settings",
            json!({ "notification_webhook_url": url, "notification_webhook_secret": SECRET }),
        )
        .await
        .expect(200);
    // No e-mail anywhere: the webhook is the only channel.
    let t = low_balance(&stack, "nb-hook", None).await;
    let id = only(&stack, &t).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let report = deliver_at(&stack, Utc::now() + Duration::days(1)).await;
    assert!(report.delivered <= 1, "{report:?}");
    let n = when_status(&stack, &t, "delivered").await;
    assert_eq!(n["channels"][0]["channel"], "webhook");
    let (headers, body) = {
        let guard = inbox.lock().expect("inbox");
        assert_eq!(guard.len(), 1, "one delivery");
        guard[0].clone()
    };
    assert_eq!(headers["x-medgate-event-id"], id.as_str());
    let sig = headers["x-medgate-signature"].to_str().expect("ascii");
    let t_part: i64 = sig
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("t=");
    assert!((Utc::now().timestamp() - t_part).abs() < 60, "fresh");
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{t_part}.{body}").as_bytes());
    let expected = format!("t={t_part},v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(sig, expected, "signature verifies");
    let json: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["kind"], "low_balance");
    assert_eq!(json["tenant_id"], t.as_str());
    assert_eq!(json["payload"]["balance_minor"], 90);
    assert_eq!(json["payload"]["threshold_minor"], 100);
}

async fn smtp_outage_is_retried_with_backoff_then_delivered(stack: Stack) {
    if !smtp_common::available("smtp_outage_is_retried_with_backoff_then_delivered").await {
        return;
    }
    let port = smtp_common::free_port();
    smtp_to(&stack, port).await;
    let t = low_balance(&stack, "nb-outage", Some("billing@clinic.example")).await;
    let base = Utc::now() + Duration::days(1);

    let r = deliver_at(&stack, base).await;
    assert_eq!(r.retrying, 1, "{r:?}");
    let n = only(&stack, &t).await;
    assert_eq!(n["status"], "pending");
    assert_eq!(n["attempts"], 1);
    assert_eq!(n["max_attempts"], notifier::MAX_ATTEMPTS);
    let error = n["last_error"].as_str().expect("last_error");
    assert!(
        error.contains(&format!(
            "email:billing@clinic.example: the SMTP server 127.0.0.1:{port} could not be reached"
        )),
        "{error}"
    );
    assert_eq!(n["next_attempt_at"], stamp(base + Duration::seconds(30)));
    assert_eq!(n["channels"][0]["status"], "failed");
    assert_eq!(n["channels"][0]["attempts"], 1);

    // Not due before the backoff has passed.
    assert_eq!(
        deliver_at(&stack, base + Duration::seconds(20)).await,
        DeliveryReport::default()
    );
    let second = base + Duration::seconds(31);
    assert_eq!(deliver_at(&stack, second).await.retrying, 1);
    let n = only(&stack, &t).await;
    assert_eq!(n["attempts"], 2);
    assert_eq!(
        n["next_attempt_at"],
        stamp(second + Duration::seconds(60)),
        "doubled"
    );

    // The server comes up: the next attempt delivers.
    let sink = SmtpSink::start(port, &stack.data_dir.path().join("mail"), None).await;
    let r = deliver_at(&stack, second + Duration::seconds(61)).await;
    assert_eq!(r.delivered, 1, "{r:?}");
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope_to, "billing@clinic.example");
    let n = only(&stack, &t).await;
    assert_eq!(n["status"], "delivered");
    assert_eq!(n["attempts"], 3);
    assert_eq!(n["last_error"], Value::Null);
    assert_eq!(n["channels"][0]["status"], "delivered");
    assert_eq!(n["channels"][0]["attempts"], 3);
}

async fn exhausted_attempts_fail_visibly_and_can_be_retried(stack: Stack) {
    // No SMTP settings yet: every attempt fails, saying why.
    let t = low_balance(&stack, "nb-fail", Some("billing@clinic.example")).await;
    let lonely = low_balance(&stack, "nb-nobody", None).await;
    let mut at = Utc::now() + Duration::days(1);
    for attempt in 1..=notifier::MAX_ATTEMPTS {
        let r = deliver_at(&stack, at).await;
        assert_eq!(r.attempted, 2, "attempt {attempt}: {r:?}");
        at += Duration::hours(2);
    }
    let n = only(&stack, &t).await;
    assert_eq!(n["status"], "failed", "{n}");
    assert_eq!(n["attempts"], notifier::MAX_ATTEMPTS);
    assert_eq!(n["next_attempt_at"], Value::Null);
    assert!(
        n["last_error"]
            .as_str()
            .expect("error")
            .contains("SMTP is not configured"),
        "{n}"
    );
    let nobody = only(&stack, &lonely).await;
    assert_eq!(nobody["status"], "failed");
    assert!(
        nobody["last_error"]
            .as_str()
            .expect("error")
            .starts_with("no recipient"),
        "{nobody}"
    );
    // Failed is not retried on its own, and stays listed.
    assert_eq!(deliver_at(&stack, at).await, DeliveryReport::default());
    let failed = listed(&stack, "status=failed").await;
    assert_eq!(failed.len(), 2);

    // Roles and bad queries.
    let auditor = stack.as_role(Role::Auditor, None);
    auditor.get("/api/notifications").await.expect(200);
    let id = n["id"].as_str().expect("id").to_owned();
    let retry = format!("/api/notifications/{id}/retry");
    assert_eq!(auditor.post(&retry, Value::Null).await.status, 403);
    let tenant_admin = stack.as_role(Role::TenantAdmin, Some(&t));
    assert_eq!(tenant_admin.get("/api/notifications").await.status, 403);
    let admin = stack.admin();
    admin
        .get("/api/notifications?status=lost")
        .await
        .expect(422);
    admin
        .get("/api/notifications?page_size=0")
        .await
        .expect(422);
    admin.get("/api/notifications?colour=red").await.expect(400);
    admin
        .post("/api/notifications/ntf_nope/retry", Value::Null)
        .await
        .expect(404);

    // A manual retry queues it again with a fresh series of attempts (SMTP is fixed first:
    // the retried row is due at once, so the background loop may be the one sending it).
    let sink = if smtp_common::available("exhausted_attempts_fail_visibly_and_can_be_retried").await
    {
        let sink = SmtpSink::start(0, &stack.data_dir.path().join("mail"), None).await;
        smtp_to(&stack, sink.port).await;
        Some(sink)
    } else {
        None
    };
    let r = admin.post(&retry, Value::Null).await.expect(200);
    assert_eq!(r.json["status"], "pending");
    assert_eq!(r.json["attempts"], 0);
    assert!(
        r.json["last_error"].is_string(),
        "the last error stays visible"
    );
    if let Some(sink) = sink {
        let r = deliver_at(&stack, at).await;
        assert!(r.delivered <= 1, "{r:?}");
        assert_eq!(
            sink.wait_for(1).await[0].envelope_to,
            "billing@clinic.example"
        );
        let n = when_status(&stack, &t, "delivered").await;
        assert_eq!(n["attempts"], 1);
        let r = admin.post(&retry, Value::Null).await.expect(409);
        assert_eq!(r.error_code(), "already_delivered");
        assert_eq!(sink.messages().len(), 1);
    }
    let (total, audit) = {
        let r = admin
            .get("/api/audit-logs?action=notifications.retry")
            .await
            .expect(200);
        (r.json["total"].as_u64().expect("total"), r.text)
    };
    assert!(total >= 3, "{audit}");
}

/// `n` usage rows of `tenant` at `status`, just now.
async fn usage(stack: &Stack, tenant: &str, status: u16, n: usize) {
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "request_id": format!("ntf-{tenant}-{status}-{i}"),
                "tenant_id": tenant,
                "api_key_id": null, "key_prefix": null,
                "requested_model": "fast", "model_id": "mdl_1", "model_name": "gpt-4o",
                "endpoint": "chat", "input_tokens": 10, "output_tokens": 5,
                "status": status, "latency_ms": 100, "ttft_ms": null,
                "streamed": false, "usage_reported": true, "occurred_at": at
            })
        })
        .collect();
    stack
        .as_role(Role::Node, None)
        .post("/api/internal/usage", json!({ "events": events }))
        .await
        .expect(200);
}

async fn alert_emails_go_through_the_notifier(stack: Stack) {
    if !smtp_common::available("alert_emails_go_through_the_notifier").await {
        return;
    }
    let sink = SmtpSink::start(0, &stack.data_dir.path().join("mail"), None).await;
    smtp_to(&stack, sink.port).await;
    let rule = stack
        .admin()
        .post(
            "/api/alerts",
            json!({ "name": "errors", "metric": "error_rate", "threshold": 0.5,
                    "window_secs": 300, "min_requests": 4,
                    "emails": ["oncall@example.com", "lead@example.com"] }),
        )
        .await
        .expect(201);
    let rule_id = common::id(&rule.json);
    usage(&stack, "tnt_alerts", 500, 4).await;
    let mut s = alerts::evaluate_once(&stack.state).await.expect("evaluate");
    s.wait_for_deliveries().await;
    assert_eq!(s.fired, 1);
    let detail = stack
        .admin()
        .get(&format!("/api/alerts/{rule_id}"))
        .await
        .expect(200)
        .json;
    let deliveries = detail["history"][0]["deliveries"]
        .as_array()
        .expect("deliveries");
    assert!(
        deliveries.iter().all(|d| d["outcome"] == "queued"),
        "{deliveries:?}"
    );
    let queued = listed(&stack, "kind=alert").await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["payload"]["state"], "firing");

    notifier::deliver_due(&stack.state).await.expect("deliver");
    let got = sink.wait_for(2).await;
    let mut to: Vec<&str> = got.iter().map(|m| m.envelope_to.as_str()).collect();
    to.sort();
    assert_eq!(to, ["lead@example.com", "oncall@example.com"]);
    assert_eq!(got[0].subject, "[medgate] Alert firing: errors");
    assert!(got[0].raw.contains("error_rate"), "{}", got[0].raw);
    let detail = stack
        .admin()
        .get(&format!("/api/alerts/{rule_id}"))
        .await
        .expect(200)
        .json;
    let deliveries = detail["history"][0]["deliveries"]
        .as_array()
        .expect("deliveries");
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    for d in deliveries {
        assert_eq!(d["outcome"], "delivered", "{d}");
        assert_eq!(d["attempts"], 1);
    }
    assert_eq!(listed(&stack, "kind=alert&status=delivered").await.len(), 1);
}

async fn concurrent_senders_never_send_twice(stack: Stack) {
    if !smtp_common::available("concurrent_senders_never_send_twice").await {
        return;
    }
    let sink = SmtpSink::start(0, &stack.data_dir.path().join("mail"), None).await;
    smtp_to(&stack, sink.port).await;
    let mut tenants = Vec::new();
    for i in 0..6 {
        let code = format!("nb-race-{i}");
        let email = format!("billing{i}@clinic.example");
        tenants.push(low_balance(&stack, &code, Some(&email)).await);
    }
    // Four "control planes" (same store) deliver at once.
    let at = Utc::now() + Duration::days(1);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let state = stack.state.clone();
            tokio::spawn(async move { notifier::deliver_due_at(&state, at).await })
        })
        .collect();
    let mut delivered = 0;
    for task in tasks {
        delivered += task.await.expect("task").expect("deliver").delivered;
    }
    assert!(delivered <= 6, "{delivered}");
    let got = sink.wait_for(6).await;
    // Give a straggler time to show up, then count again.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let got_after = sink.messages();
    assert_eq!(got.len(), 6);
    assert_eq!(got_after.len(), 6, "each notification sent once");
    for t in &tenants {
        let n = when_status(&stack, t, "delivered").await;
        assert_eq!(n["attempts"], 1);
    }
}
