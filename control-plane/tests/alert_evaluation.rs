//! Alert evaluation (API §6.4, resilience.md §5.1 item 13 and §5.7 item 8): transitions happen
//! exactly once, even with concurrent evaluators, and each is notified exactly once with a
//! valid signature; outcomes land in the history. Evaluation is driven with `evaluate_once`,
//! never by waiting for the background interval.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use medgate_control_plane::alerts::{self, EvaluationSummary};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Client, Stack};
use serde_json::{json, Value};

both_backends!(
    error_rate_fires_once_notifies_once_and_resolves_once,
    concurrent_evaluations_make_one_transition,
    breaker_open_fires_from_a_heartbeat,
    tenant_rules_read_only_their_tenant,
    rate_limit_rejections_fire_on_the_increase,
    failed_deliveries_are_recorded_and_email_waits_for_smtp,
    disabling_a_firing_rule_resolves_it,
);

const SECRET: &str = "whsec-0123456789abcdef";

/// What the test webhook receiver got: (headers, raw body).
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A webhook receiver on 127.0.0.1:0 answering `status`; returns its URL and its inbox.
async fn receiver(status: StatusCode) -> (String, Received) {
    let inbox: Received = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State((inbox, status)): State<(Received, StatusCode)>,
                 headers: HeaderMap,
                 body: String| async move {
                    inbox.lock().expect("inbox").push((headers, body));
                    status
                },
            ),
        )
        .with_state((inbox.clone(), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), inbox)
}

fn received(inbox: &Received) -> Vec<(HeaderMap, Value)> {
    inbox
        .lock()
        .expect("inbox")
        .iter()
        .map(|(h, b)| (h.clone(), serde_json::from_str(b).expect("JSON body")))
        .collect()
}

/// Checks `X-Medgate-Signature` of one delivery against its raw body.
fn assert_signed(inbox: &Received, index: usize) {
    let guard = inbox.lock().expect("inbox");
    let (headers, body) = &guard[index];
    let sig = headers["x-medgate-signature"].to_str().expect("ascii");
    let t: i64 = sig
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("t=");
    let now = chrono::Utc::now().timestamp();
    assert!((now - t).abs() < 60, "fresh timestamp");
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{t}.{body}").as_bytes());
    let expected = format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(sig, expected, "signature verifies");
    assert!(headers["x-medgate-event-id"]
        .to_str()
        .expect("ascii")
        .starts_with("evt_"));
}

fn node(stack: &Stack) -> Client {
    stack.as_role(Role::Node, None)
}

/// `n` usage rows of `tenant` at `status`, just now.
async fn usage(stack: &Stack, tenant: &str, status: u16, n: usize, latency_ms: u64) {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let events: Vec<Value> = (0..n)
        .map(|_| {
            json!({
                "request_id": uuid_like(),
                "tenant_id": tenant,
                "api_key_id": null, "key_prefix": null,
                "requested_model": "fast", "model_id": "mdl_1", "model_name": "gpt-4o",
                "endpoint": "chat", "input_tokens": 10, "output_tokens": 5,
                "status": status, "latency_ms": latency_ms, "ttft_ms": null,
                "streamed": false, "usage_reported": true, "occurred_at": at
            })
        })
        .collect();
    node(stack)
        .post("/api/internal/usage", json!({ "events": events }))
        .await
        .expect(200);
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "req-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn evaluate(stack: &Stack) -> EvaluationSummary {
    let mut s = alerts::evaluate_once(&stack.state).await.expect("evaluate");
    s.wait_for_deliveries().await;
    s
}

async fn detail(stack: &Stack, id: &str) -> Value {
    stack
        .admin()
        .get(&format!("/api/alerts/{id}"))
        .await
        .expect(200)
        .json
}

async fn create(client: &Client, body: Value) -> String {
    let r = client.post("/api/alerts", body).await.expect(201);
    common::id(&r.json)
}

fn error_rule(url: &str) -> Value {
    json!({
        "name": "errors", "metric": "error_rate", "threshold": 0.5, "window_secs": 300,
        "min_requests": 4, "webhook_url": url, "webhook_secret": SECRET
    })
}

async fn heartbeat(stack: &Stack, instance: &str, extra: Value) {
    let mut beat = json!({
        "instance_id": instance, "address": "127.0.0.1:8080", "snapshot_version": null,
        "started_at": "2026-03-01T10:00:00Z", "requests_total": 10, "requests_per_sec": 1.0
    });
    for (k, v) in extra.as_object().expect("object") {
        beat[k] = v.clone();
    }
    node(stack)
        .post("/api/internal/heartbeat", beat)
        .await
        .expect(200);
}

async fn error_rate_fires_once_notifies_once_and_resolves_once(stack: Stack) {
    let (url, inbox) = receiver(StatusCode::OK).await;
    let id = create(&stack.admin(), error_rule(&url)).await;

    // Below min_requests nothing fires, whatever the rate.
    usage(&stack, "tnt_a", 503, 3, 100).await;
    assert_eq!(evaluate(&stack).await.transitions(), 0);
    assert_eq!(detail(&stack, &id).await["state"], "ok");

    usage(&stack, "tnt_a", 500, 3, 100).await;
    usage(&stack, "tnt_a", 200, 2, 100).await;
    let mut fired = 0;
    for _ in 0..4 {
        fired += evaluate(&stack).await.fired;
    }
    assert_eq!(fired, 1, "fires exactly once over several evaluations");
    let d = detail(&stack, &id).await;
    assert_eq!(d["state"], "firing");
    assert_eq!(d["last_value"], 0.75);
    assert!(d["since"].is_string());
    let history = d["history"].as_array().expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["kind"], "fired");
    assert_eq!(history[0]["deliveries"][0]["channel"], "webhook");
    assert_eq!(history[0]["deliveries"][0]["outcome"], "delivered");
    assert_eq!(history[0]["deliveries"][0]["attempts"], 1);

    let got = received(&inbox);
    assert_eq!(got.len(), 1, "one notification");
    let body = &got[0].1;
    assert_eq!(body["alert_id"], id.as_str());
    assert_eq!(body["name"], "errors");
    assert_eq!(body["tenant_id"], Value::Null);
    assert_eq!(body["metric"], "error_rate");
    assert_eq!(body["state"], "firing");
    assert_eq!(body["value"], 0.75);
    assert_eq!(body["threshold"], 0.5);
    assert!(body["at"].is_string());
    assert_signed(&inbox, 0);
    assert_eq!(
        got[0].0["x-medgate-event-id"].to_str().expect("ascii"),
        history[0]["event_id"].as_str().expect("event id")
    );

    // The errors stop: successes bring the rate under the threshold.
    usage(&stack, "tnt_a", 200, 20, 100).await;
    let mut resolved = 0;
    for _ in 0..3 {
        resolved += evaluate(&stack).await.resolved;
    }
    assert_eq!(resolved, 1, "resolves exactly once");
    let got = received(&inbox);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].1["state"], "resolved");
    assert_signed(&inbox, 1);
    let d = detail(&stack, &id).await;
    assert_eq!(d["state"], "ok");
    let kinds: Vec<&str> = d["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["resolved", "fired"], "newest first");

    // Later, the rows age out of the window: still ok, nothing sent.
    let later = chrono::Utc::now() + chrono::Duration::seconds(600);
    let s = alerts::evaluate_at(&stack.state, later)
        .await
        .expect("eval");
    assert_eq!(s.transitions(), 0);
    assert_eq!(received(&inbox).len(), 2);
}

async fn concurrent_evaluations_make_one_transition(stack: Stack) {
    let (url, inbox) = receiver(StatusCode::OK).await;
    let id = create(&stack.admin(), error_rule(&url)).await;
    usage(&stack, "tnt_a", 502, 10, 100).await;
    for round in 0..3 {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let state = stack.state.clone();
                tokio::spawn(async move {
                    let mut s = alerts::evaluate_once(&state).await.expect("evaluate");
                    s.wait_for_deliveries().await;
                    s.fired
                })
            })
            .collect();
        let mut fired = 0;
        for t in tasks {
            fired += t.await.expect("task");
        }
        assert!(fired <= 1, "round {round}: {fired} transitions");
    }
    let d = detail(&stack, &id).await;
    assert_eq!(d["state"], "firing");
    assert_eq!(d["history"].as_array().expect("history").len(), 1);
    assert_eq!(received(&inbox).len(), 1, "one notification");
}

async fn breaker_open_fires_from_a_heartbeat(stack: Stack) {
    let id = create(
        &stack.admin(),
        json!({ "name": "brk", "metric": "breaker_open", "threshold": 1, "breaker_id": "brk_1" }),
    )
    .await;
    let breaker = |id: &str, state: &str| {
        json!({
            "breaker_id": id, "tenant_id": null, "state": state,
            "since": "2026-03-01T10:00:00Z", "next_retry_at": null, "times_opened": 1,
            "window_calls": 10, "window_failures": 6
        })
    };
    heartbeat(
        &stack,
        "inst-a",
        json!({ "breakers": [breaker("brk_2", "open")] }),
    )
    .await;
    assert_eq!(evaluate(&stack).await.fired, 0, "another breaker");
    heartbeat(
        &stack,
        "inst-a",
        json!({ "breakers": [breaker("brk_1", "open")] }),
    )
    .await;
    assert_eq!(evaluate(&stack).await.fired, 1);
    assert_eq!(evaluate(&stack).await.fired, 0);
    let d = detail(&stack, &id).await;
    assert_eq!(d["state"], "firing");
    assert_eq!(d["last_value"], 1.0);
    heartbeat(
        &stack,
        "inst-a",
        json!({ "breakers": [breaker("brk_1", "half_open")] }),
    )
    .await;
    assert_eq!(evaluate(&stack).await.resolved, 1);
}

async fn tenant_rules_read_only_their_tenant(stack: Stack) {
    let a = common::tenant(&stack, "alpha", None).await;
    let b = common::tenant(&stack, "beta", None).await;
    let mut body = error_rule("https://hooks.example.com/x");
    body.as_object_mut().expect("object").remove("webhook_url");
    let rule_a = create(&stack.as_role(Role::TenantAdmin, Some(&a)), body.clone()).await;
    let rule_b = create(&stack.as_role(Role::TenantAdmin, Some(&b)), body).await;
    usage(&stack, &b, 500, 10, 100).await;
    usage(&stack, &a, 200, 10, 100).await;
    let s = evaluate(&stack).await;
    assert_eq!(s.fired, 1);
    assert_eq!(detail(&stack, &rule_b).await["state"], "firing");
    assert_eq!(
        detail(&stack, &rule_a).await["state"],
        "ok",
        "B's errors are not A's"
    );
    // A's admin never sees B's alert.
    let admin_a = stack.as_role(Role::TenantAdmin, Some(&a));
    admin_a
        .get(&format!("/api/alerts/{rule_b}"))
        .await
        .expect(404);
    let list = admin_a.get("/api/alerts").await.expect(200);
    assert_eq!(list.json["total"], 1);
    assert_eq!(list.json["items"][0]["state"], "ok");
}

async fn rate_limit_rejections_fire_on_the_increase(stack: Stack) {
    let id = create(
        &stack.admin(),
        json!({ "name": "rl", "metric": "rate_limit_rejections", "threshold": 10,
                "window_secs": 60 }),
    )
    .await;
    heartbeat(&stack, "inst-a", json!({ "rate_limited_total": 100 })).await;
    assert_eq!(
        evaluate(&stack).await.fired,
        0,
        "a total alone is no increase"
    );
    heartbeat(&stack, "inst-a", json!({ "rate_limited_total": 105 })).await;
    assert_eq!(evaluate(&stack).await.fired, 0, "+5");
    heartbeat(&stack, "inst-a", json!({ "rate_limited_total": 112 })).await;
    assert_eq!(evaluate(&stack).await.fired, 1, "+12 over the window");
    assert_eq!(detail(&stack, &id).await["last_value"], 12.0);
}

async fn failed_deliveries_are_recorded_and_email_waits_for_smtp(stack: Stack) {
    let (url, inbox) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let mut body = error_rule(&url);
    body["emails"] = json!(["ops@example.com"]);
    let id = create(&stack.admin(), body).await;
    usage(&stack, "tnt_a", 500, 10, 100).await;
    assert_eq!(evaluate(&stack).await.fired, 1);
    assert_eq!(received(&inbox).len(), 3, "three attempts");
    let d = detail(&stack, &id).await;
    let deliveries = d["history"][0]["deliveries"]
        .as_array()
        .expect("deliveries");
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert_eq!(deliveries[0]["channel"], "email:ops@example.com");
    assert_eq!(deliveries[0]["outcome"], "queued");
    assert_eq!(deliveries[1]["channel"], "webhook");
    assert_eq!(
        deliveries[1]["outcome"], "retrying",
        "handed to the notifier"
    );
    assert_eq!(deliveries[1]["attempts"], 3);
    assert_eq!(deliveries[1]["status_code"], 500);

    // The notifier retries it (after its backoff) to the rule's webhook in force: the
    // receiver was fixed meanwhile. Same event id, signed, counted after the first three.
    let (good_url, good_inbox) = receiver(StatusCode::OK).await;
    let mut fixed = error_rule(&good_url);
    fixed["emails"] = json!(["ops@example.com"]);
    stack
        .admin()
        .put(&format!("/api/alerts/{id}"), fixed)
        .await
        .expect(200);
    let later = chrono::Utc::now() + chrono::Duration::minutes(2);
    medgate_control_plane::notifier::deliver_due_at(&stack.state, later)
        .await
        .expect("notifier pass");
    assert_eq!(
        received(&good_inbox).len(),
        1,
        "delivered once by the notifier"
    );
    assert_signed(&good_inbox, 0);
    let first_id = received(&inbox)[0].0["x-medgate-event-id"].clone();
    assert_eq!(received(&good_inbox)[0].0["x-medgate-event-id"], first_id);
    assert_eq!(received(&good_inbox)[0].1["alert_id"], id.as_str());
    let d = detail(&stack, &id).await;
    let webhook = d["history"][0]["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .find(|x| x["channel"] == "webhook")
        .cloned()
        .expect("webhook delivery");
    assert_eq!(webhook["outcome"], "delivered", "{webhook}");
    assert_eq!(webhook["attempts"], 4);
}

async fn disabling_a_firing_rule_resolves_it(stack: Stack) {
    let mut body = json!({ "name": "p99", "metric": "p99_latency_ms", "threshold": 1000 });
    let id = create(&stack.admin(), body.clone()).await;
    usage(&stack, "tnt_a", 200, 99, 100).await;
    usage(&stack, "tnt_a", 200, 2, 5000).await;
    assert_eq!(
        evaluate(&stack).await.fired,
        1,
        "p99 of 101 rows is the 100th"
    );
    assert_eq!(detail(&stack, &id).await["last_value"], 5000.0);
    body["enabled"] = json!(false);
    stack
        .admin()
        .put(&format!("/api/alerts/{id}"), body)
        .await
        .expect(200);
    assert_eq!(evaluate(&stack).await.resolved, 1);
    assert_eq!(
        evaluate(&stack).await.evaluated,
        0,
        "disabled and ok: skipped"
    );
    assert_eq!(detail(&stack, &id).await["state"], "ok");
}
