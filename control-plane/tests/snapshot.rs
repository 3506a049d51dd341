//! The snapshot the data plane watches: versioned, content-hashed, node-only, long-polled.

use std::time::{Duration, Instant};

use medgate_config::{Snapshot, TenantStatus};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    snapshot_reflects_tenants_and_bumps_versions,
    long_poll_wakes_on_change,
    snapshot_needs_a_node_token
);

async fn snapshot_reflects_tenants_and_bumps_versions(stack: Stack) {
    let node = stack.as_role(Role::Node, None);
    let s0: Snapshot =
        serde_json::from_value(node.get("/api/internal/snapshot").await.expect(200).json)
            .expect("snapshot");
    s0.validate().expect("valid");
    let plan = stack.create_plan("snap").await;
    let t = stack
        .admin()
        .post(
            "/api/tenants",
            json!({ "name": "S", "code": "snap", "plan_id": plan }),
        )
        .await
        .expect(201);
    let id = t.json["id"].as_str().expect("id").to_owned();
    stack
        .admin()
        .post(&format!("/api/tenants/{id}/activate"), Value::Null)
        .await
        .expect(200);
    let s1: Snapshot =
        serde_json::from_value(node.get("/api/internal/snapshot").await.expect(200).json)
            .expect("snapshot");
    s1.validate().expect("valid");
    assert!(s1.version > s0.version);
    let entry = s1.tenant(&id).expect("tenant present");
    assert_eq!(entry.status, TenantStatus::Active);
    assert_eq!(
        entry.quotas.as_ref().and_then(|q| q.requests_per_minute),
        Some(60)
    );

    stack
        .admin()
        .post(&format!("/api/tenants/{id}/suspend"), Value::Null)
        .await
        .expect(200);
    let s2: Snapshot =
        serde_json::from_value(node.get("/api/internal/snapshot").await.expect(200).json)
            .expect("snapshot");
    assert!(s2.version > s1.version);
    assert_eq!(
        s2.tenant(&id).expect("tenant").status,
        TenantStatus::Suspended
    );

    // A refused change does not bump the version.
    stack
        .admin()
        .post(&format!("/api/tenants/{id}/suspend"), Value::Null)
        .await
        .expect(409);
    assert_eq!(
        stack.state.store().config_version().await.expect("v"),
        s2.version
    );
}

async fn long_poll_wakes_on_change(stack: Stack) {
    let node = stack.as_role(Role::Node, None);
    let v = stack.state.store().config_version().await.expect("v");
    let r = node
        .get(&format!("/api/internal/snapshot?after={v}&wait_secs=1"))
        .await;
    assert_eq!(r.status, 204, "nothing newer within the wait");

    let waiter = {
        let node = node.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = node
                .get(&format!("/api/internal/snapshot?after={v}&wait_secs=20"))
                .await;
            (r.status, r.json, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack
        .admin()
        .post("/api/tenants", json!({ "name": "W", "code": "waker" }))
        .await
        .expect(201);
    let (status, json, elapsed) = waiter.await.expect("task");
    assert_eq!(status, 200);
    assert!(json["version"].as_u64().expect("version") > v);
    assert!(
        elapsed < Duration::from_secs(10),
        "woke on the change, not the timeout ({elapsed:?})"
    );
    node.get("/api/internal/snapshot?wait_secs=61")
        .await
        .expect(422);
}

async fn snapshot_needs_a_node_token(stack: Stack) {
    stack
        .anonymous()
        .get("/api/internal/snapshot")
        .await
        .expect(401);
    let t = stack.create_active_tenant("nosnap").await;
    let id = t["id"].as_str().expect("id");
    stack
        .as_role(Role::TenantAdmin, Some(id))
        .get("/api/internal/snapshot")
        .await
        .expect(403);
    stack
        .as_role(Role::Auditor, None)
        .get("/api/internal/snapshot")
        .await
        .expect(403);
    stack
        .admin()
        .get("/api/internal/snapshot")
        .await
        .expect(200);
}
