//! The model registry (API §3.1) and model parameter rules (API §3.3, model part), on SQLite
//! and PostgreSQL.

mod common;

use common::{create_model, create_model_with, id, model_body, snapshot};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    model_crud_round_trip_with_defaults,
    upstream_api_keys_never_appear_in_any_response,
    update_keeps_upstream_keys_by_url,
    upstream_keys_are_sealed_at_rest_and_bound_to_their_model,
    plaintext_keys_of_older_rows_are_sealed_at_start,
    model_input_errors_are_422_with_field_names,
    model_names_are_unique_and_unknown_ids_404,
    toggle_flips_enabled_and_reaches_the_snapshot,
    parameter_rules_are_validated_and_replaced,
    only_platform_admins_write_models,
    deleting_a_model_removes_its_tenant_configs,
);

const SECRET: &str = "sk-upstream-SECRET-0123456789abcdef";

fn full_body(name: &str) -> Value {
    json!({
        "name": name,
        "display_name": "GPT-4o (primary)",
        "provider": "openai_compatible",
        "upstreams": [
            { "url": "https://a.llm.example.com/v1", "weight": 3, "api_key": SECRET },
            { "url": "http://10.0.0.7:8000/v1", "weight": 0 }
        ],
        "upstream_model": "gpt-4o-2024-08-06",
        "connect_timeout_ms": 2000,
        "read_timeout_ms": 60000,
        "pricing": {
            "input_per_1k_tokens_minor": 250,
            "output_per_1k_tokens_minor": 1000,
            "per_request_minor": 1,
            "currency": "USD"
        },
        "available_to_all_tenants": false,
        "parameters": {
            "max_tokens": { "default": 512, "min": 1, "max": 4096 },
            "temperature": { "max": 1.5, "on_violation": "reject" }
        }
    })
}

async fn model_crud_round_trip_with_defaults(stack: Stack) {
    let admin = stack.admin();
    let r = admin
        .post("/api/models", model_body("tiny"))
        .await
        .expect(201);
    let tiny = id(&r.json);
    assert!(tiny.starts_with("mdl_"));
    assert_eq!(r.json["display_name"], "tiny");
    assert_eq!(r.json["provider"], "openai_compatible");
    assert_eq!(r.json["upstream_model"], "tiny");
    assert_eq!(r.json["connect_timeout_ms"], 5000);
    assert_eq!(r.json["read_timeout_ms"], 300000);
    assert_eq!(r.json["enabled"], true);
    assert_eq!(r.json["available_to_all_tenants"], true);
    assert_eq!(r.json["pricing"]["currency"], "CNY");
    assert_eq!(r.json["pricing"]["per_request_minor"], 0);
    assert_eq!(r.json["parameters"], json!({}));

    let r = admin
        .post("/api/models", full_body("gpt-4o"))
        .await
        .expect(201);
    let gpt = id(&r.json);
    assert_eq!(r.json["upstreams"][0]["has_api_key"], true);
    assert_eq!(r.json["upstreams"][1]["has_api_key"], false);
    assert_eq!(r.json["upstreams"][0]["weight"], 3);
    assert_eq!(r.json["pricing"]["output_per_1k_tokens_minor"], 1000);
    assert_eq!(r.json["parameters"]["max_tokens"]["max"], 4096.0);

    let got = admin.get(&format!("/api/models/{gpt}")).await.expect(200);
    assert_eq!(got.json["upstream_model"], "gpt-4o-2024-08-06");
    let list = admin.get("/api/models").await.expect(200);
    assert_eq!(list.json["total"], 2);
    let list = admin.get("/api/models?q=GPT").await.expect(200);
    assert_eq!(list.json["total"], 1, "name search");
    let list = admin.get("/api/models?status=enabled").await.expect(200);
    assert_eq!(list.json["total"], 2);

    let r = admin
        .put(
            &format!("/api/models/{tiny}"),
            json!({
                "name": "tiny-2",
                "upstreams": [{ "url": "https://other.example.com/v1" }],
                "read_timeout_ms": 1000
            }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["name"], "tiny-2");
    assert_eq!(r.json["display_name"], "tiny-2", "update replaces fields");
    assert_eq!(r.json["upstreams"][0]["weight"], 1, "weight defaults to 1");
    assert_eq!(r.json["read_timeout_ms"], 1000);

    admin
        .delete(&format!("/api/models/{tiny}"))
        .await
        .expect(204);
    admin.get(&format!("/api/models/{tiny}")).await.expect(404);
    let list = admin.get("/api/models").await.expect(200);
    assert_eq!(list.json["total"], 1);
}

async fn upstream_api_keys_never_appear_in_any_response(stack: Stack) {
    let admin = stack.admin();
    let mut texts = Vec::new();
    let r = admin
        .post("/api/models", full_body("secretive"))
        .await
        .expect(201);
    let mid = id(&r.json);
    texts.push(r.text);
    texts.push(admin.get("/api/models").await.expect(200).text);
    texts.push(
        admin
            .get(&format!("/api/models/{mid}"))
            .await
            .expect(200)
            .text,
    );
    let mut update = full_body("secretive");
    update["display_name"] = json!("renamed");
    texts.push(
        admin
            .put(&format!("/api/models/{mid}"), update)
            .await
            .expect(200)
            .text,
    );
    texts.push(
        admin
            .post(&format!("/api/models/{mid}/toggle"), Value::Null)
            .await
            .expect(200)
            .text,
    );
    texts.push(
        admin
            .get(&format!("/api/models/{mid}/parameters"))
            .await
            .expect(200)
            .text,
    );
    texts.push(
        admin
            .put(&format!("/api/models/{mid}/parameters"), json!({}))
            .await
            .expect(200)
            .text,
    );
    // A refused write that carried the key does not echo it either.
    let mut bad = full_body("secretive-2");
    bad["upstreams"][0]["weight"] = json!(5000);
    texts.push(admin.post("/api/models", bad).await.expect(422).text);
    texts.push(
        admin
            .get("/api/audit-logs?page_size=500")
            .await
            .expect(200)
            .text,
    );
    let viewer_tenant = stack.create_active_tenant("peek").await;
    let tid = viewer_tenant["id"].as_str().expect("id");
    texts.push(
        stack
            .as_role(Role::TenantViewer, Some(tid))
            .get("/api/models")
            .await
            .expect(200)
            .text,
    );
    for text in &texts {
        assert!(!text.contains(SECRET), "upstream key leaked: {text}");
        assert!(!text.contains("\"api_key\""), "no api_key field: {text}");
    }
    // The data plane does get it.
    let s = snapshot(&stack).await;
    let entry = s.models.iter().find(|m| m.id == mid).expect("model");
    assert_eq!(entry.upstreams[0].api_key.as_deref(), Some(SECRET));
}

async fn update_keeps_upstream_keys_by_url(stack: Stack) {
    let admin = stack.admin();
    let mid = id(&create_model_with(&stack, full_body("keeper")).await);
    // Same URL, api_key omitted: kept. New URL: none.
    let r = admin
        .put(
            &format!("/api/models/{mid}"),
            json!({
                "name": "keeper",
                "upstreams": [
                    { "url": "https://a.llm.example.com/v1", "weight": 2 },
                    { "url": "https://b.llm.example.com/v1", "weight": 1 }
                ]
            }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["upstreams"][0]["has_api_key"], true);
    assert_eq!(r.json["upstreams"][1]["has_api_key"], false);
    assert_eq!(
        r.json["parameters"]["max_tokens"]["max"], 4096.0,
        "parameters omitted on update are kept"
    );
    let s = snapshot(&stack).await;
    let entry = s.models.iter().find(|m| m.id == mid).expect("model");
    assert_eq!(entry.upstreams[0].api_key.as_deref(), Some(SECRET));

    // Explicit null removes it; a new value replaces it.
    let r = admin
        .put(
            &format!("/api/models/{mid}"),
            json!({
                "name": "keeper",
                "upstreams": [
                    { "url": "https://a.llm.example.com/v1", "api_key": null },
                    { "url": "https://b.llm.example.com/v1", "api_key": "sk-new" }
                ]
            }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["upstreams"][0]["has_api_key"], false);
    assert_eq!(r.json["upstreams"][1]["has_api_key"], true);
    let s = snapshot(&stack).await;
    let entry = s.models.iter().find(|m| m.id == mid).expect("model");
    assert_eq!(entry.upstreams[0].api_key, None);
    assert_eq!(entry.upstreams[1].api_key.as_deref(), Some("sk-new"));
}

async fn model_input_errors_are_422_with_field_names(stack: Stack) {
    let admin = stack.admin();
    let with = |patch: Value| {
        let mut body = model_body("bad");
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(json!({ "name": "has space" })), "name"),
        (with(json!({ "display_name": "" })), "display_name"),
        (with(json!({ "upstream_model": "a b" })), "upstream_model"),
        (with(json!({ "upstreams": [] })), "upstreams"),
        (
            with(json!({ "upstreams": [{ "url": "ftp://x.example.com" }] })),
            "upstreams[0].url",
        ),
        (
            with(json!({ "upstreams": [{ "url": "https://u:p@x.example.com" }] })),
            "upstreams[0].url",
        ),
        (
            with(json!({ "upstreams": [{ "url": "https://x.example.com", "weight": 1001 }] })),
            "upstreams[0].weight",
        ),
        (
            with(json!({ "upstreams": [{ "url": "https://x.example.com", "weight": 0 }] })),
            "upstreams",
        ),
        (
            with(json!({ "upstreams": [
                { "url": "https://x.example.com" }, { "url": "https://x.example.com" }
            ] })),
            "upstreams[1].url",
        ),
        (
            with(json!({ "upstreams": [{ "url": "https://x.example.com", "api_key": "" }] })),
            "upstreams[0].api_key",
        ),
        (
            with(json!({ "connect_timeout_ms": 0 })),
            "connect_timeout_ms",
        ),
        (
            with(json!({ "read_timeout_ms": 3600001 })),
            "read_timeout_ms",
        ),
        (
            with(json!({ "pricing": { "input_per_1k_tokens_minor": -1 } })),
            "pricing.input_per_1k_tokens_minor",
        ),
        (
            with(json!({ "pricing": { "currency": "XYZ" } })),
            "pricing.currency",
        ),
        (
            with(json!({ "parameters": { "warmth": {} } })),
            "parameters.warmth",
        ),
        (
            with(json!({ "parameters": { "top_p": { "min": 0.9, "max": 0.1 } } })),
            "parameters.top_p.min",
        ),
        (
            with(json!({ "parameters": { "max_tokens": { "max": 100, "forced": 200 } } })),
            "parameters.max_tokens.forced",
        ),
    ];
    let many: Vec<Value> = (0..17)
        .map(|i| json!({ "url": format!("https://u{i}.example.com") }))
        .collect();
    let mut cases = cases;
    cases.push((with(json!({ "upstreams": many })), "upstreams"));
    for (body, field) in cases {
        let r = admin.post("/api/models", body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.error_code(), "validation_failed", "{body}");
        assert_eq!(r.json["error"]["details"]["field"], field, "{body}");
    }
    for body in [
        with(json!({ "provider": "anthropic" })),
        with(json!({ "surprise": 1 })),
        with(json!({ "upstreams": [{ "url": "https://x.example.com", "extra": 1 }] })),
        with(json!({ "pricing": { "input_per_1k_tokens_minor": 1.5 } })),
        with(json!({ "parameters": { "top_p": { "mystery": 1 } } })),
        with(json!({ "upstreams": [{ "url": "https://x.example.com", "weight": -1 }] })),
        json!({ "upstreams": [{ "url": "https://x.example.com" }] }),
    ] {
        let r = admin.post("/api/models", body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.error_code(), "invalid_body", "{body}");
    }
    let r = admin
        .raw(
            reqwest::Method::POST,
            "/api/models",
            "application/json",
            b"{".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(admin.get("/api/models").await.expect(200).json["total"], 0);
}

async fn model_names_are_unique_and_unknown_ids_404(stack: Stack) {
    let admin = stack.admin();
    create_model(&stack, "same").await;
    let r = admin
        .post("/api/models", model_body("same"))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "already_exists");
    let other = create_model(&stack, "other").await;
    admin
        .put(&format!("/api/models/{other}"), model_body("same"))
        .await
        .expect(409);

    let missing = "/api/models/mdl_missing";
    admin.get(missing).await.expect(404);
    admin.put(missing, model_body("x")).await.expect(404);
    admin.delete(missing).await.expect(404);
    admin
        .post(&format!("{missing}/toggle"), Value::Null)
        .await
        .expect(404);
    admin
        .get(&format!("{missing}/parameters"))
        .await
        .expect(404);
    admin
        .put(&format!("{missing}/parameters"), json!({}))
        .await
        .expect(404);
}

async fn toggle_flips_enabled_and_reaches_the_snapshot(stack: Stack) {
    let admin = stack.admin();
    let mid = create_model(&stack, "flip").await;
    let before = snapshot(&stack).await;
    assert!(before.models.iter().any(|m| m.id == mid && m.enabled));

    let r = admin
        .post(&format!("/api/models/{mid}/toggle"), Value::Null)
        .await
        .expect(200);
    assert_eq!(r.json["enabled"], false);
    let after = snapshot(&stack).await;
    assert!(after.version > before.version, "toggle bumps the version");
    let entry = after.models.iter().find(|m| m.id == mid).expect("model");
    assert!(!entry.enabled, "disabled in the snapshot");
    assert_eq!(entry.name, "flip");
    assert_eq!(entry.provider, "openai_compatible");
    assert_eq!(entry.upstream_model, "flip");

    // A full update without `enabled` keeps it disabled.
    admin
        .put(&format!("/api/models/{mid}"), model_body("flip"))
        .await
        .expect(200);
    let r = admin.get(&format!("/api/models/{mid}")).await.expect(200);
    assert_eq!(r.json["enabled"], false);
    let r = admin
        .post(&format!("/api/models/{mid}/toggle"), Value::Null)
        .await
        .expect(200);
    assert_eq!(r.json["enabled"], true);
    let last = snapshot(&stack).await;
    assert!(last.models.iter().any(|m| m.id == mid && m.enabled));

    let entries = admin
        .get("/api/audit-logs?action=models.toggle")
        .await
        .expect(200);
    assert_eq!(entries.json["total"], 2);
    assert_eq!(
        common::audit_details(&entries.json["items"][0])["enabled"],
        true
    );
}

async fn parameter_rules_are_validated_and_replaced(stack: Stack) {
    let admin = stack.admin();
    let mid = create_model(&stack, "ruled").await;
    let path = format!("/api/models/{mid}/parameters");
    assert_eq!(admin.get(&path).await.expect(200).json, json!({}));
    let rules = json!({
        "max_tokens": { "default": 256, "min": 1, "max": 2048, "on_violation": "clamp" },
        "temperature": { "min": 0, "max": 1, "on_violation": "reject" },
        "top_p": { "forced": 1 },
        "stop": { "default": ["END"] },
        "seed": { "default": 42 }
    });
    let r = admin.put(&path, rules.clone()).await.expect(200);
    assert_eq!(r.json["max_tokens"]["max"], 2048.0);
    assert_eq!(r.json["temperature"]["on_violation"], "reject");
    let got = admin.get(&path).await.expect(200);
    assert_eq!(got.json, r.json);
    let s = snapshot(&stack).await;
    let entry = s.models.iter().find(|m| m.id == mid).expect("model");
    assert_eq!(entry.parameters["max_tokens"].max, Some(2048.0));
    assert_eq!(entry.parameters["top_p"].forced, Some(json!(1)));

    for (bad, field) in [
        (json!({ "temperature": { "max": 2.5 } }), "temperature.max"),
        (json!({ "n": { "default": 0 } }), "n.default"),
        (json!({ "max_tokens": { "min": 0.5 } }), "max_tokens.min"),
        (json!({ "logit_bias": {} }), "logit_bias"),
        (json!({ "stop": { "forced": 5 } }), "stop.forced"),
    ] {
        let r = admin.put(&path, bad.clone()).await.expect(422);
        assert_eq!(r.json["error"]["details"]["field"], field, "{bad}");
    }
    for bad in [
        json!({ "temperature": { "on_violation": "explode" } }),
        json!({ "temperature": 1 }),
        json!([]),
    ] {
        let r = admin.put(&path, bad.clone()).await.expect(422);
        assert_eq!(r.error_code(), "invalid_body", "{bad}");
    }
    assert_eq!(
        admin.get(&path).await.expect(200).json,
        r.json,
        "refused updates changed nothing"
    );
    let r = admin.put(&path, json!({})).await.expect(200);
    assert_eq!(r.json, json!({}), "PUT replaces the whole map");
}

async fn only_platform_admins_write_models(stack: Stack) {
    let mid = create_model(&stack, "guarded").await;
    let t = stack.create_active_tenant("readers").await;
    let tid = t["id"].as_str().expect("id");
    for role in [Role::TenantAdmin, Role::TenantViewer, Role::Auditor] {
        let tenant = role.requires_tenant().then_some(tid);
        let c = stack.as_role(role, tenant);
        c.get("/api/models").await.expect(200);
        c.get(&format!("/api/models/{mid}")).await.expect(200);
        c.get(&format!("/api/models/{mid}/parameters"))
            .await
            .expect(200);
        c.post("/api/models", model_body("mine")).await.expect(403);
        c.put(&format!("/api/models/{mid}"), model_body("guarded"))
            .await
            .expect(403);
        c.delete(&format!("/api/models/{mid}")).await.expect(403);
        c.post(&format!("/api/models/{mid}/toggle"), Value::Null)
            .await
            .expect(403);
        c.put(&format!("/api/models/{mid}/parameters"), json!({}))
            .await
            .expect(403);
    }
    stack
        .as_role(Role::Node, None)
        .get("/api/models")
        .await
        .expect(403);
    stack.anonymous().get("/api/models").await.expect(401);
    let r = stack
        .admin()
        .get(&format!("/api/models/{mid}"))
        .await
        .expect(200);
    assert_eq!(r.json["enabled"], true, "refused calls changed nothing");
}

async fn deleting_a_model_removes_its_tenant_configs(stack: Stack) {
    let admin = stack.admin();
    let mid = create_model(&stack, "doomed").await;
    let tid = common::tenant(&stack, "cfg-owner", None).await;
    admin
        .post(
            &format!("/api/tenants/{tid}/models/{mid}"),
            json!({ "alias": "d" }),
        )
        .await
        .expect(200);
    assert_eq!(snapshot(&stack).await.tenant_models.len(), 1);
    admin
        .delete(&format!("/api/models/{mid}"))
        .await
        .expect(204);
    admin
        .get(&format!("/api/tenants/{tid}/models/{mid}"))
        .await
        .expect(404);
    let s = snapshot(&stack).await;
    assert!(s.models.is_empty());
    assert!(s.tenant_models.is_empty(), "config went with its model");
    // The alias is free again for a new model name.
    create_model(&stack, "d").await;
}

/// Overwrites a resource's stored row behind the API's back (and bumps the config version,
/// so the snapshot is compiled again).
async fn overwrite_row(stack: &Stack, id: &str, body: &Value) {
    let mut tx = stack.state.store().begin().await.expect("tx");
    sqlx::query("UPDATE resources SET body = $1 WHERE id = $2")
        .bind(body.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("overwrite row");
    medgate_control_plane::store::bump_config_version(&mut tx)
        .await
        .expect("bump");
    tx.commit().await.expect("commit");
}

/// The stored row of a resource, as JSON text.
async fn stored_row(stack: &Stack, id: &str) -> String {
    sqlx::query_scalar("SELECT body FROM resources WHERE id = $1")
        .bind(id)
        .fetch_one(stack.state.store().reader())
        .await
        .expect("stored row")
}

async fn upstream_keys_are_sealed_at_rest_and_bound_to_their_model(stack: Stack) {
    let mid = id(&create_model_with(&stack, full_body("sealed")).await);
    let row = stored_row(&stack, &mid).await;
    assert!(!row.contains(SECRET), "plaintext key at rest: {row}");
    let data: Value = serde_json::from_str(&row).expect("json");
    let sealed = data["upstreams"][0]["api_key_sealed"]
        .as_str()
        .expect("sealed key stored");
    assert!(sealed.starts_with("v2:"), "{sealed}");
    assert!(data["upstreams"][0].get("api_key").is_none(), "{row}");

    // A sealed key copied into another model's row does not open there.
    let other = id(&create_model_with(&stack, model_body("thief")).await);
    let mut stolen: Value = serde_json::from_str(&stored_row(&stack, &other).await).expect("json");
    stolen["upstreams"][0]["url"] = json!("https://a.llm.example.com/v1");
    stolen["upstreams"][0]["api_key_sealed"] = json!(sealed);
    overwrite_row(&stack, &other, &stolen).await;
    let s = snapshot(&stack).await;
    let find = |model: &str| {
        s.models
            .iter()
            .find(|m| m.id == model)
            .expect("model")
            .upstreams[0]
            .api_key
            .clone()
    };
    assert_eq!(find(&mid).as_deref(), Some(SECRET));
    assert_eq!(
        find(&other),
        None,
        "a key bound to another model never opens"
    );
}

async fn plaintext_keys_of_older_rows_are_sealed_at_start(stack: Stack) {
    // A row as versions before sealing wrote it: the key in plaintext.
    let mid = id(&create_model_with(&stack, full_body("legacy")).await);
    let mut data: Value = serde_json::from_str(&stored_row(&stack, &mid).await).expect("json");
    let upstream = data["upstreams"][0].as_object_mut().expect("upstream");
    upstream.remove("api_key_sealed");
    upstream.insert("api_key".into(), json!(SECRET));
    overwrite_row(&stack, &mid, &data).await;
    // Still served as it is...
    assert!(stored_row(&stack, &mid).await.contains(SECRET));
    let r = stack
        .admin()
        .get(&format!("/api/models/{mid}"))
        .await
        .expect(200);
    assert_eq!(r.json["upstreams"][0]["has_api_key"], true);

    // ...and sealed by the start-up upgrade, once.
    let settings = stack.state.settings();
    let store = stack.state.store();
    let n = medgate_control_plane::models::seal_plaintext_keys(store, settings)
        .await
        .expect("upgrade");
    assert_eq!(n, 1);
    assert!(!stored_row(&stack, &mid).await.contains(SECRET));
    let again = medgate_control_plane::models::seal_plaintext_keys(store, settings)
        .await
        .expect("upgrade");
    assert_eq!(again, 0, "nothing left to seal");
    let s = snapshot(&stack).await;
    let entry = s.models.iter().find(|m| m.id == mid).expect("model");
    assert_eq!(entry.upstreams[0].api_key.as_deref(), Some(SECRET));
}
