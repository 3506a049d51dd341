//! Control plane and proxy together, as `medgate serve` runs them: configuration changes reach
//! the data plane within about a second, a snapshot swap under load fails no request, a
//! control-plane outage neither stops traffic nor loses (or doubles) a usage event, and the
//! proxy's access log and heartbeats reach the gateway endpoints.

mod world;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use world::{call, infer, time_until_refused, world, ControlPlane, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_changes_reach_the_proxy_within_a_second() {
    let w = world().await;
    assert_eq!(infer(&w).await.0, 200);
    let admin = |m, path: String, body| {
        let url = format!("{}{path}", w.api_url);
        let token = w.admin.clone();
        async move { call(m, &url, &token, body).await }
    };

    let (s, _) = admin(
        reqwest::Method::POST,
        format!("/api/models/{}/toggle", w.model_id),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let model_off = time_until_refused(&w, "model_disabled").await;
    admin(
        reqwest::Method::POST,
        format!("/api/models/{}/toggle", w.model_id),
        None,
    )
    .await;
    while infer(&w).await.0 != 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (s, _) = admin(
        reqwest::Method::POST,
        format!("/api/tenants/{}/suspend", w.tenant),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let suspended = time_until_refused(&w, "tenant_suspended").await;
    admin(
        reqwest::Method::POST,
        format!("/api/tenants/{}/activate", w.tenant),
        None,
    )
    .await;
    while infer(&w).await.0 != 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (s, _) = admin(
        reqwest::Method::DELETE,
        format!("/api/api-keys/{}", w.key_id),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let revoked = time_until_refused(&w, "invalid_api_key").await;

    eprintln!("propagation: model disabled {model_off:?}, tenant suspended {suspended:?}, key revoked {revoked:?}");
    // The design budget is 1 s; allow slack for a loaded CI machine, the figure is printed.
    for d in [model_off, suspended, revoked] {
        assert!(d < Duration::from_secs(2), "{d:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_requests_across_snapshot_swaps_never_fail() {
    let w = world().await;
    let swaps = {
        let url = w.api_url.clone();
        let admin = w.admin.clone();
        tokio::spawn(async move {
            let mut n = 0;
            for i in 0..40 {
                let (s, _) = call(
                    reqwest::Method::POST,
                    &format!("{url}/api/tenants"),
                    &admin,
                    Some(json!({ "name": format!("Other {i}"), "code": format!("other-{i}") })),
                )
                .await;
                assert_eq!(s, 201);
                n += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            n
        })
    };
    let client = reqwest::Client::new();
    let body = json!({ "model": "echo", "messages": [{ "role": "user", "content": "ping" }] });
    let mut failures = 0;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..64 {
        let (client, url, key, body) = (
            client.clone(),
            w.proxy_url.clone(),
            w.key.clone(),
            body.clone(),
        );
        tasks.spawn(async move {
            let mut failed = 0;
            for _ in 0..(10_000 / 64 + usize::from(worker < 10_000 % 64)) {
                let r = client
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await;
                if !r.is_ok_and(|r| r.status().is_success()) {
                    failed += 1;
                }
            }
            failed
        });
    }
    while let Some(r) = tasks.join_next().await {
        failures += r.expect("task");
    }
    let swapped = swaps.await.expect("swaps");
    assert_eq!(swapped, 40);
    assert_eq!(failures, 0, "no request fails because of a swap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_plane_outage_keeps_traffic_and_loses_no_usage() {
    let mut w = world().await;
    for _ in 0..5 {
        assert_eq!(infer(&w).await.0, 200);
    }
    w.cp.take().expect("cp").kill().await;
    for _ in 0..20 {
        assert_eq!(
            infer(&w).await.0,
            200,
            "the proxy serves from its last snapshot"
        );
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let spool =
        std::fs::read_to_string(w.settings.data_dir.join("usage-spool.jsonl")).unwrap_or_default();
    assert!(
        spool.lines().count() >= 20,
        "usage spooled while the control plane is down"
    );

    w.cp = Some(ControlPlane::start(&w.settings, w.api).await);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, page) = call(
            reqwest::Method::GET,
            &format!("{}/api/inference/history?page_size=100", w.api_url),
            &w.admin,
            None,
        )
        .await;
        assert_eq!(s, 200);
        let total = page["total"].as_u64().expect("total");
        if total == 25 {
            break;
        }
        assert!(total < 25, "an event was counted twice: {total}");
        assert!(
            Instant::now() < deadline,
            "spooled events not delivered: {total} of 25"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Replays stay idempotent: give the sink another round, the count does not move.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, page) = call(
        reqwest::Method::GET,
        &format!("{}/api/inference/history", w.api_url),
        &w.admin,
        None,
    )
    .await;
    assert_eq!(page["total"], 25);
}

/// Polls `GET {path}` as the admin until `done` accepts the body (10 s at most).
async fn eventually(w: &World, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, body) = call(
            reqwest::Method::GET,
            &format!("{}{path}", w.api_url),
            &w.admin,
            None,
        )
        .await;
        assert_eq!(s, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("items")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn access_logs_and_gateway_status_reflect_the_proxy() {
    let w = world().await;
    let instance = w.proxy.as_ref().expect("proxy").instance.id.clone();
    let chat = json!({ "model": "echo", "messages": [{ "role": "user", "content": "ping" }] });
    let leaky = format!("{}/v1/chat/completions?secret=abc", w.proxy_url);
    let (s, _) = call(reqwest::Method::POST, &leaky, &w.key, Some(chat.clone())).await;
    assert_eq!(s, 200);
    let (s, _) = call(reqwest::Method::POST, &leaky, "mg_bad", Some(chat.clone())).await;
    assert_eq!(s, 401);
    let (s, _) = call(
        reqwest::Method::GET,
        &format!("{}/api/tenants?secret=abc", w.proxy_url),
        &w.admin,
        None,
    )
    .await;
    assert_eq!(s, 400, "unknown query parameter, still logged");

    let page = eventually(&w, "/api/access-logs?page_size=100", "3 entries", |p| {
        p["total"].as_u64() >= Some(3)
    })
    .await;
    assert!(!page.to_string().contains("secret"), "{page}");
    let find = |route: &str, status: u16| {
        items(&page)
            .iter()
            .find(|e| e["route"] == route && e["status"] == status)
            .unwrap_or_else(|| panic!("{route} {status} in {page}"))
    };
    let ok = find("inference", 200);
    assert_eq!(ok["path"], "/v1/chat/completions");
    assert_eq!(ok["method"], "POST");
    assert_eq!(ok["tenant_id"], json!(w.tenant));
    assert_eq!(ok["instance_id"], json!(instance));
    assert!(ok["bytes_sent"].as_u64() > Some(0));
    assert!(ok["upstream"]
        .as_str()
        .is_some_and(|u| u.starts_with("http://127.0.0.1:")));
    assert!(ok["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert_eq!(find("inference", 401)["tenant_id"], Value::Null);
    assert_eq!(find("management", 400)["path"], "/api/tenants");
    let own = eventually(
        &w,
        &format!("/api/access-logs/{}", w.tenant),
        "tenant list",
        |p| p["total"] == 1,
    )
    .await;
    assert_eq!(items(&own)[0]["status"], 200);

    let status = eventually(&w, "/api/gateway/status", "proxy reports in", |s| {
        s["instances"].as_array().is_some_and(|l| {
            l.iter()
                .any(|i| i["applied_version"] == s["snapshot_version"])
        })
    })
    .await;
    let me = &status["instances"][0];
    assert_eq!(me["instance_id"], json!(instance));
    assert_eq!(
        me["address"],
        json!(w.proxy_url.trim_start_matches("http://"))
    );
    assert_eq!(me["stale"], false);

    // Reload: the proxy fetches the new version and says so within the wait.
    let (s, reload) = call(
        reqwest::Method::POST,
        &format!("{}/api/gateway/reload", w.api_url),
        &w.admin,
        None,
    )
    .await;
    assert_eq!(s, 200, "{reload}");
    assert_eq!(reload["complete"], true, "{reload}");
    assert_eq!(reload["applied"][0]["instance_id"], json!(instance));
    assert_eq!(
        reload["applied"][0]["applied_version"],
        reload["target_version"]
    );

    // The proxy honors the sampling rate: with 0, successes go unlogged, errors still do.
    let (s, config) = call(
        reqwest::Method::PUT,
        &format!("{}/api/gateway/config", w.api_url),
        &w.admin,
        Some(json!({ "access_log_sample_rate": 0.0 })),
    )
    .await;
    assert_eq!(s, 200, "{config}");
    eventually(&w, "/api/gateway/status", "config applied", |s| {
        s["instances"][0]["applied_version"] == s["snapshot_version"]
    })
    .await;
    let before = page["total"].as_u64().expect("total");
    let (s, _) = call(reqwest::Method::POST, &leaky, &w.key, Some(chat.clone())).await;
    assert_eq!(s, 200);
    let (s, _) = call(reqwest::Method::POST, &leaky, "mg_bad", Some(chat)).await;
    assert_eq!(s, 401);
    let after = eventually(&w, "/api/access-logs?page_size=100", "the error", |p| {
        p["total"].as_u64() > Some(before)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, after_wait) = call(
        reqwest::Method::GET,
        &format!("{}/api/access-logs?page_size=100", w.api_url),
        &w.admin,
        None,
    )
    .await;
    assert_eq!(after_wait["total"], after["total"]);
    let new: Vec<&Value> = items(&after_wait)
        .iter()
        .filter(|e| e["route"] == "inference")
        .collect();
    assert_eq!(
        new.iter().filter(|e| e["status"] == 200).count(),
        1,
        "the second success was sampled out"
    );
    assert_eq!(new.iter().filter(|e| e["status"] == 401).count(), 2);

    let (_, health) = call(
        reqwest::Method::GET,
        &format!("{}/api/health", w.api_url),
        &w.admin,
        None,
    )
    .await;
    assert_eq!(health["proxy"]["status"], "ok");
}
