//! API keys (API §3.2): plaintext shown once, hashes in the snapshot, rotation with grace,
//! revocation, plan limits, tenant termination, on SQLite and PostgreSQL.

mod common;

use common::{create_key, id, plan, sha256_hex, snapshot, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    plaintext_is_shown_once_and_only_its_hash_is_kept,
    key_input_errors_are_4xx,
    rotation_keeps_the_old_secret_for_the_grace_period,
    revoked_keys_leave_the_snapshot_but_stay_listed,
    terminating_a_tenant_revokes_its_keys,
    termination_racing_key_writes_leaves_no_working_key,
    plan_limits_active_keys_even_under_concurrency,
    key_lists_are_tenant_scoped,
    roles_are_enforced_for_keys,
);

fn is_plaintext(key: &str) -> bool {
    let parts: Vec<&str> = key.split('_').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 3 && parts[0] == "mg" && hex(parts[1], 12) && hex(parts[2], 64)
}

async fn plaintext_is_shown_once_and_only_its_hash_is_kept(stack: Stack) {
    let tid = tenant(&stack, "once", None).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&tid));
    let r = ta
        .post(
            "/api/api-keys",
            json!({
                "name": "HIS integration",
                "expires_at": "2999-01-01T08:00:00+08:00",
                "allowed_models": ["gpt-4o", "fast"]
            }),
        )
        .await
        .expect(201);
    let key = r.json["key"].as_str().expect("plaintext").to_owned();
    assert!(is_plaintext(&key), "{key}");
    let kid = id(&r.json);
    assert_eq!(r.json["prefix"], json!(&key[..15]));
    assert_eq!(kid, format!("key_{}", &key[3..15]));
    assert_eq!(r.json["tenant_id"], json!(tid));
    assert_eq!(r.json["status"], "active");
    assert_eq!(r.json["expired"], false);
    assert_eq!(
        r.json["expires_at"], "2999-01-01T00:00:00.000000Z",
        "stored in UTC"
    );
    assert_eq!(r.json["allowed_models"], json!(["gpt-4o", "fast"]));

    let digest = sha256_hex(&key);
    let secret = &key[16..];
    for text in [
        ta.get(&format!("/api/api-keys/{kid}"))
            .await
            .expect(200)
            .text,
        ta.get("/api/api-keys").await.expect(200).text,
        ta.get(&format!("/api/tenants/{tid}/api-keys"))
            .await
            .expect(200)
            .text,
        stack
            .admin()
            .get("/api/audit-logs?page_size=500")
            .await
            .expect(200)
            .text,
    ] {
        assert!(!text.contains(secret), "plaintext shown again: {text}");
        assert!(!text.contains(&digest), "hash shown: {text}");
        assert!(!text.contains("\"key\""), "no key field: {text}");
    }
    let got = ta.get(&format!("/api/api-keys/{kid}")).await.expect(200);
    assert_eq!(got.json["prefix"], json!(&key[..15]));

    let s = snapshot(&stack).await;
    let entry = s.api_keys.iter().find(|k| k.id == kid).expect("key");
    assert_eq!(entry.tenant_id, tid);
    assert_eq!(entry.prefix, &key[..15]);
    assert_eq!(entry.secrets.len(), 1);
    assert_eq!(entry.secrets[0].sha256, digest);
    assert_eq!(entry.secrets[0].valid_until, None);
    assert_eq!(
        entry.expires_at.as_deref(),
        Some("2999-01-01T00:00:00.000000Z")
    );
    assert_eq!(entry.allowed_models, vec!["gpt-4o", "fast"]);

    // Two keys never share a plaintext or prefix.
    let other = create_key(&stack, &tid, "second").await;
    assert_ne!(other["key"], json!(key));
    assert_ne!(other["prefix"], r.json["prefix"]);
}

async fn key_input_errors_are_4xx(stack: Stack) {
    let tid = tenant(&stack, "errs", None).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&tid));
    let admin = stack.admin();
    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": " padded" }), "name"),
        (
            json!({ "name": "k", "expires_at": "2001-01-01T00:00:00Z" }),
            "expires_at",
        ),
        (
            json!({ "name": "k", "expires_at": "tomorrow" }),
            "expires_at",
        ),
        (
            json!({ "name": "k", "allowed_models": ["bad model"] }),
            "allowed_models[0]",
        ),
    ] {
        let r = ta.post("/api/api-keys", body.clone()).await.expect(422);
        assert_eq!(r.json["error"]["details"]["field"], field, "{body}");
    }
    for body in [
        json!({ "name": "k", "scopes": [] }),
        json!({}),
        json!({ "name": 7 }),
    ] {
        let r = ta.post("/api/api-keys", body.clone()).await.expect(422);
        assert_eq!(r.error_code(), "invalid_body", "{body}");
    }
    let r = admin
        .post("/api/api-keys", json!({ "name": "k" }))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "tenant_id");
    admin
        .post(
            "/api/api-keys",
            json!({ "name": "k", "tenant_id": "tnt_missing" }),
        )
        .await
        .expect(404);
    admin
        .post("/api/api-keys", json!({ "name": "k", "tenant_id": tid }))
        .await
        .expect(201);

    let kid = id(&create_key(&stack, &tid, "rot").await);
    for grace in [json!(604_801), json!(-1), json!("1h")] {
        let r = ta
            .put(
                &format!("/api/api-keys/{kid}/rotate"),
                json!({ "grace_period_secs": grace }),
            )
            .await
            .expect(422);
        assert!(r.text.contains("grace_period_secs"), "{}", r.text);
    }
    ta.put(
        &format!("/api/api-keys/{kid}/rotate"),
        json!({ "grace": 5 }),
    )
    .await
    .expect(422);

    admin
        .get("/api/api-keys/key_000000000000")
        .await
        .expect(404);
    admin
        .delete("/api/api-keys/key_000000000000")
        .await
        .expect(404);
    admin
        .put("/api/api-keys/key_000000000000/rotate", json!({}))
        .await
        .expect(404);
    admin
        .get("/api/tenants/tnt_missing/api-keys")
        .await
        .expect(404);
    admin.get("/api/api-keys?page_size=0").await.expect(422);
    admin.get("/api/api-keys?colour=red").await.expect(400);
}

async fn rotation_keeps_the_old_secret_for_the_grace_period(stack: Stack) {
    let tid = tenant(&stack, "rotor", None).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&tid));
    let created = create_key(&stack, &tid, "rotating").await;
    let kid = id(&created);
    let first = created["key"].as_str().expect("key").to_owned();
    let v0 = snapshot(&stack).await.version;

    let r = ta
        .put(
            &format!("/api/api-keys/{kid}/rotate"),
            json!({ "grace_period_secs": 600 }),
        )
        .await
        .expect(200);
    let second = r.json["key"].as_str().expect("new key").to_owned();
    assert!(is_plaintext(&second));
    assert_ne!(second, first);
    assert_eq!(&second[..15], &first[..15], "the prefix stays");
    assert!(r.json["last_rotated_at"].is_string());
    let grace_end = r.json["previous_secret_valid_until"]
        .as_str()
        .expect("grace end")
        .to_owned();
    let end = chrono::DateTime::parse_from_rfc3339(&grace_end).expect("time");
    let left = end.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!(
        (590..=600).contains(&left),
        "grace ends in ~600 s, got {left}"
    );

    let s = snapshot(&stack).await;
    assert!(s.version > v0);
    let entry = s.api_keys.iter().find(|k| k.id == kid).expect("key");
    assert_eq!(entry.secrets.len(), 2);
    assert_eq!(entry.secrets[0].sha256, sha256_hex(&second));
    assert_eq!(entry.secrets[0].valid_until, None, "new secret is current");
    assert_eq!(entry.secrets[1].sha256, sha256_hex(&first));
    assert_eq!(
        entry.secrets[1].valid_until.as_deref(),
        Some(grace_end.as_str())
    );

    // Default grace is an hour; a grace of 0 retires the current secret at once.
    let r = ta
        .put(&format!("/api/api-keys/{kid}/rotate"), json!({}))
        .await
        .expect(200);
    let third = r.json["key"].as_str().expect("key").to_owned();
    let r = ta
        .put(
            &format!("/api/api-keys/{kid}/rotate"),
            json!({ "grace_period_secs": 0 }),
        )
        .await
        .expect(200);
    let fourth = r.json["key"].as_str().expect("key").to_owned();
    let s = snapshot(&stack).await;
    let entry = s.api_keys.iter().find(|k| k.id == kid).expect("key");
    let hashes: Vec<&str> = entry.secrets.iter().map(|s| s.sha256.as_str()).collect();
    assert_eq!(hashes[0], sha256_hex(&fourth));
    assert!(!hashes.contains(&sha256_hex(&third).as_str()), "grace 0");
    assert!(
        hashes.contains(&sha256_hex(&second).as_str()),
        "earlier grace kept"
    );
    assert!(hashes.contains(&sha256_hex(&first).as_str()));

    let audit = stack
        .admin()
        .get("/api/audit-logs?action=api_keys.rotate")
        .await
        .expect(200);
    assert_eq!(audit.json["total"], 3);
    assert_eq!(
        common::audit_details(&audit.json["items"][0])["grace_period_secs"],
        0
    );
    assert_eq!(audit.json["items"][0]["resource_id"], json!(kid));
}

async fn revoked_keys_leave_the_snapshot_but_stay_listed(stack: Stack) {
    let tid = tenant(&stack, "revoker", None).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&tid));
    let kid = id(&create_key(&stack, &tid, "short-lived").await);
    let keep = id(&create_key(&stack, &tid, "kept").await);
    assert_eq!(snapshot(&stack).await.api_keys.len(), 2);

    ta.delete(&format!("/api/api-keys/{kid}")).await.expect(204);
    let s = snapshot(&stack).await;
    assert!(s.api_keys.iter().all(|k| k.id != kid), "revoked key gone");
    assert!(s.api_keys.iter().any(|k| k.id == keep));

    let r = ta.get(&format!("/api/api-keys/{kid}")).await.expect(200);
    assert_eq!(r.json["status"], "revoked");
    assert!(r.json["revoked_at"].is_string());
    let r = ta.delete(&format!("/api/api-keys/{kid}")).await.expect(409);
    assert_eq!(r.error_code(), "key_revoked");
    let r = ta
        .put(&format!("/api/api-keys/{kid}/rotate"), json!({}))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "key_revoked");
    let list = ta.get("/api/api-keys").await.expect(200);
    assert_eq!(list.json["total"], 2, "the revoked row stays for history");
    let list = ta.get("/api/api-keys?status=revoked").await.expect(200);
    assert_eq!(list.json["total"], 1);
    assert_eq!(list.json["items"][0]["id"], json!(kid));
}

async fn terminating_a_tenant_revokes_its_keys(stack: Stack) {
    let admin = stack.admin();
    let tid = tenant(&stack, "ending", None).await;
    let other = tenant(&stack, "staying", None).await;
    let k1 = id(&create_key(&stack, &tid, "a").await);
    let k2 = id(&create_key(&stack, &tid, "b").await);
    let k3 = id(&create_key(&stack, &tid, "c").await);
    let survivor = id(&create_key(&stack, &other, "d").await);
    stack
        .as_role(Role::TenantAdmin, Some(&tid))
        .delete(&format!("/api/api-keys/{k3}"))
        .await
        .expect(204);

    let r = admin
        .post(&format!("/api/tenants/{tid}/terminate"), Value::Null)
        .await
        .expect(200);
    assert_eq!(r.json["status"], "terminated");
    for k in [&k1, &k2, &k3] {
        let r = admin.get(&format!("/api/api-keys/{k}")).await.expect(200);
        assert_eq!(r.json["status"], "revoked", "{k}");
    }
    let s = snapshot(&stack).await;
    let ids: Vec<&str> = s.api_keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, vec![survivor.as_str()]);
    let audit = admin
        .get("/api/audit-logs?action=tenants.terminate")
        .await
        .expect(200);
    assert_eq!(
        common::audit_details(&audit.json["items"][0])["revoked_api_keys"],
        2
    );

    let r = admin
        .post("/api/api-keys", json!({ "name": "late", "tenant_id": tid }))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "tenant_terminated");
    // A terminated tenant can be deleted; its keys go with it and the snapshot stays valid.
    admin
        .delete(&format!("/api/tenants/{tid}"))
        .await
        .expect(204);
    admin.get(&format!("/api/api-keys/{k1}")).await.expect(404);
    snapshot(&stack).await;
}

async fn termination_racing_key_writes_leaves_no_working_key(stack: Stack) {
    let tid = tenant(&stack, "racing-end", None).await;
    let mut keys = Vec::new();
    for i in 0..6 {
        keys.push(id(&create_key(&stack, &tid, &format!("k{i}")).await));
    }
    let ta = stack.as_role(Role::TenantAdmin, Some(&tid));
    let mut tasks = Vec::new();
    for round in 0..3 {
        for k in &keys {
            let (c, k) = (ta.clone(), k.clone());
            tasks.push(tokio::spawn(async move {
                c.put(&format!("/api/api-keys/{k}/rotate"), json!({}))
                    .await
                    .status
            }));
        }
        let c = ta.clone();
        tasks.push(tokio::spawn(async move {
            c.post("/api/api-keys", json!({ "name": format!("new-{round}") }))
                .await
                .status
        }));
    }
    let admin = stack.admin();
    let path = format!("/api/tenants/{tid}/terminate");
    tasks.push(tokio::spawn(async move {
        admin.post(&path, Value::Null).await.status
    }));
    for t in tasks {
        let status = t.await.expect("task");
        assert!(
            [200, 201, 409].contains(&status),
            "only success or conflict, got {status}"
        );
    }
    let s = snapshot(&stack).await;
    assert!(
        s.api_keys.iter().all(|k| k.tenant_id != tid),
        "no key of a terminated tenant works"
    );
    let r = stack
        .admin()
        .get(&format!("/api/tenants/{tid}/api-keys?status=active"))
        .await
        .expect(200);
    assert_eq!(r.json["total"], 0);
}

async fn plan_limits_active_keys_even_under_concurrency(stack: Stack) {
    let small = plan(
        &stack,
        json!({ "name": "small", "quotas": { "max_api_keys": 2 } }),
    )
    .await;
    let tid = tenant(&stack, "limited", Some(&small)).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&tid));
    let first = id(&create_key(&stack, &tid, "1").await);
    create_key(&stack, &tid, "2").await;
    let r = ta
        .post("/api/api-keys", json!({ "name": "3" }))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "key_limit_reached");
    ta.delete(&format!("/api/api-keys/{first}"))
        .await
        .expect(204);
    create_key(&stack, &tid, "3").await;

    let three = plan(
        &stack,
        json!({ "name": "three", "quotas": { "max_api_keys": 3 } }),
    )
    .await;
    let racer = tenant(&stack, "racing", Some(&three)).await;
    let client = stack.as_role(Role::TenantAdmin, Some(&racer));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move {
                c.post("/api/api-keys", json!({ "name": format!("k{i}") }))
                    .await
                    .status
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.expect("task") {
            201 => created += 1,
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created, 3, "exactly the plan's limit");
    let list = client.get("/api/api-keys?status=active").await.expect(200);
    assert_eq!(list.json["total"], 3);
}

async fn key_lists_are_tenant_scoped(stack: Stack) {
    let admin = stack.admin();
    let a = tenant(&stack, "list-a", None).await;
    let b = tenant(&stack, "list-b", None).await;
    for n in ["a1", "a2", "a3"] {
        create_key(&stack, &a, n).await;
    }
    create_key(&stack, &b, "b1").await;

    let r = admin.get("/api/api-keys").await.expect(200);
    assert_eq!(r.json["total"], 4);
    let r = admin
        .get(&format!("/api/api-keys?tenant_id={a}&page_size=2&page=2"))
        .await
        .expect(200);
    assert_eq!(r.json["total"], 3);
    assert_eq!(r.json["items"].as_array().expect("items").len(), 1);
    let r = admin
        .get(&format!("/api/tenants/{a}/api-keys"))
        .await
        .expect(200);
    assert_eq!(r.json["total"], 3);
    admin
        .get(&format!("/api/tenants/{a}/api-keys?tenant_id={b}"))
        .await
        .expect(422);

    let b_viewer = stack.as_role(Role::TenantViewer, Some(&b));
    let r = b_viewer.get("/api/api-keys").await.expect(200);
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["items"][0]["tenant_id"], json!(b));
    b_viewer
        .get(&format!("/api/api-keys?tenant_id={a}"))
        .await
        .expect(404);
    b_viewer
        .get(&format!("/api/tenants/{a}/api-keys"))
        .await
        .expect(404);
    let r = b_viewer
        .get(&format!("/api/tenants/{b}/api-keys"))
        .await
        .expect(200);
    assert_eq!(r.json["total"], 1);
}

async fn roles_are_enforced_for_keys(stack: Stack) {
    let tid = tenant(&stack, "keyroles", None).await;
    let kid = id(&create_key(&stack, &tid, "k").await);
    let viewer = stack.as_role(Role::TenantViewer, Some(&tid));
    let auditor = stack.as_role(Role::Auditor, None);
    for c in [&viewer, &auditor] {
        c.get("/api/api-keys").await.expect(200);
        c.get(&format!("/api/api-keys/{kid}")).await.expect(200);
        c.post("/api/api-keys", json!({ "name": "x", "tenant_id": tid }))
            .await
            .expect(403);
        c.delete(&format!("/api/api-keys/{kid}")).await.expect(403);
        c.put(&format!("/api/api-keys/{kid}/rotate"), json!({}))
            .await
            .expect(403);
    }
    stack
        .as_role(Role::Node, None)
        .get("/api/api-keys")
        .await
        .expect(403);
    stack.anonymous().get("/api/api-keys").await.expect(401);
    let r = viewer
        .get(&format!("/api/api-keys/{kid}"))
        .await
        .expect(200);
    assert_eq!(r.json["status"], "active", "refused calls changed nothing");
}
