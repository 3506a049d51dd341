//! Gateway operations (API §7.4): the gateway configuration (validated, round-tripped into the
//! snapshot, platform-only), proxy heartbeats and `GET /api/gateway/status` with its stale
//! flag, `POST /api/gateway/reload`, the proxy component of `/api/health`, and the control
//! plane's `/metrics`.

mod common;

use std::time::Duration;

use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Client, Stack};
use serde_json::{json, Value};

both_backends!(
    gateway_config_has_defaults_validates_and_reaches_the_snapshot,
    gateway_config_is_platform_only,
    heartbeats_upsert_instances_and_status_flags_stale_ones,
    heartbeats_are_validated_and_not_audited,
    reload_bumps_the_version_and_reports_which_instances_applied_it,
    health_reports_proxies_by_their_heartbeats,
    metrics_are_public_prometheus_text,
);

fn node(stack: &Stack) -> Client {
    stack.as_role(Role::Node, None)
}

fn beat(instance: &str, version: Option<u64>, total: u64) -> Value {
    json!({
        "instance_id": instance,
        "address": "127.0.0.1:8080",
        "snapshot_version": version,
        "started_at": "2026-03-01T10:00:00Z",
        "requests_total": total,
        "requests_per_sec": 12.5
    })
}

async fn status(stack: &Stack) -> Value {
    stack
        .admin()
        .get("/api/gateway/status")
        .await
        .expect(200)
        .json
}

fn instance<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|i| i["instance_id"] == id)
        .unwrap_or_else(|| panic!("instance {id} in {status}"))
}

/// Makes an instance look silent since `at` (as if its proxy had died).
async fn silence(stack: &Stack, id: &str, at: &str) {
    let mut tx = stack.state.store().begin().await.expect("tx");
    sqlx::query("UPDATE proxy_instances SET last_heartbeat_at = $1 WHERE instance_id = $2")
        .bind(at.to_owned())
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await
        .expect("update");
    tx.commit().await.expect("commit");
}

async fn gateway_config_has_defaults_validates_and_reaches_the_snapshot(stack: Stack) {
    let admin = stack.admin();
    let got = admin.get("/api/gateway/config").await.expect(200);
    assert_eq!(got.json["max_body_bytes"], 10 * 1024 * 1024);
    assert_eq!(got.json["access_log_sample_rate"], 1.0);
    assert_eq!(got.json["upstream_connect_timeout_ms"], 5000);
    assert_eq!(got.json["upstream_read_timeout_ms"], 60000);
    assert_eq!(got.json["updated_at"], Value::Null);

    for (body, field) in [
        (json!({ "max_body_bytes": 1023 }), "max_body_bytes"),
        (
            json!({ "max_body_bytes": 100 * 1024 * 1024 + 1 }),
            "max_body_bytes",
        ),
        (
            json!({ "access_log_sample_rate": 1.5 }),
            "access_log_sample_rate",
        ),
        (
            json!({ "access_log_sample_rate": -0.1 }),
            "access_log_sample_rate",
        ),
        (
            json!({ "upstream_connect_timeout_ms": 0 }),
            "upstream_connect_timeout_ms",
        ),
        (
            json!({ "upstream_read_timeout_ms": 3_600_001 }),
            "upstream_read_timeout_ms",
        ),
    ] {
        let r = admin
            .put("/api/gateway/config", body.clone())
            .await
            .expect(422);
        assert_eq!(r.json["error"]["details"]["field"], field, "{body}");
    }
    let r = admin
        .put("/api/gateway/config", json!({ "listeners": [] }))
        .await
        .expect(422);
    assert_eq!(r.error_code(), "invalid_body", "unknown fields are refused");
    admin
        .put("/api/gateway/config", json!({ "max_body_bytes": "big" }))
        .await
        .expect(422);

    let before = common::snapshot(&stack).await.version;
    let put = admin
        .put(
            "/api/gateway/config",
            json!({ "max_body_bytes": 2_097_152, "access_log_sample_rate": 0.25 }),
        )
        .await
        .expect(200);
    assert_eq!(put.json["max_body_bytes"], 2_097_152);
    assert!(put.json["updated_at"].is_string());
    let put = admin
        .put(
            "/api/gateway/config",
            json!({ "upstream_read_timeout_ms": 30_000 }),
        )
        .await
        .expect(200);
    assert_eq!(
        put.json["access_log_sample_rate"], 0.25,
        "omitted fields keep their value"
    );
    let got = admin.get("/api/gateway/config").await.expect(200);
    assert_eq!(got.json, put.json);

    let snapshot = common::snapshot(&stack).await;
    assert_eq!(
        snapshot.version,
        before + 2,
        "each change bumps the version"
    );
    assert_eq!(snapshot.gateway.max_body_bytes, 2_097_152);
    assert_eq!(snapshot.gateway.access_log_sample_rate, 0.25);
    assert_eq!(snapshot.gateway.upstream_read_timeout_ms, 30_000);
    assert_eq!(snapshot.gateway.upstream_connect_timeout_ms, 5_000);

    let audit = admin
        .get("/api/audit-logs?action=gateway.update_config")
        .await
        .expect(200);
    assert_eq!(audit.json["total"], 10, "changes and refusals are audited");
    let last = &audit.json["items"][0];
    assert_eq!(last["outcome"], "success");
    assert_eq!(
        common::audit_details(last)["upstream_read_timeout_ms"],
        30_000
    );
}

async fn gateway_config_is_platform_only(stack: Stack) {
    let tenant = common::tenant(&stack, "clinic", None).await;
    stack
        .as_role(Role::Auditor, None)
        .get("/api/gateway/config")
        .await
        .expect(200);
    stack
        .as_role(Role::Auditor, None)
        .get("/api/gateway/status")
        .await
        .expect(200);
    for (role, t) in [
        (Role::TenantAdmin, Some(tenant.as_str())),
        (Role::TenantViewer, Some(tenant.as_str())),
        (Role::Auditor, Some(tenant.as_str())),
        (Role::Node, None),
    ] {
        let c = stack.as_role(role, t);
        c.get("/api/gateway/config").await.expect(403);
        c.get("/api/gateway/status").await.expect(403);
    }
    for (role, t) in [
        (Role::Auditor, None),
        (Role::TenantAdmin, Some(tenant.as_str())),
        (Role::Node, None),
    ] {
        let c = stack.as_role(role, t);
        c.put("/api/gateway/config", json!({ "max_body_bytes": 4096 }))
            .await
            .expect(403);
        c.post("/api/gateway/reload", Value::Null).await.expect(403);
    }
    stack
        .anonymous()
        .get("/api/gateway/config")
        .await
        .expect(401);
    let got = stack.admin().get("/api/gateway/config").await.expect(200);
    assert_eq!(got.json["max_body_bytes"], 10 * 1024 * 1024, "unchanged");
}

async fn heartbeats_upsert_instances_and_status_flags_stale_ones(stack: Stack) {
    let current = common::snapshot(&stack).await.version;
    let ack = node(&stack)
        .post("/api/internal/heartbeat", beat("inst-a", Some(current), 10))
        .await
        .expect(200);
    assert_eq!(ack.json["snapshot_version"], current);
    node(&stack)
        .post("/api/internal/heartbeat", beat("inst-a", Some(current), 25))
        .await
        .expect(200);
    node(&stack)
        .post("/api/internal/heartbeat", beat("inst-b", None, 0))
        .await
        .expect(200);

    let s = status(&stack).await;
    assert_eq!(s["snapshot_version"], current);
    assert_eq!(
        s["instances"].as_array().expect("list").len(),
        2,
        "upserted"
    );
    let a = instance(&s, "inst-a");
    assert_eq!(a["requests_total"], 25, "the latest heartbeat stands");
    assert_eq!(a["requests_per_sec"], 12.5);
    assert_eq!(a["applied_version"], current);
    assert_eq!(a["address"], "127.0.0.1:8080");
    assert_eq!(a["stale"], false);
    assert!(a["uptime_secs"].as_u64().expect("uptime") > 0);
    assert!(a["last_heartbeat_at"].is_string());
    assert_eq!(instance(&s, "inst-b")["applied_version"], Value::Null);

    let ago = |secs: i64| {
        (chrono::Utc::now() - chrono::Duration::seconds(secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    silence(&stack, "inst-b", &ago(31)).await;
    let s = status(&stack).await;
    assert_eq!(instance(&s, "inst-b")["stale"], true, "silent for 30 s");
    assert_eq!(instance(&s, "inst-a")["stale"], false);

    // An instance silent for a day is forgotten at the next heartbeat.
    silence(&stack, "inst-b", &ago(25 * 3600)).await;
    node(&stack)
        .post("/api/internal/heartbeat", beat("inst-a", Some(current), 30))
        .await
        .expect(200);
    let s = status(&stack).await;
    assert_eq!(s["instances"].as_array().expect("list").len(), 1);
}

async fn heartbeats_are_validated_and_not_audited(stack: Stack) {
    let n = node(&stack);
    let mut bad = beat("inst-a", Some(1), 1);
    bad["requests_per_sec"] = json!(-1.0);
    let r = n.post("/api/internal/heartbeat", bad).await.expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "requests_per_sec");
    let r = n
        .post("/api/internal/heartbeat", beat("bad id!", Some(1), 1))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "instance_id");
    let mut bad = beat("inst-a", Some(1), 1);
    bad["started_at"] = json!("yesterday");
    n.post("/api/internal/heartbeat", bad).await.expect(422);
    let mut bad = beat("inst-a", Some(1), 1);
    bad["secret"] = json!("x");
    n.post("/api/internal/heartbeat", bad).await.expect(422);
    stack
        .as_role(Role::Auditor, None)
        .post("/api/internal/heartbeat", beat("inst-a", Some(1), 1))
        .await
        .expect(403);
    n.post("/api/internal/heartbeat", beat("inst-a", Some(1), 1))
        .await
        .expect(200);
    assert_eq!(
        status(&stack).await["instances"][0]["instance_id"],
        "inst-a"
    );
    let audit = stack
        .admin()
        .get("/api/audit-logs?action=internal.heartbeat")
        .await
        .expect(200);
    assert_eq!(
        audit.json["total"], 0,
        "node telemetry stays out of the audit log"
    );
}

/// A simulated proxy: applies whatever the control plane's version is (as a long-polling
/// proxy would) and reports it, every 100 ms.
fn following_proxy(stack: &Stack, id: &'static str) -> tokio::task::JoinHandle<()> {
    let n = node(stack);
    tokio::spawn(async move {
        loop {
            let s = n.get("/api/internal/snapshot").await;
            let version = s.json["version"].as_u64();
            n.post("/api/internal/heartbeat", beat(id, version, 1))
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

async fn reload_bumps_the_version_and_reports_which_instances_applied_it(stack: Stack) {
    let before = common::snapshot(&stack).await.version;
    // One instance that follows, one stuck on an old version, one long gone.
    let follower = following_proxy(&stack, "inst-follows");
    for (id, version) in [("inst-stuck", before), ("inst-gone", before)] {
        node(&stack)
            .post("/api/internal/heartbeat", beat(id, Some(version), 1))
            .await
            .expect(200);
    }
    silence(&stack, "inst-gone", "2020-01-01T00:00:00.000000Z").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let r = stack
        .admin()
        .post("/api/gateway/reload", Value::Null)
        .await
        .expect(200);
    follower.abort();
    let target = before + 1;
    assert_eq!(r.json["target_version"], target);
    let ids = |list: &str| -> Vec<String> {
        r.json[list]
            .as_array()
            .expect("list")
            .iter()
            .map(|i| i["instance_id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids("applied"), ["inst-follows"]);
    assert_eq!(
        ids("pending"),
        ["inst-stuck"],
        "stale instances are not waited for"
    );
    assert_eq!(r.json["complete"], false);
    assert!(r.json["waited_ms"].as_u64().expect("waited") >= 2_900);
    assert!(r.json["applied"][0]["applied_version"].as_u64() >= Some(target));
    assert_eq!(common::snapshot(&stack).await.version, target);

    let audit = stack
        .admin()
        .get("/api/audit-logs?action=gateway.reload")
        .await
        .expect(200);
    assert_eq!(audit.json["total"], 1);
    assert_eq!(
        common::audit_details(&audit.json["items"][0])["target_version"],
        target
    );
}

async fn health_reports_proxies_by_their_heartbeats(stack: Stack) {
    let h = stack.anonymous().get("/api/health").await.expect(200);
    assert_eq!(h.json["proxy"]["status"], "none");
    assert_eq!(h.json["status"], "ok", "a control plane alone is healthy");
    node(&stack)
        .post("/api/internal/heartbeat", beat("inst-a", Some(1), 1))
        .await
        .expect(200);
    let h = stack.anonymous().get("/api/health").await.expect(200);
    assert_eq!(h.json["proxy"]["status"], "ok");
    silence(&stack, "inst-a", "2020-01-01T00:00:00.000000Z").await;
    let h = stack.anonymous().get("/api/health").await.expect(200);
    assert_eq!(
        h.json["proxy"]["status"], "none",
        "stale instances do not count"
    );
}

async fn metrics_are_public_prometheus_text(stack: Stack) {
    stack.admin().get("/api/tenants").await.expect(200);
    stack.anonymous().get("/api/tenants").await.expect(401);
    let event = json!({
        "request_id": "req-1", "tenant_id": "t", "api_key_id": null, "key_prefix": null,
        "requested_model": "m", "model_id": "m", "model_name": "m", "endpoint": "chat",
        "input_tokens": 1, "output_tokens": 1, "status": 200, "latency_ms": 1, "ttft_ms": null,
        "streamed": false, "usage_reported": true, "occurred_at": "2026-03-01T10:00:00Z"
    });
    for _ in 0..2 {
        node(&stack)
            .post("/api/internal/usage", json!({ "events": [event.clone()] }))
            .await
            .expect(200);
    }
    let version = common::snapshot(&stack).await.version;
    let r = stack.anonymous().get("/metrics").await.expect(200);
    assert!(r.headers["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/plain")));
    for line in [
        "medgate_api_requests_total{operation=\"tenants.list\",status=\"2xx\"} 1".to_owned(),
        "medgate_api_requests_total{operation=\"tenants.list\",status=\"4xx\"} 1".to_owned(),
        "medgate_api_usage_events_ingested_total{outcome=\"inserted\"} 1".to_owned(),
        "medgate_api_usage_events_ingested_total{outcome=\"duplicate\"} 1".to_owned(),
        format!("medgate_api_snapshot_version {version}"),
    ] {
        assert!(r.text.contains(&line), "{line} in\n{}", r.text);
    }
    assert!(r
        .text
        .contains("medgate_api_request_duration_seconds_bucket{operation=\"tenants.list\""));
}
